//! target/chaos/report.md, report.json and timeline.svg.

use std::fmt::Write as _;

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

fn secs(us: u64) -> String {
    format!("{:.3}", us as f64 / 1e6)
}

fn op_line(op: &Op, mark: &str) -> String {
    let outcome = match &op.outcome {
        Outcome::Ok => "ok".to_owned(),
        Outcome::NotFound => "404 (absent)".to_owned(),
        Outcome::Status { code } => format!("HTTP {code}"),
        Outcome::Abandoned => "abandoned".to_owned(),
        Outcome::Io { error } => format!("io: {error}"),
    };
    let value = match (op.seq, &op.raw) {
        (_, Some(raw)) => format!("{raw:?}"),
        (Some(s), None) => s.to_string(),
        (None, None) => "-".to_owned(),
    };
    let kind = if op.kind == OpKind::Read {
        "read"
    } else {
        "write"
    };
    format!(
        "| {mark} | {}–{} | {kind} | r{} | {value} | {outcome} | {} |",
        secs(op.invoke_us),
        secs(op.complete_us),
        op.replica,
        if op.kind == OpKind::Read {
            source_label(op)
        } else {
            String::new()
        }
    )
}

fn pct(share: Option<f64>) -> String {
    share.map_or("–".into(), |s| format!("{:.2} %", s * 100.0))
}

pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# CacheMe chaos report\n");
    let _ = writeln!(
        s,
        "`{}` (seed {}; rerun with `--seed {}`)\n",
        r.command, r.seed, r.seed
    );
    let _ = writeln!(
        s,
        "{:.1} s, {} replicas, coherence bound {} ms. Replica settings: `{}`.\n",
        r.run_seconds,
        r.replicas,
        r.coherence_bound_ms,
        r.api_settings.join(" ")
    );
    let _ = writeln!(s, "## Verdict\n");
    let _ = writeln!(
        s,
        "- **{} reads checked, {} violations**",
        r.reads_checked, r.violations_total
    );
    for (kind, n) in &r.violations_by_kind {
        let _ = writeln!(s, "  - {kind:?}: {n}");
    }
    let bound = if r.stale_read_rate_is_upper_bound {
        "≤ "
    } else {
        ""
    };
    let _ = writeln!(
        s,
        "- stale reads per acknowledged write and replica: {bound}{:.1e} over {} chances{}",
        r.stale_read_rate,
        r.chances,
        if r.stale_read_rate_is_upper_bound {
            " (95 % upper bound, rule of three: reads are correlated, writes × replicas are the chances)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "- reads answered by a cache tier: {:.1} %",
        r.cache_share * 100.0
    );
    let _ = writeln!(
        s,
        "- entries past their TTL served (at least): {} while refreshed, {} because PostgreSQL failed{}",
        r.aging.stale_served,
        r.aging.stale_if_error_served,
        if r.aging.unread > 0 {
            format!(" ({} replicas did not answer /cache/stats)", r.aging.unread)
        } else {
            String::new()
        }
    );
    let c = &r.convergence;
    let _ = writeln!(
        s,
        "- convergence: {}{}",
        if c.ok { "ok" } else { "**FAILED**" },
        c.settled_after_ms.map_or(String::new(), |ms| format!(
            ", settled {ms:.0} ms after the workload stopped"
        ))
    );
    for p in &c.problems {
        let _ = writeln!(s, "  - {p}");
    }
    for b in &c.burst {
        let _ = writeln!(s, "  - {b}");
    }
    for n in &r.notes {
        let _ = writeln!(s, "- {n}");
    }
    let t = &r.totals;
    let _ = writeln!(s, "\n## Operations\n");
    let _ = writeln!(
        s,
        "reads {} (200: {}), writes {} (acknowledged {}, indeterminate {}), abandoned {}, I/O errors {}, other statuses {:?}\n\nreads answered 200 by source: {:?}\n",
        t.reads,
        t.reads_ok,
        t.writes,
        t.writes_acknowledged,
        t.writes_indeterminate,
        t.abandoned,
        t.io_errors,
        t.statuses,
        t.reads_by_source
    );
    let _ = writeln!(s, "## Availability by fault\n");
    let _ = writeln!(
        s,
        "| fault | windows | seconds | reads | read 200 | read p99 ms | writes | write 200 |\n|---|--:|--:|--:|--:|--:|--:|--:|"
    );
    for a in &r.availability {
        let _ = writeln!(
            s,
            "| {} | {} | {:.1} | {} | {} | {} | {} | {} |",
            a.fault,
            a.windows,
            a.seconds,
            a.reads,
            pct(a.read_ok_share),
            a.read_p99_ms.map_or("–".into(), |v| format!("{v:.1}")),
            a.writes,
            pct((a.writes > 0).then(|| a.writes_ok as f64 / a.writes as f64)),
        );
    }
    let _ = writeln!(s, "\n![timeline](timeline.svg)\n\n## Faults\n");
    let _ = writeln!(s, "| start s | end s | fault | detail |\n|--:|--:|---|---|");
    for f in &r.faults {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            secs(f.start_us),
            secs(f.end_us),
            f.kind,
            f.detail
        );
    }
    if !r.violations.is_empty() {
        let _ = writeln!(
            s,
            "\n## Violations (first {} of {}; report.json has up to 200 ops on the product within ±2 s of each)\n",
            r.violations.len(),
            r.violations_total
        );
    }
    for (i, v) in r.violations.iter().enumerate() {
        let _ = writeln!(
            s,
            "### {}. {:?}: product {}, read on replica {}\n",
            i + 1,
            v.kind,
            v.read.product,
            v.read.replica
        );
        if let (Some(w), Some(ms)) = (&v.newer_write, v.missed_by_ms) {
            let _ = writeln!(
                s,
                "The read (marked >>) returned seq {}; write seq {} (marked w) via replica {} had been acknowledged {ms:.1} ms before the read began.\n",
                v.read.seq.map_or("-".into(), |s| s.to_string()),
                w.seq.map_or("-".into(), |s| s.to_string()),
                w.replica
            );
        }
        for f in &v.faults {
            let _ = writeln!(
                s,
                "- fault {} {}–{} s: {}",
                f.kind,
                secs(f.start_us),
                secs(f.end_us),
                f.detail
            );
        }
        let _ = writeln!(
            s,
            "\n| | time s | op | replica | seq | outcome | source |\n|---|---|---|---|---|---|---|"
        );
        // The table keeps to writes within 300 ms and reads within 50 ms of the violating read.
        for op in v.interleaving.iter().filter(|op| {
            let limit = if op.kind == OpKind::Write {
                300_000
            } else {
                50_000
            };
            op.invoke_us.abs_diff(v.read.invoke_us) <= limit
        }) {
            let mark = if *op == v.read {
                "**>>**"
            } else if Some(op) == v.newer_write.as_ref() {
                "**w**"
            } else {
                ""
            };
            let _ = writeln!(s, "{}", op_line(op, mark));
        }
        let _ = writeln!(s);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
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
