//! `cargo xtask bench`: the load benchmark, with its baselines, in one run.
//!
//! It builds the API in release mode, starts a throwaway PostgreSQL and Redis, seeds N
//! products, starts two API processes (L1 on, L1 off) and drives them with `wrk`; in the
//! same run it measures the machine's ceilings (nginx static answer, `redis-benchmark` GET,
//! `pgbench` prepared primary-key select) so every figure is reported as a ratio.
//!
//! This module sets the run up and reports it; `procs` holds the API processes, `seed`
//! the catalogue, `baselines` the machine's ceilings, `scenarios` the load runs against
//! the API and `judge` the targets they are held to.
//!
//! Output: `target/bench/report.md`, `throughput.svg`, `latency.svg` (and `report.json` with `--json`).

mod baselines;
mod compare;
mod judge;
mod original;
mod otlp_sink;
mod procs;
mod recorded;
mod report;
mod scale;
mod scenarios;
mod seed;
mod wrk;
mod zipf;

use cacheme_harness::http;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};
use cacheme_testsupport::{PostgresServer, RedisServer, require_binary, with_database};

use cacheme_harness::{cargo, run, workspace_root};
use procs::Api;
use report::Report;
use scenarios::Ctx;

/// Connections of the main scenarios and of the Redis baseline.
const CONNECTIONS: u32 = 50;
/// Simultaneous GETs of one cold product in the stampede.
const STAMPEDE: usize = 500;
/// Each API process's pool, and pgbench's clients.
const DB_MAX_CONNECTIONS: u32 = 10;

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub smoke: bool,
    pub duration_s: u64,
    pub products: u64,
    pub json: bool,
    pub scale: bool,
    /// `--compare`: the other revision and the rounds.
    pub compare: Option<(String, u32)>,
    pub traced: Option<f64>,
    pub record: bool,
    /// `--original`: against the rebuilt FastAPI backend, with these rounds.
    pub original: Option<u32>,
}

/// Load tests of the release build (wrk), next to nginx, redis-benchmark and pgbench
/// baselines; report in target/bench/.
#[derive(Debug, Clone, PartialEq, clap::Parser)]
#[command(name = "bench", bin_name = "cargo xtask bench")]
pub struct Args {
    /// A few seconds per scenario on fewer products; the targets are not asserted.
    #[arg(long)]
    pub smoke: bool,
    /// Seconds per scenario (1..=600) [default: 10, 2 with --smoke].
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
    /// Products seeded (20..=10000000) [default: 10000, 50000 with --compare, 2000 with --smoke].
    #[arg(long, value_name = "N")]
    pub products: Option<u64>,
    /// Also write target/bench/report.json.
    #[arg(long)]
    pub json: bool,
    /// Only the scale points: Redis hits through 1 and 2 API processes against one Redis
    /// and a 3-master Redis Cluster, L1 hits through 1 and 2 (target/bench/scale.md).
    #[arg(long)]
    pub scale: bool,
    /// A/B against another git revision (`main`, `HEAD~1`, a commit): builds it in its own
    /// target directory and runs both builds interleaved, round after round, in the same
    /// minutes (target/bench/compare.md). Every performance claim should come from this.
    #[arg(long, value_name = "REV", conflicts_with_all = ["scale", "json"])]
    pub compare: Option<String>,
    /// Rounds of --compare (2..=50) [default: 6, 2 with --smoke].
    #[arg(long, value_name = "N")]
    pub rounds: Option<u32>,
    /// With --compare: side B (this tree) exports spans to a discarding OTLP sink,
    /// tracing this share of requests (0..=1): `--compare HEAD --traced 0.01` measures
    /// what tracing at 1 % costs.
    #[arg(long, value_name = "RATIO", requires = "compare")]
    pub traced: Option<f64>,
    /// Keep this full run's ratios as the recorded run (docs/benchmarks/recorded.json), the
    /// one later runs flag drops against.
    #[arg(long, conflicts_with_all = ["smoke", "compare", "scale"])]
    pub record: bool,
    /// Cache hits through CacheMe against the original demo's backend (FastAPI + Uvicorn,
    /// rebuilt from its description, installed from PyPI into target/bench/original),
    /// interleaved round after round (target/bench/original.md); takes --rounds.
    #[arg(long, conflicts_with_all = ["compare", "scale", "json", "record"])]
    pub original: bool,
}

