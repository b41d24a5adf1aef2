//! Check 4: how many reads (and writes) were answered 200 during each kind of fault.

use std::collections::BTreeMap;

use serde::Serialize;

use super::history::{FaultWindow, Op, OpKind, Outcome};

pub const NO_FAULT: &str = "(no fault)";
pub const ALL: &str = "(whole run)";

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Availability {
    pub fault: String,
    pub windows: usize,
    pub seconds: f64,
    /// Reads the client did not abandon.
    pub reads: u64,
    pub reads_ok: u64,
    pub read_ok_share: Option<f64>,
    pub read_p99_ms: Option<f64>,
    pub writes: u64,
    pub writes_ok: u64,
}

#[derive(Debug, Default)]
struct Tally {
    windows: usize,
    seconds: f64,
    reads: u64,
    reads_ok: u64,
    latencies: Vec<f64>,
    writes: u64,
    writes_ok: u64,
}

impl Tally {
    fn add(&mut self, op: &Op) {
        match op.kind {
            OpKind::Read => {
                self.reads += 1;
                self.latencies.push(op.latency_ms());
                // A 404 is an answer (a product deleted, or not created yet); whether it
                // was the right one is the checker's business.
                if op.answered() {
                    self.reads_ok += 1;
                }
            }
            OpKind::Write => {
                self.writes += 1;
                if op.is_ok() {
                    self.writes_ok += 1;
                }
            }
        }
    }

    fn row(mut self, fault: &str) -> Availability {
        self.latencies.sort_by(f64::total_cmp);
        Availability {
            fault: fault.to_owned(),
            windows: self.windows,
            seconds: self.seconds,
            reads: self.reads,
            reads_ok: self.reads_ok,
            read_ok_share: (self.reads > 0).then(|| self.reads_ok as f64 / self.reads as f64),
            read_p99_ms: percentile(&self.latencies, 99.0),
            writes: self.writes,
            writes_ok: self.writes_ok,
        }
    }
}

/// The value at percentile `p` of `sorted` (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64 - 1e-9).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The fault window (one runs at a time) an instant falls in.
fn window_at(sorted: &[&FaultWindow], t_us: u64) -> Option<usize> {
    let n = sorted.partition_point(|w| w.start_us <= t_us);
    (0..n).rev().take(2).find(|&i| sorted[i].contains(t_us))
}

/// One row per fault kind (by the op's invoke time), one for quiet time, one for the run.
/// Abandoned operations are left out: the client gave up on them on purpose.
pub fn availability(history: &[Op], faults: &[FaultWindow], run_us: u64) -> Vec<Availability> {
    let mut sorted: Vec<&FaultWindow> = faults.iter().collect();
    sorted.sort_by_key(|w| w.start_us);
    let mut by_kind: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut quiet = Tally::default();
    let mut all = Tally::default();
    let mut faulty_us = 0;
    for w in &sorted {
        let tally = by_kind.entry(&w.kind).or_default();
        tally.windows += 1;
        let len = w.end_us.saturating_sub(w.start_us);
        tally.seconds += len as f64 / 1e6;
        faulty_us += len;
    }
    for op in history.iter().filter(|op| op.outcome != Outcome::Abandoned) {
        all.add(op);
        match window_at(&sorted, op.invoke_us) {
            Some(i) => by_kind.entry(&sorted[i].kind).or_default().add(op),
            None => quiet.add(op),
        }
    }
    quiet.seconds = run_us.saturating_sub(faulty_us) as f64 / 1e6;
    all.seconds = run_us as f64 / 1e6;
    all.windows = sorted.len();
    let mut rows: Vec<Availability> = by_kind
        .into_iter()
        .map(|(kind, tally)| tally.row(kind))
        .collect();
    rows.push(quiet.row(NO_FAULT));
    rows.push(all.row(ALL));
    rows
}

/// The rate of stale reads per chance to race, and whether it is an upper bound. The
/// chances are acknowledged writes × replicas, not reads: reads are strongly correlated
/// (a few hot keys, mostly L1 hits between writes), so counting them overstated what a
/// clean run shows. With no stale read, the 95 % upper bound (rule of three, 3 / n).
pub fn stale_rate(bad: u64, chances: u64) -> (f64, bool) {
    if chances == 0 {
        return (1.0, true);
    }
    if bad == 0 {
        return (3.0 / chances as f64, true);
    }
    (bad as f64 / chances as f64, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::build::*;

    fn window(kind: &str, from_ms: u64, to_ms: u64) -> FaultWindow {
        FaultWindow {
            kind: kind.into(),
            detail: String::new(),
            start_us: from_ms * 1000,
            end_us: to_ms * 1000,
        }
    }

    #[test]
    fn reads_are_counted_under_the_fault_they_started_in() {
        let faults = vec![
            window("redis-pause", 100, 200),
            window("pg-restart", 300, 400),
        ];
        let h = vec![
            read(1, 0, 0, 10, 11),
            read(1, 0, 0, 150, 160),
            with(read(1, 0, 0, 150, 190), Outcome::Status { code: 503 }),
            with(read(1, 0, 0, 150, 190), Outcome::Abandoned),
            with(read(1, 0, 0, 350, 352), Outcome::Status { code: 503 }),
            write(1, 0, 1, 310, 320),
        ];
        let rows = availability(&h, &faults, 1_000_000);
        let names: Vec<&str> = rows.iter().map(|r| r.fault.as_str()).collect();
        assert_eq!(names, ["pg-restart", "redis-pause", NO_FAULT, ALL]);
        assert_eq!((rows[0].reads, rows[0].reads_ok), (1, 0));
        assert_eq!((rows[0].writes, rows[0].writes_ok), (1, 1));
        assert_eq!((rows[1].reads, rows[1].reads_ok), (2, 1));
        assert_eq!(rows[1].read_ok_share, Some(0.5));
        assert_eq!(rows[1].read_p99_ms, Some(40.0));
        assert_eq!((rows[2].reads, rows[2].reads_ok), (1, 1));
        assert_eq!(
            (rows[3].reads, rows[3].reads_ok, rows[3].windows),
            (4, 2, 2)
        );
        assert!((rows[2].seconds - 0.8).abs() < 1e-9);
    }

    #[test]
    fn the_stale_rate_is_per_chance_and_bounded_by_the_rule_of_three() {
        assert_eq!(stale_rate(1, 1000), (0.001, false));
        assert_eq!(stale_rate(0, 30_000), (0.0001, true));
        assert_eq!(stale_rate(0, 0), (1.0, true));
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 99.0), Some(3.0));
    }
}
