//! `cargo xtask bench`: the load benchmark, with its baselines, in one run.
//!
//! It builds the API in release mode, starts a throwaway PostgreSQL and Redis, seeds N
//! products, starts two API processes (L1 on, L1 off) and drives them with `wrk`; in the
//! same run it measures the machine's ceilings (nginx static answer, `redis-benchmark` GET,
//! `pgbench` prepared primary-key select) so every figure is reported as a ratio.
//!
//! This module sets the run up; `options` reads the command line, `procs` holds the API
//! processes, `seed` the catalogue, `baselines` the machine's ceilings, `scenarios` the
//! load runs against the API, `judge` the targets they are held to and `publish` writes
//! the report; `common` has what they all use.
//!
//! Output: `target/bench/report.md`, `throughput.svg`, `latency.svg` (and `report.json` with `--json`).

mod baselines;
mod common;
mod compare;
mod compare_report;
mod judge;
mod load;
mod options;
mod original;
mod otlp_sink;
mod procs;
mod publish;
mod recorded;
mod report;
mod revisions;
mod scale;
mod scenarios;
mod seed;
mod svg;
mod wrk;
mod zipf;

use std::path::PathBuf;

use anyhow::Context as _;
use cacheme_harness::{cargo, run, workspace_root};
use cacheme_testsupport::{PostgresServer, RedisServer, with_database};

use common::{Programs, step};
use load::Ctx;
pub use options::Args;
use procs::Api;
use publish::{commit_description, cpu_model, publish};
use report::Report;

pub fn bench(args: Args) -> anyhow::Result<()> {
    let opts = args.options()?;
    let root = workspace_root();
    cacheme_harness::prereqs::check(&root, "bench", cacheme_harness::prereqs::BENCH)?;
    let out = root.join("target").join("bench");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;

    let programs = Programs::find()?;
    let mut build = cargo();
    build.args(["build", "--release", "--package", "cacheme-api"]);
    run("cargo build --release --package cacheme-api", build)?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let api_bin = target_dir.join("release").join("cacheme-api");

    if let Some((rev, rounds)) = &opts.compare {
        return compare::compare(
            &root,
            &out,
            &programs,
            &api_bin,
            &compare_report::CompareOptions {
                rev: rev.clone(),
                rounds: *rounds,
                duration_s: opts.duration_s,
                products: opts.products,
                traced: opts.traced,
            },
        );
    }
    if let Some(rounds) = opts.original {
        return original::original(&root, &out, &programs, &api_bin, rounds, opts.duration_s);
    }
    if opts.scale {
        let ctx = Ctx {
            programs: &programs,
            out: &out,
            duration_s: opts.duration_s,
            nofile: procs::soft_nofile(),
        };
        return scale::scale(&ctx, &programs, &api_bin, opts.products);
    }

    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    // Servers first: they are dropped last, after the API processes.
    step("starting a throwaway PostgreSQL and Redis");
    let postgres = PostgresServer::start()?;
    let redis = RedisServer::start()?;
    let database_url = with_database(&postgres.admin_url(), "cacheme_bench");

    let mut ready_ms = Vec::new();
    let settings = procs::api_settings();
    step("starting the API (L1 on); it creates and migrates the database");
    let (api, ms) = Api::start(&api_bin, "api-l1", &database_url, &redis.url(), true, &out)?;
    ready_ms.push((
        "first start, creating + migrating the database".to_owned(),
        ms,
    ));

    let last_id = seed::seed(&programs.psql, &database_url, opts.products)?;
    step("starting a second API process with L1 off");
    let (api_l2, ms) = Api::start(&api_bin, "api-l2", &database_url, &redis.url(), false, &out)?;
    ready_ms.push(("L1-off process, schema present".to_owned(), ms));

    let nofile = procs::soft_nofile();
    let ctx = Ctx {
        programs: &programs,
        out: &out,
        duration_s: opts.duration_s,
        nofile,
    };
    let mut rows = Vec::new();

    let baselines = baselines::measure(&ctx, redis.port(), &database_url, last_id)?;
    rows.extend([
        baselines.nginx.clone(),
        baselines.redis.clone(),
        baselines.postgres.clone(),
    ]);

    let (scenario_rows, targets) = scenarios::run(
        &ctx,
        [&api, &api_l2],
        &baselines,
        last_id,
        // Stampede rounds.
        if opts.smoke { 2 } else { 5 },
        ready_ms.get(1).map(|(_, ms)| *ms),
    )?;
    rows.extend(scenario_rows);
    drop(api);
    drop(api_l2);

    let report = Report {
        commit: commit_description(&root),
        started_unix,
        smoke: opts.smoke,
        duration_s: opts.duration_s,
        products: last_id,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu: cpu_model(),
        api_settings: settings,
        ready_ms,
        rows,
        targets,
    };
    publish(&root, &report, &out, &opts)?;
    drop(redis);
    drop(postgres);
    Ok(())
}
