//! `cargo xtask <task>`: every command a person runs on CacheMe, in one place.
//!
//! A dispatcher: the quick tasks (dev, lint, generate, validate, contract) run here; the
//! harnesses are crates of their own under crates/harness/ (chaos, bench, e2e, deploy),
//! each a binary this runs with `cargo run`, so building `cargo xtask` (for `lint`, say)
//! compiles none of them.

use std::process::ExitCode;

use cacheme_harness::{cargo, find_stores, frontend, prereqs, run, workspace_root};
use clap::{Parser, Subcommand};

mod contract;
mod dev;

/// Every command a person runs on CacheMe, in one place.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    subcommand_value_name = "TASK",
    subcommand_help_heading = "Tasks",
    after_help = "`cargo xtask <TASK> --help` says what a task does and lists its options.\n\
                  Environment: DATABASE_URL and REDIS_URL, when set, name the servers to use."
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

// Each task's first paragraph is its line in `cargo xtask --help`; the rest shows in
// `cargo xtask <task> --help`, as written (clap wraps nothing without its `wrap_help`).
#[derive(Debug, Subcommand)]
#[command(verbatim_doc_comment)]
enum Task {
    /// Run CacheMe locally on http://localhost:8000 (the API and its page)
    ///
    /// Finds or starts PostgreSQL and Redis, builds the page (npm), migrates, and serves
    /// both on http://localhost:8000. Writes need no token on this loopback demo unless
    /// ADMIN_TOKEN is set.
    #[command(verbatim_doc_comment)]
    Dev {
        /// Passed on to cacheme-api.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        api_args: Vec<String>,
    },
    /// Run every check and test (what CI runs)
    ///
    /// First checks that every program the suite needs is installed (Chromium,
    /// PostgreSQL, Redis, Python with venv, Node and npm, Go, Docker) and names each missing one
    /// with the package to install. Then: rustfmt, clippy, all Rust tests against real
    /// PostgreSQL and Redis (found on the standard ports or started on free ones), the
    /// operator's manifests through kubernetes-validate, the packaging checks
    /// (validate), the page's unit tests and its end-to-end tests in Chromium against
    /// the real API, the API's contract test, the three images built and tested and
    /// the compose stack brought up and driven on a real Docker engine, the chart on a
    /// kind cluster, chaos runs that must find no violation (single Redis, shipped
    /// defaults, Redis Cluster) and the mutation matrix's runs that must each find one,
    /// and the e2e suite, again with an operator lacking RBAC, which must fail.
    #[command(verbatim_doc_comment)]
    Test {
        /// Passed on to `cargo test --workspace`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        cargo_test_args: Vec<String>,
    },
    /// rustfmt --check and clippy -D warnings only
    Lint,
    /// Write the generated files (the CRD and k8s/operator.yaml)
    ///
    /// k8s/crd.yaml and the chart's copy (from the operator's code) and
    /// k8s/operator.yaml (from the chart).
    #[command(verbatim_doc_comment)]
    Generate,
    /// Offline checks of the Dockerfiles, compose file, chart, k8s/ and Tiltfile
    ///
    /// Offline checks of the Dockerfiles, docker-compose.yml, the Helm chart, k8s/ and
    /// the Tiltfile, with pinned tools installed into target/tools.
    #[command(verbatim_doc_comment)]
    Validate,
    /// Load-test the release build, next to nginx, Redis and PostgreSQL baselines
    ///
    /// Load-tests the release build against its own PostgreSQL and Redis with wrk, next
    /// to nginx, redis-benchmark and pgbench baselines; writes target/bench/report.md
    /// and SVG charts.
    #[command(verbatim_doc_comment, disable_help_flag = true)]
    Bench(Forwarded),
    /// The API's contract test with schemathesis (part of `test`)
    ///
    /// schemathesis (pinned) against /openapi.json of a fresh API, every check, seed 1.
    #[command(verbatim_doc_comment)]
    Contract,
    /// Consistency check under faults (Jepsen/Elle style)
    ///
    /// Its own PostgreSQL, Redis and N API replicas, one sequential writer per hot
    /// product, readers (some abandoning requests), seeded faults (Redis SIGSTOP, kill,
    /// FLUSHALL, eviction, pub/sub kill; PostgreSQL row lock, restart, terminate; API
    /// kill); then checks: no value never written, no stale read past the coherence
    /// bound, convergence, availability per fault. Writes target/chaos/report.md,
    /// report.json and timeline.svg; exits non-zero on a violation or a convergence
    /// failure.
    #[command(verbatim_doc_comment, disable_help_flag = true)]
    Chaos(Forwarded),
    /// The operator and the Helm chart against a real Kubernetes control plane
    ///
    /// Builds kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd and
    /// kwok from their Go modules (pinned in crates/harness/go-tools/, cached in
    /// ${CACHEME_TOOLS_CACHE:-~/.cache/cacheme-tools}), starts them on loopback with
    /// kwokctl (RBAC, admission, audit log; kwok fakes the node and the pods), helm
    /// installs charts/cacheme, runs the operator locally with a token of the chart's
    /// ServiceAccount, applies k8s/samples/minimal.yaml and checks both CacheMes become
    /// Ready (status, printer columns, no request refused), then edits, scales, upgrades
    /// and uninstalls them.
    #[command(verbatim_doc_comment, disable_help_flag = true)]
    E2e(Forwarded),
    /// Build the three images (api, operator, page) with the project's Dockerfiles
    ///
    /// Builds the release binaries on the host once and copies them into the images
    /// (crates/Dockerfile, BINARIES=prebuilt); the page is built in its Dockerfile. With
    /// no image registry reachable, the base images are made here from Debian's packages,
    /// npm, PyPI and Go modules (crates/harness/deploy/images/), once per machine. Needs a running
    /// Docker engine.
    #[command(verbatim_doc_comment, disable_help_flag = true)]
    Images(Forwarded),
    /// Run CacheMe with docker compose (docker-compose.yml), images built when missing
    ///
    /// Checks the published ports first (a taken one is named with the variable that
    /// moves it), builds the images when they are missing (`cargo xtask images`), then
    /// `docker compose up --detach --wait`. Anything after the task's name goes to docker
    /// compose instead: `cargo xtask compose down -v`, `cargo xtask compose logs api`.
    /// `--test` runs the suite's check instead: a throwaway stack on free ports, driven
    /// through the page, pgAdmin, Redis Commander and Jaeger, then removed.
    #[command(verbatim_doc_comment, disable_help_flag = true)]
    Compose(Forwarded),
    /// CacheMe on a real kind cluster: the node image made here (cached), the cluster
    /// created, the images loaded, `helm install` into a namespace enforcing the
    /// restricted Pod Security level, then rollouts and pod kills under load, PostgreSQL
    /// restarted, pgAdmin and Redis Commander, scale, upgrade and uninstall.
    #[command(verbatim_doc_comment, disable_help_flag = true)]
    Kind(Forwarded),
}