impl Args {
    /// The options, defaults filled in and checked.
    pub fn options(self) -> anyhow::Result<Options> {
        let default_duration = match (self.smoke, self.compare.is_some() || self.original) {
            (true, _) => 2,
            (false, true) => 5,
            (false, false) => 10,
        };
        let duration_s = self.duration.unwrap_or(default_duration);
        // --compare's misses need ids for 5 s at ~10 k/s per side.
        let default_products = match (self.smoke, self.compare.is_some()) {
            (true, _) => 2_000,
            (false, true) => 50_000,
            (false, false) => 10_000,
        };
        let products = self.products.unwrap_or(default_products);
        anyhow::ensure!(
            (1..=600).contains(&duration_s),
            "--duration must be 1..=600 seconds"
        );
        anyhow::ensure!(
            (20..=10_000_000).contains(&products),
            "--products must be 20..=10000000"
        );
        let rounds = self.rounds.unwrap_or(if self.smoke { 2 } else { 6 });
        anyhow::ensure!(
            self.traced.is_none_or(|r| (0.0..=1.0).contains(&r)),
            "--traced must be a ratio between 0 and 1"
        );
        anyhow::ensure!((2..=50).contains(&rounds), "--rounds must be 2..=50");
        anyhow::ensure!(
            self.rounds.is_none() || self.compare.is_some() || self.original,
            "--rounds goes with --compare or --original"
        );
        Ok(Options {
            smoke: self.smoke,
            duration_s,
            products,
            json: self.json,
            scale: self.scale,
            compare: self.compare.map(|rev| (rev, rounds)),
            record: self.record,
            traced: self.traced,
            original: self.original.then_some(rounds),
        })
    }
}

