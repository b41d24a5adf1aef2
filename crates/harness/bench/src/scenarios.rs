//! The scenarios, in order, against the two API processes (L1 on, L1 off): hits, misses
//! on distinct ids, a Zipf-skewed mix, the stampede of simultaneous cold GETs and the
//! connection sweeps; each wrk run counts the process's database queries and peak memory.

use std::time::Duration;

use cacheme_harness::http;

use super::{
    baselines::Baselines,
    common::{CONNECTIONS, STAMPEDE, step},
    judge::{Judged, judge},
    load::Ctx,
    procs::{Api, peak_rss_kib, reset_peak_rss},
    report::{self, Row, Target, ratio},
    wrk::{self},
    zipf,
};

/// Connections of the sweeps.
const SWEEP: [u32; 4] = [10, 50, 200, 1000];
/// The product of the hit scenarios.
const HOT_ID: u64 = 1;

/// Every scenario, its rows, and the targets judged from them; `ready_ms` is the
/// L1-off process's time to ready.
pub fn run(
    ctx: &Ctx<'_>,
    [api, api_l2]: [&Api; 2],
    baselines: &Baselines,
    last_id: u64,
    stampede_rounds: u64,
    ready_ms: Option<f64>,
) -> anyhow::Result<(Vec<Row>, Vec<Target>)> {
    let mut rows = Vec::new();
    let static_lua = ctx.script("static.lua", &wrk::static_script())?;
    let hot = format!("/products/{HOT_ID}");
    step("L1 hits (one hot product, L1 on)");
    api.warm(&hot)?;
    let mut row = ctx.measure(api, "L1 hits", "scenario", CONNECTIONS, |c| {
        c.wrk(&api.url(&hot), CONNECTIONS, &static_lua)
    })?;
    row.baseline = Some(baselines.nginx.scenario.clone());
    row.ratio = ratio(row.load.rps, baselines.nginx.load.rps);
    // HTTP alone is an L1 hit's whole limit.
    row.composite = Some("nginx".into());
    row.composite_ratio = row.ratio;
    let l1 = row.clone();
    rows.push(row);

    step("Redis hits (one hot product, L1 off)");
    api_l2.warm(&hot)?;
    let mut row = ctx.measure(
        api_l2,
        "Redis hits (L1 off)",
        "scenario",
        CONNECTIONS,
        |c| c.wrk(&api_l2.url(&hot), CONNECTIONS, &static_lua),
    )?;
    row.baseline = Some(baselines.redis.scenario.clone());
    row.ratio = ratio(row.load.rps, baselines.redis.load.rps);
    row.composite = Some("1/(1/nginx + 1/redis)".into());
    row.composite_ratio = baselines
        .redis_hit_limit()
        .and_then(|limit| ratio(row.load.rps, limit));
    let l2 = row.clone();
    rows.push(row);

    step("misses on distinct ids (cache cleared)");
    let mut row = ctx.misses(
        api,
        "misses (distinct ids)",
        "scenario",
        CONNECTIONS,
        last_id,
    )?;
    row.baseline = Some(baselines.postgres.scenario.clone());
    row.ratio = ratio(row.load.rps, baselines.postgres.load.rps);
    row.composite = Some("1/(1/nginx + 2/redis + 1/pgbench)".into());
    row.composite_ratio = baselines
        .miss_limit()
        .and_then(|limit| ratio(row.load.rps, limit));
    let misses = row.clone();
    rows.push(row);

    step("Zipf-skewed mix: 95% GET, 5% PATCH");
    api.clear()?;
    let sequence = zipf::mixed_sequence(last_id as usize, 50_000, 5, 0x5eed);
    let mix_lua = ctx.script("zipf-mix.lua", &wrk::mix_script(&sequence))?;
    let mut row = ctx.measure(api, "Zipf mix 95/5", "scenario", CONNECTIONS, |c| {
        c.wrk(&api.url("/"), CONNECTIONS, &mix_lua)
    })?;
    row.note = "Zipf s=0.99 over all products, L1 on".into();
    rows.push(row);

    step(&format!(
        "stampede: {STAMPEDE} concurrent GETs on one cold product"
    ));
    let (row, per_round) = stampede(api, last_id, stampede_rounds)?;
    let stampede_row = row.clone();
    rows.push(row);

    let mut sweep_hits = Vec::new();
    let mut sweep_misses = Vec::new();
    api.warm(&hot)?;
    for &c in &SWEEP {
        step(&format!("sweep: hits at {c} connections"));
        let row = ctx.measure(api, "sweep hits", "sweep", c, |ctx| {
            ctx.wrk(&api.url(&hot), c, &static_lua)
        })?;
        sweep_hits.push(row.clone());
        rows.push(row);
    }
    for &c in &SWEEP {
        step(&format!("sweep: misses at {c} connections"));
        let row = ctx.misses(api, "sweep misses", "sweep", c, last_id)?;
        sweep_misses.push(row.clone());
        rows.push(row);
    }

    let peak_rss = rows.iter().filter_map(|r| r.peak_rss_kib).max();
    let targets = judge(&Judged {
        l1: &l1,
        l2: &l2,
        misses: &misses,
        stampede_rounds: &per_round,
        stampede: &stampede_row,
        sweep_hits: &sweep_hits,
        sweep_misses: &sweep_misses,
        peak_rss_kib: peak_rss,
        ready_ms,
    });
    Ok((rows, targets))
}

/// `rounds` bursts of [`STAMPEDE`] simultaneous GETs, each on a product nobody asked for yet.
fn stampede(api: &Api, last_id: u64, rounds: u64) -> anyhow::Result<(Row, Vec<u64>)> {
    api.clear()?;
    reset_peak_rss(api.pid());
    let loadavg = report::loadavg_1m();
    let mut per_round = Vec::new();
    let mut latencies = Vec::new();
    let mut failures = 0;
    let mut wall = Duration::ZERO;
    for round in 0..rounds {
        let id = last_id - round;
        let before = api.db_queries()?;
        let burst = http::burst(api.port, &format!("/products/{id}"), STAMPEDE)?;
        let queries = api.db_queries()?.saturating_sub(before);
        eprintln!(
            "    round {}: product {id}, {} ok, {} failed, {queries} DB quer{} in {:.0} ms",
            round + 1,
            burst.latencies_ms.len(),
            burst.failures,
            if queries == 1 { "y" } else { "ies" },
            burst.wall.as_secs_f64() * 1000.0
        );
        per_round.push(queries);
        latencies.extend(burst.latencies_ms);
        failures += burst.failures;
        wall += burst.wall;
    }
    latencies.sort_by(f64::total_cmp);
    let mut row = Row::new(format!("stampede ×{STAMPEDE} cold"), "scenario", "threads");
    row.connections = STAMPEDE as u32;
    row.load.requests = latencies.len() as u64 + failures;
    row.load.duration_s = wall.as_secs_f64();
    row.load.rps = row.load.requests as f64 / wall.as_secs_f64().max(1e-9);
    row.load.p50_ms = http::percentile(&latencies, 50.0);
    row.load.p99_ms = http::percentile(&latencies, 99.0);
    row.load.p999_ms = http::percentile(&latencies, 99.9);
    row.load.max_ms = latencies.last().copied();
    row.load.errors.read = failures;
    row.db_queries = Some(per_round.iter().sum());
    row.peak_rss_kib = peak_rss_kib(api.pid());
    row.note = format!("{rounds} rounds, DB queries per round {per_round:?}");
    row.loadavg_before = loadavg;
    Ok((row, per_round))
}
