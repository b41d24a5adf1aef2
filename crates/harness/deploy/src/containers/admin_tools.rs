//! The compose stack's tools, used as a person would: pgAdmin logged in and connected to
//! PostgreSQL, Redis Commander listing the API's keys, the API's traces in Jaeger.

use std::{path::Path, time::Duration};

use anyhow::{Context as _, ensure};
use serde_json::Value;

use super::http::Request;

/// pgAdmin's login, the name of the server it imported, and PostgreSQL's password.
#[derive(Debug, Clone)]
pub struct PgAdminLogin {
    pub email: String,
    pub password: String,
    pub server: String,
    pub postgres_password: String,
}

impl PgAdminLogin {
    /// docker-compose.yml's defaults (the suite sets none of them).
    pub fn compose_defaults() -> Self {
        Self {
            email: "admin@cacheme.dev".into(),
            password: "admin123".into(),
            server: "CacheMe (compose)".into(),
            postgres_password: "cacheme-dev-only".into(),
        }
    }
}

/// pgAdmin's CSRF token, as its pages embed it (`"csrfToken": "…"`).
pub fn csrf_token(page: &str) -> Option<&str> {
    let start = page.find("\"csrfToken\"")? + "\"csrfToken\"".len();
    let rest = page[start..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    rest.split('"').next().filter(|t| !t.is_empty())
}

/// The `_id` of the first node labelled `label` in a pgAdmin node listing: server groups
/// come in `data`, servers in `result`; ids are numbers in strings.
pub fn node_id(listing: &Value, label: &str) -> Option<i64> {
    let nodes = listing["data"]
        .as_array()
        .or_else(|| listing["result"].as_array())?;
    let id = nodes.iter().find(|n| n["label"] == label)?.get("_id")?;
    id.as_i64().or_else(|| id.as_str()?.parse().ok())
}

/// Logs in with the compose file's account, finds the server it imported and connects
/// to PostgreSQL with the compose file's password.
pub fn pgadmin_connects(base: &str, jar: &Path, logins: &PgAdminLogin) -> anyhow::Result<()> {
    Request::get(format!("{base}/misc/ping")).until(Duration::from_secs(60), |s, _| s == 200)?;
    let _ = std::fs::remove_file(jar);
    let (_, login_page) = Request::get(format!("{base}/login")).with_jar(jar).send()?;
    let token = csrf_token(&login_page)
        .context("pgAdmin's login page has no csrfToken")?
        .to_owned();
    let (status, body) = Request {
        method: "POST",
        url: format!("{base}/authenticate/login"),
        form: vec![
            ("csrf_token".into(), token.clone()),
            ("email".into(), logins.email.clone()),
            ("password".into(), logins.password.clone()),
        ],
        ..Request::default()
    }
    .with_jar(jar)
    .send()?;
    ensure!(
        status == 302 || status == 200,
        "pgAdmin's login answered {status}: {}",
        body.chars().take(300).collect::<String>()
    );
    let api = |method: &'static str, path: String, body: Option<String>| {
        Request {
            method,
            url: format!("{base}{path}"),
            body,
            ..Request::default()
        }
        .with_jar(jar)
        .header(format!("X-pgA-CSRFToken: {token}"))
        .header("Content-Type: application/json")
        .send()
    };
    let (status, groups) = api("GET", "/browser/server_group/nodes/".into(), None)?;
    ensure!(
        status == 200,
        "pgAdmin's server groups after login: {status} {groups}"
    );
    let groups: Value = serde_json::from_str(&groups).context("pgAdmin's server groups")?;
    let group = node_id(&groups, "CacheMe").context("no server group CacheMe in pgAdmin")?;
    let (status, servers) = api("GET", format!("/browser/server/nodes/{group}/"), None)?;
    ensure!(status == 200, "pgAdmin's servers: {status} {servers}");
    let servers: Value = serde_json::from_str(&servers).context("pgAdmin's servers")?;
    let server = node_id(&servers, &logins.server)
        .with_context(|| format!("no server {:?} in pgAdmin: {servers}", logins.server))?;
    let password = serde_json::json!({ "password": logins.postgres_password }).to_string();
    let (status, answer) = api(
        "POST",
        format!("/browser/server/connect/{group}/{server}"),
        Some(password),
    )?;
    let answer: Value = serde_json::from_str(&answer)
        .with_context(|| format!("pgAdmin's connect answer ({status})"))?;
    ensure!(
        status == 200 && answer["data"]["connected"] == true,
        "pgAdmin did not connect to PostgreSQL: {status} {answer}"
    );
    eprintln!(
        "    ok: pgAdmin: logged in, its imported server connected to PostgreSQL (server_version_num {})",
        answer["data"]["version"]
    );
    Ok(())
}

/// Redis Commander connected, listing the API's keys; `connection` is its name for the
/// Redis (`R:<host>:<port>:<db>`).
pub fn redis_commander_lists_keys(base: &str, connection: &str) -> anyhow::Result<()> {
    let (status, _) = Request::get(format!("{base}/")).send()?;
    ensure!(status == 200, "Redis Commander answered {status}");
    let (status, body) = Request::get(format!("{base}/apiv2/server/info")).send()?;
    ensure!(
        status == 200 && body.contains("\"Redis version\""),
        "Redis Commander's server info: {status} {}",
        body.chars().take(300).collect::<String>()
    );
    // The keys the API wrote: product 1's entry and its generation, under cacheme:v1:.
    let (status, body) =
        Request::get(format!("{base}/apiv2/keystree/{connection}/cacheme:v1:")).send()?;
    ensure!(
        status == 200 && body.contains("product"),
        "Redis Commander's keys under cacheme:v1: {status} {}",
        body.chars().take(300).collect::<String>()
    );
    eprintln!(
        "    ok: Redis Commander answers, connected to Redis, listing the API's cacheme:v1: keys"
    );
    Ok(())
}

pub fn jaeger_has_traces(base: &str) -> anyhow::Result<()> {
    Request::get(format!("{base}/api/traces?service=cacheme-api&limit=1"))
        .until(Duration::from_secs(60), |s, body| {
            s == 200 && body.contains("\"traceID\"")
        })?;
    eprintln!("    ok: the API's traces arrived in Jaeger");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_token_is_read_from_the_pages_props() {
        let page = r#"<script>render({"loginUrl": "/authenticate/login", "csrfToken": "Ijc2N.ZT-x", "x": 1})</script>"#;
        assert_eq!(csrf_token(page), Some("Ijc2N.ZT-x"));
        assert_eq!(csrf_token(r#"{"csrfToken":"a"}"#), Some("a"));
        assert_eq!(csrf_token(r#"{"csrfToken": ""}"#), None);
        assert_eq!(csrf_token("<html>no token</html>"), None);
    }

    #[test]
    fn a_node_is_found_by_its_label() {
        let listing = serde_json::json!({"success": 1, "data": [
            {"_id": "1", "label": "Servers"}, {"_id": "2", "label": "CacheMe"}, {"_id": 3, "label": "Three"}
        ]});
        assert_eq!(node_id(&listing, "CacheMe"), Some(2));
        assert_eq!(node_id(&listing, "Three"), Some(3));
        assert_eq!(node_id(&listing, "Other"), None);
        assert_eq!(node_id(&serde_json::json!({"data": "x"}), "CacheMe"), None);
        let servers = serde_json::json!({"result": [{"_id": "1", "label": "CacheMe (compose)"}], "data": null});
        assert_eq!(node_id(&servers, "CacheMe (compose)"), Some(1));
    }
}