/// A harness task's arguments, `--help` included, parsed by the harness itself.
#[derive(Debug, clap::Args)]
struct Forwarded {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// Where each harness task runs: its crate (under crates/harness/) and, for the one
/// binary serving several tasks, the subcommand.
const CHAOS: (&str, Option<&str>) = ("cacheme-chaos", None);
const BENCH: (&str, Option<&str>) = ("cacheme-bench", None);
const E2E: (&str, Option<&str>) = ("cacheme-e2e", None);
const IMAGES: (&str, Option<&str>) = ("cacheme-deploy", Some("images"));
const COMPOSE: (&str, Option<&str>) = ("cacheme-deploy", Some("compose"));
const KIND: (&str, Option<&str>) = ("cacheme-deploy", Some("kind"));

/// `cargo run` of a harness's binary (built first, if need be) with `args`, in the
/// caller's directory (so a relative `--api-bin` means what it meant when typed).
fn harness_command(
    (package, subcommand): (&str, Option<&str>),
    args: &[String],
    env: &[(&str, &str)],
) -> std::process::Command {
    let mut cmd =
        std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.arg("run")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(workspace_root().join("Cargo.toml"))
        .args(["--package", package, "--"])
        .args(subcommand)
        .args(args)
        .envs(env.iter().copied());
    cmd
}

/// A harness as a step of `test`: announced, and an error when it fails.
fn harness(
    task: (&str, Option<&str>),
    args: &[String],
    env: &[(&str, &str)],
) -> anyhow::Result<()> {
    let shown: Vec<&str> = task
        .1
        .into_iter()
        .chain(args.iter().map(String::as_str))
        .collect();
    run(
        &format!("{} {}", task.0, shown.join(" ")),
        harness_command(task, args, env),
    )
}

/// A harness as the task typed: its output and its exit code are the task's.
fn forward(task: (&str, Option<&str>), typed: &[String]) -> ExitCode {
    match harness_command(task, typed, &[]).status() {
        Ok(status) => status
            .code()
            .and_then(|code| u8::try_from(code).ok())
            .map_or(ExitCode::FAILURE, ExitCode::from),
        Err(e) => {
            eprintln!("xtask: cannot start cargo for {}: {e}", task.0);
            ExitCode::FAILURE
        }
    }
}

/// A harness task as part of `test`: its arguments as typed.
fn harness_with(task: (&str, Option<&str>), args: &[&str]) -> anyhow::Result<()> {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    harness(task, &args, &[])
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = workspace_root();
    // As typed after the task's name.
    let typed: Vec<String> = std::env::args().skip(2).collect();
    let result = match cli.task {
        Task::Dev { api_args } => dev::dev(&passed_on(&typed, api_args)),
        Task::Test { cargo_test_args } => test(&passed_on(&typed, cargo_test_args)),
        Task::Lint => lint(),
        Task::Contract => contract::standalone(&root),
        Task::Validate => cacheme_packaging::validate(&root),
        Task::Generate => cacheme_packaging::generate(&root),
        // The harnesses parse what was typed themselves (`--help` included).
        Task::Bench(_) => return forward(BENCH, &typed),
        Task::Chaos(_) => return forward(CHAOS, &typed),
        Task::E2e(_) => return forward(E2E, &typed),
        Task::Images(_) => return forward(IMAGES, &typed),
        Task::Compose(_) => return forward(COMPOSE, &typed),
        Task::Kind(_) => return forward(KIND, &typed),
    };
    cacheme_harness::exit("xtask", result)
}

/// What a task passes on to another program, with the leading `--` clap took as its own
/// end of options put back: `cargo xtask test -- --nocapture` means `cargo test
/// --workspace -- --nocapture`.
fn passed_on(typed: &[String], parsed: Vec<String>) -> Vec<String> {
    if typed.first().is_some_and(|a| a == "--") && parsed.len() < typed.len() {
        std::iter::once("--".to_owned()).chain(parsed).collect()
    } else {
        parsed
    }
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

#[cfg(test)]
mod tests {
    use anyhow::bail;
    use clap::CommandFactory as _;

    use super::*;

    fn parse(args: &[&str]) -> Result<Task, clap::Error> {
        Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied())).map(|c| c.task)
    }