/// Parses `args` (what follows `cargo xtask bench`) into checked options.
#[cfg(test)]
fn parse_options(args: &[String]) -> anyhow::Result<Options> {
    let parsed = <Args as clap::Parser>::try_parse_from(
        std::iter::once("bench").chain(args.iter().map(String::as_str)),
    )?;
    parsed.options()
}

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
            &compare::CompareOptions {
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

/// Writes the report and its charts, prints the tables, and fails when a target was
/// missed (unless this is a smoke run).
fn publish(root: &Path, report: &Report, out: &Path, opts: &Options) -> anyhow::Result<()> {
    let ratios = recorded::ratios(&report.rows);
    let mut markdown = report::markdown(report);
    match recorded::load(root)? {
        // Two seconds on 2 000 products says nothing against a full run.
        Some(_) if opts.smoke => eprintln!("==> smoke run: not compared with the recorded run"),
        Some(before) => {
            let drifts = recorded::drifts(&before, &ratios);
            markdown.push_str(&recorded::markdown(&before, &drifts));
            for d in drifts.iter().filter(|d| d.flagged) {
                eprintln!(
                    "==> FLAGGED: {} dropped {:.1} % against the recorded run ({:.3} → {:.3})",
                    d.key,
                    -d.change() * 100.0,
                    d.recorded,
                    d.now
                );
            }
        }
        None => eprintln!(
            "==> no recorded run ({}) to compare with",
            recorded::RECORDED
        ),
    }
    if opts.record {
        recorded::save(
            root,
            &recorded::Recorded {
                commit: report.commit.clone(),
                started_unix: report.started_unix,
                ratios,
            },
        )?;
        eprintln!("==> recorded this run's ratios in {}", recorded::RECORDED);
    }
    write(&out.join("report.md"), &markdown)?;
    write(
        &out.join("throughput.svg"),
        &report::throughput_svg(&report.rows),
    )?;
    write(&out.join("latency.svg"), &report::latency_svg(&report.rows))?;
    eprintln!("\n{}", report::markdown_table(&report.rows));
    eprintln!("{}", report::targets_table(&report.targets));
    if opts.json {
        let json = serde_json::to_string_pretty(report)?;
        write(&out.join("report.json"), &json)?;
        println!("{json}");
    }
    eprintln!("==> report: {}", out.join("report.md").display());
    let missed: Vec<&str> = report
        .targets
        .iter()
        .filter(|t| !t.met)
        .map(|t| t.name.as_str())
        .collect();
    if opts.smoke {
        eprintln!(
            "==> smoke run: {} target(s) not met, not asserted",
            missed.len()
        );
    } else if !missed.is_empty() {
        bail!("{} target(s) missed: {}", missed.len(), missed.join("; "));
    }
    Ok(())
}

fn step(what: &str) {
    eprintln!("==> {what}");
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The load generator and the baselines' programs.
#[derive(Debug)]
struct Programs {
    wrk: PathBuf,
    nginx: PathBuf,
    redis_benchmark: PathBuf,
    pgbench: PathBuf,
    psql: PathBuf,
}

impl Programs {
    fn find() -> anyhow::Result<Self> {
        Ok(Self {
            wrk: require_binary("wrk", "wrk")?,
            // Debian puts nginx in /usr/sbin, which a non-root PATH may lack.
            nginx: require_binary("nginx", "nginx").or_else(|e| {
                let sbin = PathBuf::from("/usr/sbin/nginx");
                if sbin.is_file() { Ok(sbin) } else { Err(e) }
            })?,
            redis_benchmark: require_binary("redis-benchmark", "redis-tools")?,
            pgbench: require_binary("pgbench", "postgresql")?,
            psql: require_binary("psql", "postgresql-client")?,
        })
    }
}

fn commit_description(root: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let head = git(&["rev-parse", "--short", "HEAD"]);
    let dirty = git(&[
        "status",
        "--porcelain",
        "--",
        "crates/api",
        "crates/telemetry",
    ]);
    if dirty.is_empty() {
        head
    } else {
        format!("{head} + uncommitted changes in crates/api or crates/telemetry")
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn options_defaults_smoke_and_overrides() {
        let full = parse_options(&[]).expect("defaults");
        assert_eq!(
            (full.smoke, full.duration_s, full.products, full.json),
            (false, 10, 10_000, false)
        );
        let smoke = parse_options(&args(&["--smoke", "--json"])).expect("smoke");
        assert_eq!(
            (smoke.duration_s, smoke.products, smoke.json),
            (2, 2_000, true)
        );
        let o = parse_options(&args(&["--duration", "30", "--products", "50000"])).expect("set");
        assert_eq!((o.duration_s, o.products), (30, 50_000));
        assert!(parse_options(&args(&["--duration"])).is_err());
        assert!(parse_options(&args(&["--duration", "ten"])).is_err());
        assert!(parse_options(&args(&["--duration", "0"])).is_err());
        assert!(parse_options(&args(&["--fast"])).is_err());
        let ab = parse_options(&args(&["--compare", "main"])).expect("compare");
        assert_eq!(
            (ab.compare, ab.duration_s, ab.products),
            (Some(("main".into(), 6)), 5, 50_000)
        );
        let ab = parse_options(&args(&["--compare", "HEAD~1", "--rounds", "4", "--smoke"]))
            .expect("compare");
        assert_eq!(ab.compare, Some(("HEAD~1".into(), 4)));
        assert!(parse_options(&args(&["--rounds", "4"])).is_err());
        assert!(parse_options(&args(&["--compare", "main", "--rounds", "1"])).is_err());
        assert!(parse_options(&args(&["--compare", "main", "--scale"])).is_err());
        assert!(parse_options(&args(&["--record"])).expect("record").record);
        let t = parse_options(&args(&["--compare", "HEAD", "--traced", "0.01"])).expect("t");
        assert_eq!(t.traced, Some(0.01));
        assert!(parse_options(&args(&["--traced", "0.01"])).is_err());
        assert!(parse_options(&args(&["--compare", "HEAD", "--traced", "2"])).is_err());
        assert!(parse_options(&args(&["--record", "--smoke"])).is_err());
        let o = parse_options(&args(&["--original", "--rounds", "3"])).expect("original");
        assert_eq!((o.original, o.duration_s), (Some(3), 5));
        assert_eq!(
            parse_options(&args(&["--original"])).expect("o").original,
            Some(6)
        );
        assert!(parse_options(&args(&["--original", "--compare", "main"])).is_err());
        assert_eq!(parse_options(&args(&[])).expect("plain").original, None);
    }
}
