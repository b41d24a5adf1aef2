//! The benchmark's targets (BENCHMARKS.md), judged from the measured rows.

use super::{
    common::STAMPEDE,
    report::{Row, Target, ratio},
};

/// What [`judge`] needs.
#[derive(Debug)]
pub struct Judged<'a> {
    pub l1: &'a Row,
    pub l2: &'a Row,
    pub misses: &'a Row,
    pub stampede_rounds: &'a [u64],
    pub stampede: &'a Row,
    pub sweep_hits: &'a [Row],
    pub sweep_misses: &'a [Row],
    pub peak_rss_kib: Option<u64>,
    pub ready_ms: Option<f64>,
}

fn ratio_target(name: &str, row: &Row, min: f64) -> Target {
    let r = row.ratio.unwrap_or(0.0);
    Target {
        name: name.to_owned(),
        goal: format!("≥ {min}× {}", row.baseline.as_deref().unwrap_or("baseline")),
        measured: format!("{r:.2}×"),
        ratio: row.ratio,
        met: r >= min,
    }
}

fn composite_target(name: &str, row: &Row, min: f64) -> Target {
    let r = row.composite_ratio.unwrap_or(0.0);
    Target {
        name: name.to_owned(),
        goal: format!(
            "≥ {min}× its composite limit {}",
            row.composite.as_deref().unwrap_or("(unknown)")
        ),
        measured: format!("{r:.2}×"),
        ratio: row.composite_ratio,
        met: r >= min,
    }
}

fn collapse_target(name: &str, sweep: &[Row]) -> Target {
    let best = sweep.iter().map(|r| r.load.rps).fold(0.0, f64::max);
    let last = sweep.iter().max_by_key(|r| r.connections);
    let (rps, errors, conns) = last.map_or((0.0, 0, 0), |r| {
        (r.load.rps, r.load.errors.total(), r.connections)
    });
    let r = ratio(rps, best);
    Target {
        name: name.to_owned(),
        goal: "at the most connections ≥ 0.8× the sweep's best, 0 errors".into(),
        measured: format!(
            "{:.2}× at {conns} connections, {errors} error(s)",
            r.unwrap_or(0.0)
        ),
        ratio: r,
        met: r.is_some_and(|r| r >= 0.8) && errors == 0,
    }
}

pub fn judge(j: &Judged<'_>) -> Vec<Target> {
    let stampede_ok = !j.stampede_rounds.is_empty() && j.stampede_rounds.iter().all(|&q| q == 1);
    vec![
        ratio_target("L1 hit path", j.l1, 0.6),
        composite_target("Redis hit path (L1 off)", j.l2, 0.75),
        composite_target("miss path", j.misses, 0.5),
        Target {
            name: format!("stampede of {STAMPEDE} on a cold product"),
            goal: "exactly 1 DB query (each round), 0 errors".into(),
            measured: format!(
                "{:?} DB queries per round, {} error(s)",
                j.stampede_rounds,
                j.stampede.load.errors.total()
            ),
            ratio: None,
            met: stampede_ok && j.stampede.load.errors.total() == 0,
        },
        collapse_target("no collapse: hits", j.sweep_hits),
        collapse_target("no collapse: misses", j.sweep_misses),
        Target {
            name: "peak RSS under load".into(),
            goal: "< 64 MiB".into(),
            measured: j.peak_rss_kib.map_or_else(
                || "unknown".into(),
                |k| format!("{:.1} MiB", k as f64 / 1024.0),
            ),
            ratio: j.peak_rss_kib.map(|k| k as f64 / (64.0 * 1024.0)),
            met: j.peak_rss_kib.is_some_and(|k| k < 64 * 1024),
        },
        Target {
            name: "ready after start".into(),
            goal: "< 1000 ms with a reachable, migrated database".into(),
            measured: j
                .ready_ms
                .map_or_else(|| "unknown".into(), |ms| format!("{ms:.0} ms")),
            ratio: j.ready_ms.map(|ms| ms / 1000.0),
            met: j.ready_ms.is_some_and(|ms| ms < 1000.0),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(rps: f64, conns: u32, errors: u64) -> Row {
        let mut r = Row::new("sweep hits", "sweep", "wrk");
        r.connections = conns;
        r.load.rps = rps;
        r.load.errors.timeout = errors;
        r
    }

    #[test]
    fn judges_collapse_and_ratios() {
        let sweep = [row(100.0, 10, 0), row(120.0, 50, 0), row(97.0, 1000, 0)];
        let t = collapse_target("hits", &sweep);
        assert!(t.met, "{t:?}");
        let sweep = [row(100.0, 10, 0), row(120.0, 50, 0), row(95.0, 1000, 0)];
        assert!(!collapse_target("hits", &sweep).met);
        let sweep = [row(100.0, 10, 0), row(99.0, 1000, 1)];
        assert!(!collapse_target("hits", &sweep).met);
        let mut l1 = row(60.0, 50, 0);
        l1.ratio = ratio(60.0, 100.0);
        l1.baseline = Some("nginx".into());
        assert!(ratio_target("L1", &l1, 0.6).met);
        assert!(!ratio_target("L1", &l1, 0.61).met);
        let mut l2 = row(30.0, 50, 0);
        l2.composite_ratio = Some(0.8);
        l2.composite = Some("1/(1/nginx + 1/redis)".into());
        let t = composite_target("Redis hits", &l2, 0.75);
        assert!(t.met && t.goal.contains("1/(1/nginx + 1/redis)"), "{t:?}");
        l2.composite_ratio = None;
        assert!(!composite_target("Redis hits", &l2, 0.75).met);
    }
}