    #[test]
    fn a_harness_runs_from_the_callers_directory_with_the_workspace_manifest() {
        let cmd = harness_command(
            IMAGES,
            &["--check".to_owned()],
            &[("REDIS_URL", "redis://x")],
        );
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let manifest = workspace_root().join("Cargo.toml");
        assert_eq!(
            args,
            [
                "run",
                "--quiet",
                "--manifest-path",
                &manifest.to_string_lossy(),
                "--package",
                "cacheme-deploy",
                "--",
                "images",
                "--check",
            ]
        );
        assert_eq!(cmd.get_current_dir(), None, "the caller's directory");
        assert!(cmd.get_envs().any(|(k, v)| k == "REDIS_URL" && v.is_some()));
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_task_parses_and_what_follows_test_or_dev_is_passed_on() -> anyhow::Result<()> {
        for task in [
            "lint", "generate", "validate", "contract", "chaos", "e2e", "bench", "images",
            "compose", "kind",
        ] {
            parse(&[task])?;
        }
        let typed = ["--", "--nocapture"].map(String::from);
        let Task::Test { cargo_test_args } = parse(&["test", "--", "--nocapture"])? else {
            bail!("not test");
        };
        assert_eq!(passed_on(&typed, cargo_test_args), typed);
        assert!(matches!(
            parse(&["test", "-p", "xtask", "--lib"])?,
            Task::Test { cargo_test_args } if cargo_test_args == ["-p", "xtask", "--lib"]
        ));
        let typed = ["-p", "xtask", "--", "--nocapture"].map(String::from);
        let Task::Test { cargo_test_args } = parse(&["test", "-p", "xtask", "--", "--nocapture"])?
        else {
            bail!("not test");
        };
        assert_eq!(passed_on(&typed, cargo_test_args), typed);
        assert!(matches!(
            parse(&["dev", "--help-me"])?,
            Task::Dev { api_args } if api_args == ["--help-me"]
        ));
        // A harness's arguments, `--help` included, are its own to parse.
        assert!(matches!(parse(&["bench", "--smoke"])?, Task::Bench(f) if f.args == ["--smoke"]));
        assert!(matches!(parse(&["chaos", "--help"])?, Task::Chaos(f) if f.args == ["--help"]));
        assert!(matches!(
            parse(&["compose", "down", "-v"])?,
            Task::Compose(f) if f.args == ["down", "-v"]
        ));
        assert!(parse(&["deploy"]).is_err());
        assert!(parse(&[]).is_err());
        Ok(())
    }
}
