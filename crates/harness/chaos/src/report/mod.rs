//! target/chaos/report.md, report.json and timeline.svg: what a run found, and the
//! markdown of it (`markdown`).

mod markdown;

pub use markdown::markdown;

use serde::Serialize;

use super::{
    availability::Availability,
    checker::{Violation, ViolationKind, interleaving},
    history::{FaultWindow, Op, OpKind, Outcome},
};

/// Violations shown with their interleaving (the count covers all of them).
pub const DETAILED: usize = 20;
const RADIUS_US: u64 = 2_000_000;

#[derive(Debug, Serialize)]
pub struct Report {
    pub seed: u64,
    pub command: String,
    pub started_unix: u64,
    pub run_seconds: f64,
    pub replicas: usize,
    pub api_settings: Vec<String>,
    pub coherence_bound_ms: u64,
    pub totals: Totals,
    pub reads_checked: u64,
    pub violations_total: usize,
    pub violations_by_kind: Vec<(ViolationKind, usize)>,
    /// Acknowledged writes × replicas: the chances a stale read had.
    pub chances: u64,
    /// Stale reads per chance (see `availability::stale_rate`).
    pub stale_read_rate: f64,
    pub stale_read_rate_is_upper_bound: bool,
    /// Share of the reads answered 200 that a cache tier answered.
    pub cache_share: f64,
    /// Entries served past their TTL, as the replicas counted them.
    pub aging: Aging,
    pub availability: Vec<Availability>,
    pub convergence: Convergence,
    pub faults: Vec<FaultWindow>,
    pub violations: Vec<Detailed>,
    pub notes: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Totals {
    pub reads: u64,
    pub reads_ok: u64,
    pub reads_by_source: Vec<(String, u64)>,
    pub writes: u64,
    pub writes_acknowledged: u64,
    pub writes_indeterminate: u64,
    pub abandoned: u64,
    pub io_errors: u64,
    pub statuses: Vec<(u16, u64)>,
}

#[derive(Debug, Default, Serialize)]
pub struct Convergence {
    pub ok: bool,
    pub settled_after_ms: Option<f64>,
    pub last_fault_end_s: Option<f64>,
    pub problems: Vec<String>,
    /// Per replica: how the burst of GETs of unknown ids was answered (404 expected).
    pub burst: Vec<String>,
}

/// Reads served from an entry past its TTL, summed over the replicas at the end of the
/// run (a replica restarted by a fault counts only since it started, so a lower bound).
#[derive(Debug, Default, Serialize)]
pub struct Aging {
    /// Served while one background refresh ran (stale-while-revalidate).
    pub stale_served: u64,
    /// Served because PostgreSQL failed (stale-if-error).
    pub stale_if_error_served: u64,
    /// Replicas whose counters could not be read.
    pub unread: usize,
}

#[derive(Debug, Serialize)]
pub struct Detailed {
    pub kind: ViolationKind,
    pub read: Op,
    pub newer_write: Option<Op>,
    pub missed_by_ms: Option<f64>,
    pub interleaving: Vec<Op>,
    pub interleaving_omitted: usize,
    pub faults: Vec<FaultWindow>,
}

fn source_label(op: &Op) -> String {
    match (op.source, op.cache_tier) {
        (Some(s), Some(t)) => format!("{s}/{t}"),
        (Some(s), None) => s.to_owned(),
        _ => "?".to_owned(),
    }
}

pub fn totals(history: &[Op]) -> Totals {
    let mut t = Totals::default();
    let mut sources = std::collections::BTreeMap::<String, u64>::new();
    let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
    for op in history {
        match op.kind {
            OpKind::Read => {
                t.reads += 1;
                if op.is_ok() {
                    t.reads_ok += 1;
                    *sources.entry(source_label(op)).or_default() += 1;
                }
            }
            OpKind::Write if op.is_ok() => {
                t.writes += 1;
                t.writes_acknowledged += 1;
            }
            OpKind::Write => {
                t.writes += 1;
                t.writes_indeterminate += 1;
            }
        }
        match &op.outcome {
            Outcome::Abandoned => t.abandoned += 1,
            Outcome::Io { .. } => t.io_errors += 1,
            Outcome::Status { code } => *statuses.entry(*code).or_default() += 1,
            Outcome::NotFound => *statuses.entry(404).or_default() += 1,
            Outcome::Ok => {}
        }
    }
    t.reads_by_source = sources.into_iter().collect();
    t.statuses = statuses.into_iter().collect();
    t
}

pub fn detail(history: &[Op], faults: &[FaultWindow], violations: &[Violation]) -> Vec<Detailed> {
    violations
        .iter()
        .take(DETAILED)
        .map(|v| {
            let (ops, omitted, windows) = interleaving(history, faults, v, RADIUS_US, 200);
            Detailed {
                kind: v.kind,
                read: history[v.read].clone(),
                newer_write: v.newer_write.map(|i| history[i].clone()),
                missed_by_ms: v.missed_by_ms,
                interleaving: ops.into_iter().cloned().collect(),
                interleaving_omitted: omitted,
                faults: windows.into_iter().cloned().collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{markdown::op_line, *};
    use crate::{checker::check, history::build::*, timeline::timeline_svg};

    #[test]
    fn reports_show_the_violation_and_a_well_formed_timeline() {
        let h = vec![
            write(1, 0, 0, 0, 5),
            write(1, 1, 1, 10, 20),
            read(1, 1, 0, 1500, 1501),
        ];
        let faults = vec![FaultWindow {
            kind: "redis-sigstop".into(),
            detail: "a <b>".into(),
            start_us: 1_000_000,
            end_us: 2_000_000,
        }];
        let checked = check(&h, 1_000_000);
        let svg = timeline_svg(&h, &faults, &checked.violations, 3_000_000);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("stroke=\"red\"") && svg.contains("a &lt;b>"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        let details = detail(&h, &faults, &checked.violations);
        assert_eq!(details.len(), 1);
        assert_eq!(details[0].interleaving.len(), 3);
        assert_eq!(details[0].faults.len(), 1);
        let line = op_line(&details[0].read, ">>");
        assert!(
            line.contains("1.500–1.501 | read | r1 | 0 | ok | cache/memory"),
            "{line}"
        );
        assert_eq!(totals(&h).writes_acknowledged, 2);
    }
}
