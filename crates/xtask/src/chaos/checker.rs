//! The consistency checks: pure functions over a recorded history.

use std::collections::BTreeMap;

use serde::Serialize;

use super::history::{FaultWindow, Op, OpKind, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// The value was never written: foreign name, another product's value, or a seq no
    /// writer had invoked before the read completed.
    NeverWritten,
    /// Older than a write acknowledged by the same replica before the read was invoked.
    StaleSameReplica,
    /// Older than a write acknowledged by another replica more than the coherence bound
    /// before the read was invoked.
    StaleCrossReplica,
    /// 404 for a product that exists (the workload's products are seeded and never
    /// deleted): a poisoned negative entry, say.
    Missing,
}

/// One bad read; indexes point into the history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    pub kind: ViolationKind,
    pub read: usize,
    /// The newer acknowledged write the read missed (stale reads only).
    pub newer_write: Option<usize>,
    /// How long before the read was invoked that write had been acknowledged.
    pub missed_by_ms: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Checked {
    pub reads_checked: u64,
    pub violations: Vec<Violation>,
}

impl Checked {
    pub fn count(&self, kind: ViolationKind) -> usize {
        self.violations.iter().filter(|v| v.kind == kind).count()
    }
}

/// (completion time, seq, history index) of an acknowledged write.
type AckedWrite = (u64, u64, usize);

/// Acknowledged writes of one product (or one product on one replica), by completion time,
/// with the running maximum seq, so "the newest write acknowledged before t" is a binary search.
#[derive(Debug, Default)]
struct Acked {
    complete_us: Vec<u64>,
    /// (seq, history index) of the highest seq among the first i+1 entries.
    best: Vec<(u64, usize)>,
}

impl Acked {
    fn build(mut entries: Vec<AckedWrite>) -> Self {
        entries.sort_unstable();
        let mut out = Self::default();
        for (complete, seq, idx) in entries {
            let best = match out.best.last() {
                Some(&(s, i)) if s >= seq => (s, i),
                _ => (seq, idx),
            };
            out.complete_us.push(complete);
            out.best.push(best);
        }
        out
    }

    /// The highest-seq write acknowledged strictly before `t_us`.
    fn newest_before(&self, t_us: u64) -> Option<(u64, usize)> {
        let n = self.complete_us.partition_point(|&c| c < t_us);
        n.checked_sub(1).map(|i| self.best[i])
    }
}

/// Checks 1 (no value that was never written) and 2 (no stale read) of every 200 read,
/// and that no read of the workload's products (which always exist) answers 404.
pub fn check(history: &[Op], coherence_bound_us: u64) -> Checked {
    // Highest seq invoked per product, by invoke time (prefix maxima).
    let mut invoked: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
    let mut acked_any: BTreeMap<u32, Vec<AckedWrite>> = BTreeMap::new();
    let mut acked_on: BTreeMap<(u32, usize), Vec<AckedWrite>> = BTreeMap::new();
    for (i, op) in history.iter().enumerate() {
        let (OpKind::Write, Some(seq)) = (op.kind, op.seq) else {
            continue;
        };
        invoked
            .entry(op.product)
            .or_default()
            .push((op.invoke_us, seq));
        if op.is_ok() {
            let entry = (op.complete_us, seq, i);
            acked_any.entry(op.product).or_default().push(entry);
            acked_on
                .entry((op.product, op.replica))
                .or_default()
                .push(entry);
        }
    }
    for list in invoked.values_mut() {
        list.sort_unstable();
        let mut max = 0;
        for e in list.iter_mut() {
            max = max.max(e.1);
            e.1 = max;
        }
    }
    let acked_any: BTreeMap<u32, Acked> = acked_any
        .into_iter()
        .map(|(k, v)| (k, Acked::build(v)))
        .collect();
    let acked_on: BTreeMap<(u32, usize), Acked> = acked_on
        .into_iter()
        .map(|(k, v)| (k, Acked::build(v)))
        .collect();

    let mut out = Checked::default();
    for (i, read) in history.iter().enumerate() {
        if read.kind == OpKind::Read && read.outcome == (Outcome::Status { code: 404 }) {
            out.reads_checked += 1;
            out.violations.push(Violation {
                kind: ViolationKind::Missing,
                read: i,
                newer_write: None,
                missed_by_ms: None,
            });
            continue;
        }
        if read.kind != OpKind::Read || !read.is_ok() {
            continue;
        }
        out.reads_checked += 1;
        let highest_invoked = invoked.get(&read.product).and_then(|list| {
            let n = list.partition_point(|&(t, _)| t <= read.complete_us);
            n.checked_sub(1).map(|k| list[k].1)
        });
        let seq = match (read.seq, &read.raw, highest_invoked) {
            (Some(s), None, Some(high)) if s <= high => s,
            _ => {
                out.violations.push(Violation {
                    kind: ViolationKind::NeverWritten,
                    read: i,
                    newer_write: None,
                    missed_by_ms: None,
                });
                continue;
            }
        };
        let same = acked_on
            .get(&(read.product, read.replica))
            .and_then(|a| a.newest_before(read.invoke_us))
            .filter(|&(w, _)| w > seq);
        let cross = read
            .invoke_us
            .checked_sub(coherence_bound_us)
            .and_then(|t| acked_any.get(&read.product)?.newest_before(t))
            .filter(|&(w, _)| w > seq);
        let (kind, found) = match (same, cross) {
            (Some(s), Some(c)) if c.0 > s.0 => (ViolationKind::StaleCrossReplica, c),
            (Some(s), _) => (ViolationKind::StaleSameReplica, s),
            (None, Some(c)) => (ViolationKind::StaleCrossReplica, c),
            (None, None) => continue,
        };
        let write = &history[found.1];
        out.violations.push(Violation {
            kind,
            read: i,
            newer_write: Some(found.1),
            missed_by_ms: Some(read.invoke_us.saturating_sub(write.complete_us) as f64 / 1000.0),
        });
    }
    out
}

