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

use std::path::Path;

use cacheme_testsupport::{PostgresServer, RedisServer, with_database};

use super::{
    common::{CONNECTIONS, Programs, step, write},
    compare_report::{CompareOptions, Summary, markdown},
    load::Ctx,
    otlp_sink::OtlpSink,
    procs::{Api, pin_harness, pin_to_core_zero},
    revisions::{build_revision, resolve},
    seed, wrk,
};

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
    let traced_env = match (&sink, opts.traced) {
        (Some(sink), Some(ratio)) => traced_env(&sink.endpoint, ratio),
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
    let host = super::publish::host_description();
    let mut text = markdown(&labels, opts, pinned, &host, &summaries);
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

/// What `--traced <ratio>` sets on this tree's processes: a collector and a head sampler.
pub(crate) fn traced_env(endpoint: &str, ratio: f64) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.to_owned()),
        ("OTEL_TRACES_SAMPLER", "traceidratio".to_owned()),
        ("OTEL_TRACES_SAMPLER_ARG", ratio.to_string()),
    ]
}
