//! The page's checks: `npm ci`, build, unit tests, then end-to-end tests in Chromium
//! against the real API serving the built page, on a database of their own.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use cacheme_testsupport::{Stores, free_port, port_open, with_database};

use crate::{api_env::api_command, run};

/// Where Debian's Chromium lives; the end-to-end tests drive it with playwright-core.
pub const CHROMIUM: &str = "/usr/bin/chromium";

fn npm(frontend: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("npm");
    cmd.current_dir(frontend).args(args);
    cmd
}

/// `npm ci` unless node_modules already matches package-lock.json.
pub fn install(frontend: &Path) -> anyhow::Result<()> {
    let lock = frontend.join("package-lock.json");
    let installed = frontend.join("node_modules").join(".package-lock.json");
    let fresh = match (std::fs::metadata(&lock), std::fs::metadata(&installed)) {
        (Ok(lock), Ok(installed)) => installed.modified()? >= lock.modified()?,
        _ => false,
    };
    if fresh && std::env::var_os("CI").is_none() {
        return Ok(());
    }
    run(
        "npm ci (frontend)",
        npm(frontend, &["ci", "--no-audit", "--no-fund"]),
    )
}

pub fn build(frontend: &Path) -> anyhow::Result<()> {
    install(frontend)?;
    run("npm run build (frontend)", npm(frontend, &["run", "build"]))
}

/// A `cacheme-api` process serving the built page, stopped and its database dropped on drop.
#[derive(Debug)]
pub struct PageServer {
    child: Child,
    admin_url: String,
    database: String,
}

impl Drop for PageServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        cacheme_testsupport::drop_database(&self.admin_url, &self.database);
    }
}

/// Every variable the page's API gets: the one place that names them (the tests hold
/// each against the ones the API reads).
fn page_api_env(
    database_url: &str,
    redis_url: &str,
    key_prefix: &str,
    port: u16,
    dist: Option<&Path>,
    token: &str,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("DATABASE_URL", database_url.to_owned()),
        ("REDIS_URL", redis_url.to_owned()),
        ("CACHE_KEY_PREFIX", key_prefix.to_owned()),
        ("BIND_ADDR", format!("127.0.0.1:{port}")),
        ("RUST_LOG", "warn".to_owned()),
        // Writes closed as deployed: the page's tests type the token in, as a user would.
        ("ADMIN_TOKEN", token.to_owned()),
        // The tests clear the cache several times within a second.
        ("CACHE_CLEAR_INTERVAL_MS", "0".to_owned()),
    ]
    .map(|(name, value)| (name.to_owned(), value))
    .into();
    if let Some(dist) = dist {
        env.push(("STATIC_DIR".into(), dist.display().to_string()));
    }
    env
}

/// A fresh API on a database of its own, writes behind `token`; with `dist`, serving the page.
pub fn start_api(
    root: &Path,
    stores: &Stores,
    dist: Option<&Path>,
    token: &str,
) -> anyhow::Result<(PageServer, String)> {
    let mut build = crate::cargo();
    build.args(["build", "--package", "cacheme-api"]);
    run("cargo build --package cacheme-api", build)?;
    let binary = root.join("target").join("debug").join("cacheme-api");
    let port = free_port()?;
    let database = format!("cacheme_e2e_{}_{port}", std::process::id());
    let env = page_api_env(
        &with_database(&stores.postgres_admin_url, &database),
        &stores.redis_url,
        &database,
        port,
        dist,
        token,
    );
    let child = api_command(&binary, &env)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let mut server = PageServer {
        child,
        admin_url: stores.postgres_admin_url.clone(),
        database,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !port_open(port) {
        if let Some(status) = server.child.try_wait()? {
            bail!("cacheme-api exited with {status} before listening");
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "cacheme-api did not listen within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok((server, format!("http://127.0.0.1:{port}")))
}

/// Build, unit tests, then end-to-end tests against a freshly started API.
pub fn test(root: &Path, stores: &Stores) -> anyhow::Result<()> {
    let frontend = root.join("frontend");
    build(&frontend)?;
    run("npm test (frontend unit tests)", npm(&frontend, &["test"]))?;
    anyhow::ensure!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} not found: the end-to-end tests need Debian's Chromium (apt-get install chromium)"
    );
    let token = format!("e2e-{}-{}", std::process::id(), free_port()?);
    let (server, url) = start_api(root, stores, Some(&frontend.join("dist")), &token)?;
    let mut e2e = npm(&frontend, &["run", "test:e2e"]);
    e2e.env("CACHEME_URL", &url)
        .env("CHROMIUM_PATH", CHROMIUM)
        .env("CACHEME_TOKEN", &token);
    let result = run("npm run test:e2e (Chromium against the real API)", e2e);
    drop(server);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A misspelt name would run the page's tests on the API's default for it.
    #[test]
    fn every_variable_the_pages_api_gets_is_one_the_api_reads() {
        let known = cacheme_api::env_names();
        let env = page_api_env(
            "postgres://x",
            "redis://x",
            "p",
            1,
            Some(Path::new("dist")),
            "t",
        );
        let names = env.iter().map(|(name, _)| name.as_str());
        assert_eq!(crate::api_env::unknown_names(names, &known), [""; 0]);
        assert!(env.iter().any(|(name, _)| name == "STATIC_DIR"));
    }
}
