//! `cargo xtask bench --compare <rev>`: this tree against another revision, run
//! interleaved in the same minutes, so a change of machine cannot pass for a change of
//! code (it once hid a 45 % regression: two runs hours apart, "the machine differs").
//!
//! The other revision is exported with `git archive` and built in a target directory of
//! its own (`target/bench/compare/`, kept between runs, binaries cached by commit).
//! Each side gets its own database and Redis, seeded alike; both sides' processes stay
//! up for the whole comparison. Every round runs each scenario on both sides, one right
//! after the other, alternating which goes first (A B, then B A: a drift of the machine
//! over the minutes then weighs on both alike); the change is taken per round, from the
//! two adjacent runs, and reported as the median with its spread.
//!
//! With two cores or more the API processes run on core 0 and everything else (wrk,
//! PostgreSQL, Redis, the harness) on core 1, which takes the scheduler's placement out
//! of the noise.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};
use cacheme_testsupport::{PostgresServer, RedisServer, with_database};

use super::{
    CONNECTIONS, Programs, otlp_sink::OtlpSink, procs::Api, scenarios::Ctx, seed, step, write, wrk,
};
use cacheme_harness::run;

/// Pause before each measured run, after which a 1 s unmeasured load warms the side up.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

/// Which scenarios are compared: the paths the service exists for.
const SCENARIOS: [Scenario; 3] = [Scenario::L1Hits, Scenario::RedisHits, Scenario::Misses];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    L1Hits,
    RedisHits,
    Misses,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Self::L1Hits => "L1 hits",
            Self::RedisHits => "Redis hits (L1 off)",
            Self::Misses => "misses (distinct ids)",
        }
    }
}

/// The comparison's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareOptions {
    /// The other revision, as given (`main`, `HEAD~3`, a commit).
    pub rev: String,
    pub rounds: u32,
    pub duration_s: u64,
    pub products: u64,
    /// `--traced RATIO`: side B exports spans to a discarding OTLP sink, sampling this
    /// share of requests (`--compare HEAD --traced 0.01` is the cost of tracing at 1 %).
    pub traced: Option<f64>,
}

/// One side of the comparison: its API processes (L1 on, L1 off).
struct Side {
    label: String,
    l1: Api,
    l2: Api,
}

