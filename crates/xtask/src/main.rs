//! `cargo xtask <task>`: every command a person runs on CacheMe, in one place.

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context as _, bail};
use cacheme_testsupport::{Stores, with_database};

mod bench;
mod chaos;
mod contract;
mod e2e;
mod frontend;
mod packaging;

const USAGE: &str = "\
cargo xtask <task>

Tasks:
  dev     Run CacheMe locally: find or start PostgreSQL and Redis, build the page
          (npm), migrate, and serve both on http://localhost:8000.
  test    Run every check and test: rustfmt, clippy, all Rust tests against real
          PostgreSQL and Redis (found on the standard ports or started on free ones),
          the operator's manifests through kubernetes-validate, the packaging checks
          (validate), the page's unit tests and its end-to-end tests in Chromium
          against the real API, then a 60 s chaos run that must find no violation and a
          30 s one with the fill check off that must find some.
  lint    rustfmt --check and clippy -D warnings only.
  generate  Write the generated files: k8s/crd.yaml and the chart's copy (from the
          operator's code) and k8s/operator.yaml (from the chart).
  validate  Offline checks of the Dockerfiles, docker-compose.yml, the Helm chart,
          k8s/ and the Tiltfile, with pinned tools installed into target/tools.
  bench   Load-test the release build against its own PostgreSQL and Redis with wrk,
          next to nginx, redis-benchmark and pgbench baselines; writes
          target/bench/report.md and SVG charts. Options: --smoke (seconds, targets
          not asserted), --duration SECS, --products N, --json (also report.json).
  contract  The API's contract test: schemathesis (pinned) against /openapi.json of a
          fresh API, every check, seed 1 (part of `test`).
  chaos   Consistency check under faults (Jepsen/Elle style): its own PostgreSQL, Redis
          and N API replicas, one sequential writer per hot product, readers (some
          abandoning requests), seeded faults (Redis SIGSTOP/kill/FLUSHALL/eviction/
          pub/sub kill, PostgreSQL row lock/restart/terminate, API kill); then checks
          no value never written, no stale read past the coherence bound, convergence,
          availability per fault. Writes target/chaos/report.md, report.json and
          timeline.svg; exits non-zero on a violation or a convergence failure.
          Options: --duration SECS (60), --seed N (from the clock, printed),
          --replicas N (2), --readers N (8), --products N (6), --coherence-bound-ms MS
          (1000), --abandon-percent P (5), --quarantine-ms MS (4000), --write-think-ms
          MS (100), --release, --api-bin PATH (skip the build), --history (also
          history.jsonl: every operation), --unsafe-skip-fill-check (replicas get
          UNSAFE_SKIP_FILL_CHECK=true), --expect-violations (exit 0 only if a violation
          was found: proves the checker can fail).
  e2e     The operator and the Helm chart against a real Kubernetes control plane:
          builds kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd
          and kwok from their Go modules (pinned in crates/xtask/e2e-tools/, cached in
          ${CACHEME_TOOLS_CACHE:-~/.cache/cacheme-tools}), starts them on loopback with
          kwokctl (RBAC, admission, audit log; kwok fakes the node and the pods), helm
          installs charts/cacheme, runs the operator locally with a token of the chart's
          ServiceAccount, applies k8s/samples/minimal.yaml and checks both CacheMes
          become Ready (status, printer columns, no request refused). Options:
          --operator-bin PATH (skip the build), --operator-service-account NAME (run the
          operator as another ServiceAccount), --timeout SECS (180, per CacheMe),
          --expect-failure (exit 0 only if the scenario failed), --tools-only.

Environment: DATABASE_URL and REDIS_URL, when set, name the servers to use.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("dev") => dev(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("lint") => lint(),
        Some("bench") => bench::bench(&args[1..]),
        Some("chaos") => chaos::chaos(&args[1..]),
        Some("contract") => contract::standalone(&workspace_root()),
        Some("e2e") => e2e::e2e(&args[1..]),
        Some("validate") => packaging::validate(&workspace_root()),
        Some("generate") => packaging::generate(&workspace_root()),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(anyhow::anyhow!("unknown task {other:?}\n\n{USAGE}")),
        None => Err(anyhow::anyhow!("no task given\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// Runs `cmd`, echoing it first, and fails loudly when it fails.
pub(crate) fn run(step: &str, mut cmd: Command) -> anyhow::Result<()> {
    eprintln!("==> {step}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start: {step}"))?;
    if !status.success() {
        bail!("step failed ({status}): {step}");
    }
    Ok(())
}

fn find_stores() -> anyhow::Result<Stores> {
    let stores = Stores::find_or_start()?;
    let origin = |started: bool| {
        if started {
            "started on a free port"
        } else {
            "found"
        }
    };
    eprintln!(
        "==> PostgreSQL: {} ({})\n==> Redis: {} ({})",
        stores.postgres_admin_url,
        origin(stores.started_postgres.is_some()),
        stores.redis_url,
        origin(stores.started_redis.is_some()),
    );
    Ok(stores)
}

fn lint() -> anyhow::Result<()> {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    run("cargo fmt --all --check", fmt)?;
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run(
        "cargo clippy --workspace --all-targets -- -D warnings",
        clippy,
    )
}

fn test(extra: &[String]) -> anyhow::Result<()> {
    let root = workspace_root();
    // Said before minutes of building: the chaos check drives PostgreSQL with psql, and
    // the end-to-end suite builds the Kubernetes control plane with Go.
    cacheme_testsupport::require_binary("psql", "postgresql-client")?;
    e2e::tools::check_go()?;
    lint()?;
    let stores = find_stores()?;
    // Pinned tools (Helm, kubernetes-validate, ...) into target/tools, once.
    let tools = packaging::Tools::ensure(&root)?;
    let mut tests = cargo();
    tests
        .args(["test", "--workspace"])
        .args(extra)
        .env("DATABASE_URL", &stores.postgres_admin_url)
        .env("REDIS_URL", &stores.redis_url)
        .env("KUBERNETES_VALIDATE", tools.kubernetes_validate());
    run("cargo test --workspace", tests)?;
    packaging::validate(&root)?;
    frontend::test(&root, &stores)?;
    contract::test(&root, &stores, &tools)?;
    drop(stores);
    // A bounded chaos run must find nothing, and the same run with the fill check
    // switched off must find stale reads (the checker can fail).
    let args = |list: &[&str]| list.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
    chaos::chaos(&args(&["--duration", "60"]))?;
    chaos::chaos(&args(&[
        "--duration",
        "30",
        // More concurrent misses per write: 9–13 stale reads per 30 s with the default
        // 8 readers, 32 with 12 (seen once: 0 with evenly spread writes and 8 readers).
        "--readers",
        "12",
        "--unsafe-skip-fill-check",
        "--expect-violations",
    ]))?;
    // The chart and the operator against a real control plane, then the same with an
    // operator whose ServiceAccount has no RBAC, which must fail.
    e2e::e2e(&[])?;
    e2e::e2e(&args(&[
        "--operator-service-account",
        "e2e-unbound",
        "--expect-failure",
    ]))?;
    eprintln!("==> every check passed");
    Ok(())
}

fn dev(extra: &[String]) -> anyhow::Result<()> {
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
