//! What CI runs: `lint` and `test` (every check, then every harness that must pass, and
//! the ones that must fail).

use cacheme_harness::{cargo, find_stores, frontend, prereqs, run, workspace_root};

use crate::{
    contract,
    harnesses::{CHAOS, E2E, harness, harness_with},
};

pub fn lint() -> anyhow::Result<()> {
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
    )?;
    // The shipped API as built: the workspace's tests turn on its `test-hooks` feature
    // (a dev-dependency of its own), so the line above never lints the build without it.
    let mut shipped = cargo();
    shipped.args([
        "clippy",
        "-p",
        "cacheme-api",
        "--lib",
        "--bins",
        "--",
        "-D",
        "warnings",
    ]);
    run(
        "cargo clippy -p cacheme-api --lib --bins -- -D warnings (no test features)",
        shipped,
    )
}

pub fn test(extra: &[String]) -> anyhow::Result<()> {
    let root = workspace_root();
    // Said before minutes of building, every missing program at once.
    prereqs::check(&root, "test", prereqs::TEST)?;
    lint()?;
    let stores = find_stores()?;
    // Pinned tools (Helm, kubernetes-validate, ...) into target/tools, once.
    let tools = cacheme_packaging::Tools::ensure(&root)?;
    let mut tests = cargo();
    tests
        .args(["test", "--workspace"])
        .args(extra)
        .env("DATABASE_URL", &stores.postgres_admin_url)
        .env("REDIS_URL", &stores.redis_url)
        .env("KUBERNETES_VALIDATE", tools.kubernetes_validate());
    run("cargo test --workspace", tests)?;
    // The API's suite again with a Redis Cluster (3 masters, 1 replica each) as the shared
    // Redis and the app in cluster mode.
    let mut cluster_tests = cargo();
    cluster_tests
        .args(["test", "-p", "cacheme-api", "--test", "api"])
        .args(extra)
        .env("DATABASE_URL", &stores.postgres_admin_url)
        .env("REDIS_URL", &stores.redis_url)
        .env("CACHEME_TEST_REDIS", "cluster");
    run(
        "CACHEME_TEST_REDIS=cluster cargo test -p cacheme-api --test api",
        cluster_tests,
    )?;
    cacheme_packaging::validate(&root)?;
    frontend::test(&root, &stores)?;
    contract::test(&root, &stores, &tools)?;
    // The project as users without a cluster run it: the three images built with the
    // project's Dockerfiles and checked one by one, then docker-compose.yml brought up
    // (on the same PostgreSQL and Redis as the tests above).
    harness(
        ("cacheme-deploy", Some("containers-suite")),
        &[],
        &[
            ("DATABASE_URL", &stores.postgres_admin_url),
            ("REDIS_URL", &stores.redis_url),
        ],
    )?;
    drop(stores);
    // The chart on a real kubelet: kind, with the images just built.
    harness(("cacheme-deploy", Some("kind-suite")), &[], &[])?;
    // A bounded chaos run must find nothing, with the chaos settings and with the
    // API's shipped defaults.
    harness_with(CHAOS, &["--duration", "60"])?;
    harness_with(CHAOS, &["--duration", "30", "--shipped-defaults"])?;
    // The same against a Redis Cluster: masters killed, failovers, a hot slot migrated.
    harness_with(CHAOS, &["--duration", "60", "--redis-cluster"])?;
    // The checker can fail: each mechanism it relies on switched off in turn must fail
    // a run (the mutation matrix, the rows expected to be caught; a row not caught gets
    // a second seed). This includes the fill check's self-test (`skip-fill-check`).
    harness_with(CHAOS, &["--duration", "30", "--mutations"])?;
    // The chart and the operator against a real control plane, then the same with an
    // operator whose ServiceAccount has no RBAC, which must fail.
    harness_with(E2E, &[])?;
    harness_with(
        E2E,
        &[
            "--operator-service-account",
            "e2e-unbound",
            "--expect-failure",
        ],
    )?;
    eprintln!("==> every check passed");
    Ok(())
}