/// Runs the comparison and writes `target/bench/compare.md`.
pub fn compare(
    root: &Path,
    out: &Path,
    programs: &Programs,
    this_bin: &Path,
    opts: &CompareOptions,
) -> anyhow::Result<()> {
    let commit = resolve(root, &opts.rev)?;
    let other_bin = build_revision(root, out, &commit)?;
    let short = &commit[..commit.len().min(10)];

    // Before the servers start, so PostgreSQL and Redis share core 1 with wrk and the API
    // processes have core 0 to themselves: where the scheduler put Redis swung Redis
    // hits by ±40 % between rounds.
    let pinned = pin_harness();
    step("starting a throwaway PostgreSQL and two Redis servers (one per side)");
    let postgres = PostgresServer::start()?;
    let redis = [RedisServer::start()?, RedisServer::start()?];
    let sink = opts.traced.map(|_| OtlpSink::start()).transpose()?;
    let traced_env: Vec<(&str, String)> = match (&sink, opts.traced) {
        (Some(sink), Some(ratio)) => vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", sink.endpoint.clone()),
            ("OTEL_TRACES_SAMPLER", "traceidratio".to_owned()),
            ("OTEL_TRACES_SAMPLER_ARG", ratio.to_string()),
        ],
        _ => Vec::new(),
    };
    let nofile = super::procs::soft_nofile();
    let ctx = Ctx {
        programs,
        out,
        duration_s: opts.duration_s,
        nofile,
    };

    let mut sides = Vec::new();
    let mut last_id = opts.products;
    // One name per side, said as "A …" in steps and "A = …" in the report.
    let names = [
        format!("{} ({short})", opts.rev),
        match opts.traced {
            Some(ratio) => format!("this tree, traced at {ratio}"),
            None => "this tree".to_owned(),
        },
    ];
    for (i, (label, bin)) in [
        (format!("A {}", names[0]), other_bin.as_path()),
        (format!("B {}", names[1]), this_bin),
    ]
    .into_iter()
    .enumerate()
    {
        let database_url = with_database(&postgres.admin_url(), &format!("cacheme_compare_{i}"));
        let redis_url = redis[i].url();
        step(&format!("starting side {label}"));
        let env: Vec<(&str, &str)> = if i == 1 {
            traced_env.iter().map(|(k, v)| (*k, v.as_str())).collect()
        } else {
            Vec::new()
        };
        let start = |name: String, l1: bool| {
            Api::start_with(bin, &name, &database_url, &redis_url, l1, &env, out)
        };
        let (l1, _) = start(format!("compare-{i}-l1"), true)?;
        last_id = seed::seed(&programs.psql, &database_url, opts.products)?;
        let (l2, _) = start(format!("compare-{i}-l2"), false)?;
        if pinned {
            pin_to_core_zero(l1.pid());
            pin_to_core_zero(l2.pid());
        }
        sides.push(Side { label, l1, l2 });
    }

    let static_lua = ctx.script("static.lua", &wrk::static_script())?;
    let warm_up = Ctx {
        programs: ctx.programs,
        out: ctx.out,
        duration_s: 1,
        nofile: ctx.nofile,
    };
    // What the previous run left behind (fills, evictions, a batch of spans to export)
    // must not land on the next: the first of a pair measured up to 35 % low without
    // a pause and an unmeasured second of load first.
    let hits = |api: &Api| -> anyhow::Result<f64> {
        std::thread::sleep(SETTLE);
        api.warm("/products/1")?;
        warm_up.wrk(&api.url("/products/1"), CONNECTIONS, &static_lua)?;
        Ok(ctx
            .wrk(&api.url("/products/1"), CONNECTIONS, &static_lua)?
            .rps)
    };
    let mut runs: Vec<Vec<[f64; 2]>> = vec![Vec::new(); SCENARIOS.len()];
    for round in 0..opts.rounds {
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for (s, scenario) in SCENARIOS.iter().enumerate() {
            let mut pair = [0.0; 2];
            for &side in &order {
                let who = &sides[side];
                step(&format!(
                    "round {}/{}: {} on {}",
                    round + 1,
                    opts.rounds,
                    scenario.name(),
                    who.label
                ));
                pair[side] = match scenario {
                    Scenario::L1Hits => hits(&who.l1)?,
                    Scenario::RedisHits => hits(&who.l2)?,
                    Scenario::Misses => {
                        std::thread::sleep(SETTLE);
                        ctx.misses(&who.l1, scenario.name(), "compare", CONNECTIONS, last_id)?
                            .load
                            .rps
                    }
                };
            }
            runs[s].push(pair);
        }
    }
    drop(sides);

    let labels = [format!("A = {}", names[0]), format!("B = {}", names[1])];
    let summaries: Vec<Summary> = SCENARIOS
        .iter()
        .zip(&runs)
        .map(|(s, pairs)| Summary::of(s.name(), pairs))
        .collect();
    let mut text = markdown(&labels, opts, pinned, &summaries);
    if let Some(sink) = &sink {
        let (exports, bytes) = sink.received();
        text.push_str(&format!(
            "\nThe OTLP sink received {exports} export request(s), {:.1} MiB of spans.\n",
            bytes as f64 / (1024.0 * 1024.0)
        ));
    }
    write(&out.join("compare.md"), &text)?;
    eprintln!("\n{text}");
    eprintln!("==> report: {}", out.join("compare.md").display());
    drop(redis);
    drop(postgres);
    Ok(())
}

/// The commit `rev` names.
fn resolve(root: &Path, rev: &str) -> anyhow::Result<String> {
    let output = Command::new("git")
        .args([
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ])
        .current_dir(root)
        .output()
        .context("cannot run git")?;
    let commit = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() || commit.is_empty() {
        bail!("--compare {rev:?}: not a commit in this repository (git rev-parse found nothing)");
    }
    Ok(commit)
}

