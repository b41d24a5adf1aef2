//! The scenarios, in order, against the two API processes (L1 on, L1 off): hits, misses
//! on distinct ids, a Zipf-skewed mix, the stampede of simultaneous cold GETs and the
//! connection sweeps; each wrk run counts the process's database queries and peak memory.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use super::{
    CONNECTIONS, Programs, STAMPEDE,
    baselines::Baselines,
    http,
    judge::{Judged, judge},
    procs::{Api, QueryWatch, peak_rss_kib, reset_peak_rss},
    report::{self, Row, Target, ratio},
    step, write,
    wrk::{self, LoadResult, WrkRun},
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

/// What every load run shares.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub programs: &'a Programs,
    pub out: &'a Path,
    pub duration_s: u64,
    pub nofile: u64,
}

impl Ctx<'_> {
    pub fn script(&self, name: &str, text: &str) -> anyhow::Result<PathBuf> {
        let path = self.out.join(name);
        write(&path, text)?;
        Ok(path)
    }

    pub fn wrk(&self, url: &str, connections: u32, script: &Path) -> anyhow::Result<LoadResult> {
        let result = wrk::run(
            &self.programs.wrk,
            &WrkRun {
                url: url.to_owned(),
                connections,
                duration_s: self.duration_s,
                script,
            },
            self.nofile,
        )?;
        anyhow::ensure!(
            result.requests > 0,
            "wrk completed no request against {url}"
        );
        eprintln!(
            "    {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} error(s)",
            result.rps,
            result.p50_ms.unwrap_or_default(),
            result.p99_ms.unwrap_or_default(),
            result.errors.total()
        );
        Ok(result)
    }

    /// Runs `load` against `api`, counting its database queries and its own peak RSS.
    pub fn measure(
        &self,
        api: &Api,
        scenario: &str,
        kind: &'static str,
        connections: u32,
        load: impl FnOnce(&Self) -> anyhow::Result<LoadResult>,
    ) -> anyhow::Result<Row> {
        let before = api.db_queries()?;
        reset_peak_rss(api.pid());
        let loadavg = report::loadavg_1m();
        let result = load(self)?;
        let mut row = Row::new(scenario, kind, "wrk");
        row.loadavg_before = loadavg;
        row.connections = connections;
        row.peak_rss_kib = peak_rss_kib(api.pid());
        row.db_queries = Some(api.db_queries()?.saturating_sub(before));
        row.load = result;
        Ok(row)
    }

    /// Cache cleared, then GETs of distinct ids 1..=last_id, each once at most.
    pub fn misses(
        &self,
        api: &Api,
        scenario: &str,
        kind: &'static str,
        connections: u32,
        last_id: u64,
    ) -> anyhow::Result<Row> {
        api.clear()?;
        let lua = self.script(
            &format!("misses-c{connections}.lua"),
            &wrk::distinct_ids_script(1, last_id, wrk::threads_for(connections)),
        )?;
        let watch = QueryWatch::start(api.port);
        let result = self.measure(api, scenario, kind, connections, |c| {
            c.wrk(&api.url("/"), connections, &lua)
        });
        let active = watch.finish();
        let mut row = result?;
        // Only a run that used up (nearly) every id stopped early; a stall is not an early stop.
        let used_up = row.db_queries.is_some_and(|q| q * 100 >= last_id * 95);
        row.note = if used_up && active_rate(&mut row.load, active) {
            format!(
                "the {last_id} ids were used up after {:.1} s: rate over that time",
                row.load.duration_s
            )
        } else {
            format!("{:.1} s, ids left over", row.load.duration_s)
        };
        eprintln!("    {}: {:.0} req/s", row.note, row.load.rps);
        Ok(row)
    }
}

/// When the ids ran out well before wrk's clock stopped, the rate over the active time instead.
fn active_rate(load: &mut LoadResult, active: Option<Duration>) -> bool {
    let Some(active) = active else { return false };
    let active_s = active.as_secs_f64() + 0.025;
    if load.requests == 0 || active_s + 0.25 >= load.duration_s {
        return false;
    }
    load.duration_s = active_s;
    load.rps = load.requests as f64 / active_s;
    true
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_over_the_active_time_when_ids_ran_out() {
        let mut load = LoadResult {
            requests: 2_000,
            duration_s: 10.0,
            rps: 200.0,
            ..LoadResult::default()
        };
        assert!(active_rate(&mut load, Some(Duration::from_millis(1_975))));
        assert!((load.duration_s - 2.0).abs() < 1e-9);
        assert!((load.rps - 1_000.0).abs() < 1e-6);
        // Busy until the end, or no reading: wrk's numbers stand.
        let mut busy = LoadResult {
            requests: 2_000,
            duration_s: 2.0,
            rps: 1_000.0,
            ..LoadResult::default()
        };
        assert!(!active_rate(&mut busy, Some(Duration::from_millis(1_900))));
        assert!(!active_rate(&mut busy, None));
        assert!((busy.rps - 1_000.0).abs() < 1e-9);
    }
}
