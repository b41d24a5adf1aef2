//! `cargo xtask dev`: the API and its page on http://localhost:8000, on PostgreSQL and
//! Redis found or started here.

use cacheme_testsupport::with_database;

use cacheme_harness::{cargo, find_stores, frontend, run, workspace_root};

/// Origins `cargo xtask dev` lets call the API: the original demo's page at :3000.
const DEV_CORS_ORIGINS: &str = "http://localhost:3000,http://127.0.0.1:3000";

pub fn dev(extra: &[String]) -> anyhow::Result<()> {
    let stores = find_stores()?;
    let root = workspace_root();
    // A DATABASE_URL the user set names their own database; otherwise use `cacheme`,
    // which the service creates and migrates at start.
    let database_url = std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| with_database(&stores.postgres_admin_url, "cacheme"));
    let mut api = cargo();
    api.args(["run", "--package", "cacheme-api", "--"])
        .args(extra)
        .env("DATABASE_URL", database_url)
        .env("REDIS_URL", &stores.redis_url);
    let frontend_dir = root.join("frontend");
    if std::env::var_os("STATIC_DIR").is_none() {
        match frontend::build(&frontend_dir) {
            Ok(()) => {
                let page = frontend_dir.join("dist");
                eprintln!("==> serving the page from {}", page.display());
                api.env("STATIC_DIR", page);
            }
            // The API is useful without its page: say why and go on.
            Err(e) => eprintln!("==> the page was not built ({e:#}); serving the API only"),
        }
    }
    if std::env::var_os("BIND_ADDR").is_none() {
        api.env("BIND_ADDR", "127.0.0.1:8000");
    }
    // The original demo's page runs on its own dev server at :3000 and calls the API
    // cross-origin; let it in on this loopback demo (the deployed default is same origin).
    if std::env::var_os("CORS_ALLOWED_ORIGINS").is_none() {
        eprintln!("==> CORS_ALLOWED_ORIGINS={DEV_CORS_ORIGINS} (the original page on :3000)");
        api.env("CORS_ALLOWED_ORIGINS", DEV_CORS_ORIGINS);
    }
    // The local demo lets the page edit products without a token (on loopback only);
    // set ADMIN_TOKEN to try the closed default.
    if std::env::var_os("ADMIN_TOKEN").is_none()
        && std::env::var_os("ALLOW_ANONYMOUS_WRITES").is_none()
    {
        eprintln!(
            "==> ALLOW_ANONYMOUS_WRITES=true for this local demo (set ADMIN_TOKEN to require a token)"
        );
        api.env("ALLOW_ANONYMOUS_WRITES", "true");
    }
    eprintln!("==> CacheMe on http://localhost:8000 (docs at /docs); Ctrl-C stops it");
    run("cargo run --package cacheme-api", api)?;
    drop(stores);
    Ok(())
}
