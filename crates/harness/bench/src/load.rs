//! What every load run shares (`Ctx`: the programs, the output folder, the duration, the
//! open-file limit) and how one wrk run against an API process is measured.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use super::{
    common::{Programs, write},
    procs::{Api, QueryWatch, peak_rss_kib, reset_peak_rss},
    report::{self, Row},
    wrk::{self, LoadResult, WrkRun},
};

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