/// Check 3's rule for one product once everything is quiet: the latest acknowledged seq,
/// or the seq of an indeterminate write invoked after it (which may have committed).
pub fn final_value_ok(history: &[Op], product: u32, seq: u64) -> bool {
    let writes = || {
        history
            .iter()
            .filter(move |op| op.kind == OpKind::Write && op.product == product)
    };
    let latest_acked = writes()
        .filter(|op| op.is_ok())
        .filter_map(|op| op.seq)
        .max();
    if latest_acked == Some(seq) {
        return true;
    }
    writes().any(|op| {
        op.is_indeterminate_write() && op.seq == Some(seq) && latest_acked.is_none_or(|l| seq > l)
    })
}

/// What the latest acknowledged seq of `product` is (for messages).
pub fn latest_acked(history: &[Op], product: u32) -> Option<u64> {
    history
        .iter()
        .filter(|op| op.kind == OpKind::Write && op.product == product && op.is_ok())
        .filter_map(|op| op.seq)
        .max()
}

/// The interleaving around a violation: ops on the same product within `radius_us` of the
/// read (at most `cap`, nearest first, returned in invoke order) and the fault windows
/// overlapping that span.
pub fn interleaving<'a>(
    history: &'a [Op],
    faults: &'a [FaultWindow],
    violation: &Violation,
    radius_us: u64,
    cap: usize,
) -> (Vec<&'a Op>, usize, Vec<&'a FaultWindow>) {
    let read = &history[violation.read];
    let from = read.invoke_us.saturating_sub(radius_us);
    let to = read.complete_us + radius_us;
    // The read and the write it missed first, then other writes, then reads, nearest first.
    let mut near: Vec<(u8, u64, usize)> = history
        .iter()
        .enumerate()
        .filter(|(_, op)| {
            op.product == read.product && op.complete_us >= from && op.invoke_us <= to
        })
        .map(|(i, op)| {
            let class = if i == violation.read || Some(i) == violation.newer_write {
                0
            } else if op.kind == OpKind::Write {
                1
            } else {
                2
            };
            (class, op.invoke_us.abs_diff(read.invoke_us), i)
        })
        .collect();
    near.sort_unstable();
    let total = near.len();
    near.truncate(cap);
    let mut ops: Vec<&Op> = near.iter().map(|&(_, _, i)| &history[i]).collect();
    ops.sort_by_key(|op| (op.invoke_us, op.complete_us));
    let windows = faults.iter().filter(|f| f.overlaps(from, to)).collect();
    let omitted = total - ops.len();
    (ops, omitted, windows)
}

#[cfg(test)]
#[path = "checker_tests.rs"]
mod tests;
