//! `cargo xtask <task>`: every command a person runs on CacheMe, in one place.
//!
//! A dispatcher: the quick tasks (dev, lint, generate, validate, contract) run here; the
//! harnesses are crates of their own under crates/harness/ (chaos, bench, e2e, deploy),
//! each a binary this runs with `cargo run`, so building `cargo xtask` (for `lint`, say)
//! compiles none of them.

use std::process::ExitCode;

use cacheme_harness::workspace_root;
use clap::{Parser, Subcommand};
use harnesses::{BENCH, CHAOS, COMPOSE, E2E, IMAGES, KIND, forward};

mod ci;
mod contract;
mod dev;
mod harnesses;

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = workspace_root();
    // As typed after the task's name.
    let typed: Vec<String> = std::env::args().skip(2).collect();
    let result = match cli.task {
        Task::Dev { api_args } => dev::dev(&passed_on(&typed, api_args)),
        Task::Test { cargo_test_args } => ci::test(&passed_on(&typed, cargo_test_args)),
        Task::Lint => ci::lint(),
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

#[cfg(test)]
mod tests {
    use anyhow::bail;
    use clap::CommandFactory as _;

    use super::*;

    fn parse(args: &[&str]) -> Result<Task, clap::Error> {
        Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied())).map(|c| c.task)
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
