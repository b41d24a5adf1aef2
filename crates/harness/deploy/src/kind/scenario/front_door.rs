//! The ways in: the Gateway's HTTPRoute, the Ingress, a port-forward; what a user sees
//! through them.

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};

use super::NAMESPACE;
use crate::containers::http::Request;
use crate::kind::cluster::Cluster;

pub(super) fn source_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["source"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The HTTPRoute attached to the Gateway and its backends found, as Traefik reports.
pub(super) fn route_accepted(cluster: &Cluster) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let out = cluster.kubectl_output(&[
            "-n",
            NAMESPACE,
            "get",
            "httproute",
            "cacheme",
            "-o",
            "jsonpath={range .status.parents[*].conditions[*]}{.type}={.status} {end}",
        ])?;
        if out.contains("Accepted=True") && out.contains("ResolvedRefs=True") {
            eprintln!(
                "    ok: HTTPRoute cacheme accepted by traefik-gateway: {}",
                out.trim()
            );
            return Ok(());
        }
        ensure!(
            started.elapsed() < Duration::from_secs(120),
            "HTTPRoute cacheme not accepted in 120 s: {out:?}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The page and a product through `base`, asking for `host` when given.
pub(super) fn front_door_serves(base: &str, host: Option<&str>, what: &str) -> anyhow::Result<()> {
    let get = |path: &str| {
        let request = Request::get(format!("{base}{path}"));
        match host {
            Some(h) => request.header(format!("Host: {h}")),
            None => request,
        }
    };
    let (_, page) = get("/")
        .until(Duration::from_secs(90), |s, b| {
            s == 200 && b.contains("<html")
        })
        .with_context(|| format!("the page through {what}"))?;
    let (_, product) = get("/products/1")
        .until(Duration::from_secs(30), |s, b| {
            s == 200 && b.contains("\"id\":1")
        })
        .with_context(|| format!("GET /products/1 through {what}"))?;
    eprintln!(
        "    ok: the page ({} bytes) and GET /products/1 ({} bytes) through {what}",
        page.len(),
        product.len()
    );
    Ok(())
}

/// Nothing answers for another host: the catch-all HTTPRoute is gone from Traefik.
pub(super) fn only_host_is_served(base: &str, other_host: &str) -> anyhow::Result<()> {
    Request::get(format!("{base}/products/1"))
        .header(format!("Host: {other_host}"))
        .until(Duration::from_secs(60), |s, _| s == 404)
        .with_context(|| format!("Host: {other_host} is still served (the old HTTPRoute?)"))?;
    Ok(())
}

/// The page, then a product from the database and then from the cache, a write refused
/// without the token and accepted with it.
pub(super) fn page_and_api(base: &str, token: &str, what: &str) -> anyhow::Result<()> {
    let (status, page) =
        Request::get(format!("{base}/")).until(Duration::from_secs(60), |s, _| s == 200)?;
    ensure!(
        status == 200 && page.contains("<html"),
        "the page: {status}"
    );
    let auth = format!("Authorization: Bearer {token}");
    let (status, _) = Request {
        method: "DELETE",
        ..Request::get(format!("{base}/cache/clear"))
    }
    .header(auth.clone())
    .send()?;
    ensure!(status == 200 || status == 204, "cache clear: {status}");
    let (status, first) = Request::get(format!("{base}/products/3")).send()?;
    let (_, second) = Request::get(format!("{base}/products/3")).send()?;
    ensure!(status == 200, "GET /products/3: {status} {first}");
    ensure!(
        source_of(&first) == "database" && source_of(&second) != "database",
        "a product from the database, then from a cache: {} then {}",
        source_of(&first),
        source_of(&second)
    );
    let patch = |auth: Option<&str>| {
        let mut request = Request {
            method: "PATCH",
            body: Some(r#"{"name":"kind-edited"}"#.to_owned()),
            ..Request::get(format!("{base}/products/3"))
        }
        .header("Content-Type: application/json");
        if let Some(a) = auth {
            request = request.header(a.to_owned());
        }
        request.send()
    };
    let (status, _) = patch(None)?;
    ensure!(
        status == 401,
        "a write without the token: {status}, not 401"
    );
    let (status, body) = patch(Some(&auth))?;
    ensure!(status == 200, "a write with the token: {status} {body}");
    let (_, after) = Request::get(format!("{base}/products/3")).send()?;
    ensure!(
        after.contains("kind-edited"),
        "the write is not seen: {after}"
    );
    eprintln!(
        "    ok: the page and the API through {what}: database then {}, 401 then 200, the write seen",
        source_of(&second)
    );
    Ok(())
}
