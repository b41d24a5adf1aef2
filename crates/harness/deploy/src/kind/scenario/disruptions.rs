//! What disrupts a running CacheMe: rollouts, killed pods (API, PostgreSQL, the leading
//! operator), with requests counted meanwhile.

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};

use super::{NAMESPACE, front_door::source_of};
use crate::containers::http::Request;
use crate::kind::{
    cluster::Cluster,
    load::{self, Load},
};

pub(super) fn deployment_generation(cluster: &Cluster, name: &str) -> anyhow::Result<i64> {
    let out = cluster.kubectl_output(&[
        "-n",
        NAMESPACE,
        "get",
        "deployment",
        name,
        "-o",
        "jsonpath={.metadata.generation}",
    ])?;
    out.trim().parse().context("a Deployment's generation")
}

pub(super) fn wait_generation_above(
    cluster: &Cluster,
    name: &str,
    before: i64,
) -> anyhow::Result<()> {
    let started = Instant::now();
    while deployment_generation(cluster, name)? <= before {
        ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the operator did not change deployment/{name} in 120 s"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    cluster.kubectl_output(&[
        "-n",
        NAMESPACE,
        "rollout",
        "status",
        &format!("deployment/{name}"),
        "--timeout=300s",
    ])?;
    Ok(())
}

/// `kubectl patch` of the CacheMe's TTL, then the API's rollout it causes, finished.
fn edit_ttl_and_roll_out(cluster: &Cluster, ttl_seconds: u32) -> anyhow::Result<()> {
    let before = deployment_generation(cluster, "cacheme-api")?;
    let patch = format!(r#"{{"spec":{{"ttlSeconds":{ttl_seconds}}}}}"#);
    cluster.kubectl_output(&[
        "-n", NAMESPACE, "patch", "cacheme", "cacheme", "--type", "merge", "-p", &patch,
    ])?;
    wait_generation_above(cluster, "cacheme-api", before)
}

pub(super) fn ttl_edit_rolls_out_without_failures(
    cluster: &Cluster,
    urls: &[String],
) -> anyhow::Result<()> {
    let load = Load::start(cluster, urls)?;
    edit_ttl_and_roll_out(cluster, 1800)?;
    // The old pods finish terminating while the load goes on.
    wait_no_terminating(cluster)?;
    let tally = load.stop()?;
    load::expect_no_failures("a TTL edit rolled out under load", &tally)
}

pub(super) fn api_pods(cluster: &Cluster) -> anyhow::Result<Vec<String>> {
    let out = cluster.kubectl_output(&[
        "-n",
        NAMESPACE,
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/component=api",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}",
    ])?;
    Ok(out
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect())
}

pub(super) fn wait_no_terminating(cluster: &Cluster) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let out = cluster.kubectl_output(&[
            "-n",
            NAMESPACE,
            "get",
            "pods",
            "-o",
            "jsonpath={range .items[*]}{.metadata.deletionTimestamp}{\"\\n\"}{end}",
        ])?;
        if out.lines().all(|l| l.trim().is_empty()) {
            return Ok(());
        }
        ensure!(
            started.elapsed() < Duration::from_secs(120),
            "pods still terminating after 120 s"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

pub(super) fn killed_api_pod_without_failures(
    cluster: &Cluster,
    urls: &[String],
) -> anyhow::Result<()> {
    let pods = api_pods(cluster)?;
    let victim = pods.first().context("no API pod")?;
    let load = Load::start(cluster, urls)?;
    cluster.kubectl_output(&["-n", NAMESPACE, "delete", "pod", victim, "--wait=false"])?;
    cluster.kubectl_output(&[
        "-n",
        NAMESPACE,
        "wait",
        &format!("pod/{victim}"),
        "--for=delete",
        "--timeout=120s",
    ])?;
    cluster.kubectl_output(&[
        "-n",
        NAMESPACE,
        "rollout",
        "status",
        "deployment/cacheme-api",
        "--timeout=120s",
    ])?;
    let tally = load.stop()?;
    load::expect_no_failures(&format!("API pod {victim} deleted under load"), &tally)
}

pub(super) fn postgres_restart_keeps_data(
    cluster: &Cluster,
    base: &str,
    token: &str,
) -> anyhow::Result<()> {
    let auth = format!("Authorization: Bearer {token}");
    let name = format!("kept-{}", std::process::id());
    let (status, body) = Request {
        method: "PATCH",
        body: Some(format!(r#"{{"name":"{name}"}}"#)),
        ..Request::get(format!("{base}/products/4"))
    }
    .header("Content-Type: application/json")
    .header(auth.clone())
    .send()?;
    ensure!(status == 200, "PATCH /products/4: {status} {body}");
    cluster.kubectl_output(&[
        "-n",
        NAMESPACE,
        "delete",
        "pod",
        "-l",
        "app.kubernetes.io/component=postgres",
    ])?;
    cluster.kubectl_output(&[
        "-n",
        NAMESPACE,
        "rollout",
        "status",
        "deployment/cacheme-postgres",
        "--timeout=180s",
    ])?;
    // PATCH invalidated product 4 and nothing has read it since: its next answer
    // comes from the database.
    let started = Instant::now();
    loop {
        let (status, body) = Request::get(format!("{base}/products/4")).send()?;
        if status == 200 && source_of(&body) == "database" {
            ensure!(body.contains(&name), "after PostgreSQL's restart: {body}");
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the API did not read from PostgreSQL again in 120 s: {status} {body}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    eprintln!("    ok: PostgreSQL's pod deleted; its replacement has the edit made before");
    Ok(())
}

pub(super) fn lease_holder(cluster: &Cluster) -> anyhow::Result<String> {
    let out = cluster.kubectl_output(&[
        "-n",
        NAMESPACE,
        "get",
        "lease",
        "-o",
        "jsonpath={.items[*].spec.holderIdentity}",
    ])?;
    Ok(out.trim().to_owned())
}

/// Two operator replicas: the leader killed without a chance to hand over, the other
/// takes the Lease when it expires and carries out the next edit.
pub(super) fn operator_failover(cluster: &Cluster) -> anyhow::Result<()> {
    let leader = lease_holder(cluster)?;
    ensure!(
        leader.starts_with("cacheme-operator-"),
        "the Lease's holder is {leader:?}, not an operator pod"
    );
    cluster.kubectl_output(&[
        "-n",
        NAMESPACE,
        "delete",
        "pod",
        &leader,
        "--grace-period=0",
        "--force",
    ])?;
    let started = Instant::now();
    // The other replica holds the Lease before the edit, so the edit proves it works.
    let holder = loop {
        let holder = lease_holder(cluster)?;
        if holder != leader && holder.starts_with("cacheme-operator-") {
            break holder;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(90),
            "90 s after killing {leader} the Lease is held by {holder:?}"
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    edit_ttl_and_roll_out(cluster, 1200)?;
    eprintln!(
        "    ok: the leading operator {leader} killed; {holder} took over and rolled the next edit out, {:.0} s in all",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