/// The other revision's release `cacheme-api`, built once per commit.
fn build_revision(root: &Path, out: &Path, commit: &str) -> anyhow::Result<PathBuf> {
    let base = out.join("compare");
    let cached = base.join("bin").join(format!("cacheme-api-{commit}"));
    if cached.is_file() {
        eprintln!("==> {commit}: cached binary {}", cached.display());
        return Ok(cached);
    }
    let src = base.join("src");
    if src.exists() {
        std::fs::remove_dir_all(&src).with_context(|| format!("cannot clear {}", src.display()))?;
    }
    std::fs::create_dir_all(&src)?;
    step(&format!("exporting {commit} to {}", src.display()));
    let archive = Command::new("sh")
        .arg("-c")
        .arg(r#"git archive --format=tar "$1" | tar -x -C "$2""#)
        .arg("sh")
        .arg(commit)
        .arg(&src)
        .current_dir(root)
        .status()
        .context("cannot run git archive")?;
    anyhow::ensure!(archive.success(), "git archive {commit} failed ({archive})");

    let target = base.join("target");
    let mut build = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    build
        .args([
            "build",
            "--release",
            "--package",
            "cacheme-api",
            "--bin",
            "cacheme-api",
        ])
        .current_dir(&src)
        .env("CARGO_TARGET_DIR", &target);
    run(
        &format!("cargo build --release --package cacheme-api (at {commit}, own target dir)"),
        build,
    )?;
    std::fs::create_dir_all(base.join("bin"))?;
    std::fs::copy(target.join("release").join("cacheme-api"), &cached)
        .with_context(|| format!("cannot keep the binary as {}", cached.display()))?;
    Ok(cached)
}

/// Puts this process (and so what it starts: PostgreSQL, Redis, wrk) on core 1 when
/// there are two cores and `taskset`; the API processes go to core 0 one by one.
pub(super) fn pin_harness() -> bool {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 {
        return false;
    }
    Command::new("taskset")
        .args(["-a", "-p", "-c", "1", &std::process::id().to_string()])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub(super) fn pin_to_core_zero(pid: u32) {
    let _ = Command::new("taskset")
        .args(["-a", "-p", "-c", "0", &pid.to_string()])
        .output();
}

/// One scenario's comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub scenario: String,
    pub median_a: f64,
    pub median_b: f64,
    /// Median of the per-round changes B/A − 1.
    pub median_change: f64,
    pub min_change: f64,
    pub max_change: f64,
    pub rounds: usize,
}

impl Summary {
    /// From each round's `[A, B]` rates.
    pub fn of(scenario: &str, pairs: &[[f64; 2]]) -> Self {
        let changes: Vec<f64> = pairs
            .iter()
            .filter(|[a, _]| *a > 0.0)
            .map(|[a, b]| b / a - 1.0)
            .collect();
        let a: Vec<f64> = pairs.iter().map(|p| p[0]).collect();
        let b: Vec<f64> = pairs.iter().map(|p| p[1]).collect();
        Self {
            scenario: scenario.to_owned(),
            median_a: median(&a),
            median_b: median(&b),
            median_change: median(&changes),
            min_change: changes.iter().copied().fold(f64::INFINITY, f64::min),
            max_change: changes.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            rounds: changes.len(),
        }
    }

    /// What the rounds say: a change only when every round agrees on its sign.
    pub fn verdict(&self) -> &'static str {
        if self.rounds == 0 {
            "no data"
        } else if self.min_change > 0.0 {
            "faster in every round"
        } else if self.max_change < 0.0 {
            "slower in every round"
        } else {
            "within the noise"
        }
    }
}

pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

fn markdown(labels: &[String; 2], opts: &CompareOptions, pinned: bool, rows: &[Summary]) -> String {
    let mut text = format!(
        "# A/B: {} against {}\n\n{} rounds × {} s per scenario and side, wrk c{CONNECTIONS}, {} products; \
         order alternating per round (A B, B A); {}.\n\n\
         | scenario | A median req/s | B median req/s | change B/A (median) | spread over rounds | verdict |\n\
         |---|--:|--:|--:|--:|---|\n",
        labels[1],
        labels[0],
        opts.rounds,
        opts.duration_s,
        opts.products,
        if pinned {
            "API processes on core 0; wrk, PostgreSQL and Redis on core 1"
        } else {
            "not pinned to cores"
        },
    );
    for r in rows {
        text.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:+.1} % | {:+.1} … {:+.1} % | {} |\n",
            r.scenario,
            r.median_a,
            r.median_b,
            r.median_change * 100.0,
            r.min_change * 100.0,
            r.max_change * 100.0,
            r.verdict()
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_change_is_taken_per_round_and_summarised_by_its_median() {
        // The machine slows down over the rounds; B is 10 % faster in each.
        let pairs = [[100.0, 110.0], [80.0, 88.0], [60.0, 66.0]];
        let s = Summary::of("L1 hits", &pairs);
        assert!((s.median_change - 0.10).abs() < 1e-9, "{s:?}");
        assert!((s.min_change - 0.10).abs() < 1e-9);
        assert_eq!(s.median_a, 80.0);
        assert_eq!(s.verdict(), "faster in every round");

        let mixed = Summary::of("x", &[[100.0, 95.0], [100.0, 104.0], [100.0, 99.0]]);
        assert!((mixed.median_change + 0.01).abs() < 1e-9);
        assert_eq!(mixed.verdict(), "within the noise");
        assert_eq!(
            Summary::of("x", &[[100.0, 80.0], [100.0, 90.0]]).verdict(),
            "slower in every round"
        );
        assert_eq!(Summary::of("x", &[]).verdict(), "no data");
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn the_report_names_both_sides_and_every_scenario() {
        let opts = CompareOptions {
            rev: "main".into(),
            rounds: 4,
            duration_s: 5,
            products: 2000,
            traced: None,
        };
        let rows = [Summary::of("L1 hits", &[[100.0, 150.0]])];
        let text = markdown(
            &["A = main (abc)".into(), "B = this tree".into()],
            &opts,
            true,
            &rows,
        );
        assert!(
            text.contains("B = this tree against A = main (abc)"),
            "{text}"
        );
        assert!(text.contains("| L1 hits | 100 | 150 | +50.0 % |"), "{text}");
        assert!(text.contains("core 0"));
    }
}
