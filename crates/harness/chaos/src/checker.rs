//! The consistency checks: pure functions over a recorded history.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::history::{CREATION_PREFIX, Effect, FaultWindow, Op, OpKind, Outcome};

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
    /// 404 for a product that exists: seeded, or created (and not deleted since) before
    /// the read by its replica, or by another more than the coherence bound before (a
    /// poisoned negative entry, say).
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

/// Checks 1 (no value that was never written) and 2 (no stale read) of every read that
/// answered 200 or 404. A 404 is the value "absent": before a product's creation, or
/// after a delete; a product seeded before the run (a seq 0 write) is never absent.
pub fn check(history: &[Op], coherence_bound_us: u64) -> Checked {
    // Highest seq invoked per product, by invoke time (prefix maxima); the same for
    // deletes alone.
    let mut invoked: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
    let mut deletes: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
    let mut acked_any: BTreeMap<u32, Vec<AckedWrite>> = BTreeMap::new();
    let mut acked_on: BTreeMap<(u32, usize), Vec<AckedWrite>> = BTreeMap::new();
    // A creation's token: the product it made (0 when its answer was lost) and when it
    // was invoked.
    let mut created: BTreeMap<&str, (u32, u64)> = BTreeMap::new();
    let mut seeded: BTreeSet<u32> = BTreeSet::new();
    for (i, op) in history.iter().enumerate() {
        let (OpKind::Write, Some(seq)) = (op.kind, op.seq) else {
            continue;
        };
        match op.effect {
            Effect::Set if seq == 0 => {
                seeded.insert(op.product);
            }
            Effect::Create => {
                if let Some(token) = &op.raw {
                    created.insert(token, (op.product, op.invoke_us));
                }
            }
            Effect::Delete => deletes
                .entry(op.product)
                .or_default()
                .push((op.invoke_us, seq)),
            Effect::Set => {}
        }
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
    for list in invoked.values_mut().chain(deletes.values_mut()) {
        list.sort_unstable();
        let mut max = 0;
        for e in list.iter_mut() {
            max = max.max(e.1);
            e.1 = max;
        }
    }
    let highest = |lists: &BTreeMap<u32, Vec<(u64, u64)>>, product: u32, by_us: u64| {
        lists.get(&product).and_then(|list| {
            let n = list.partition_point(|&(t, _)| t <= by_us);
            n.checked_sub(1).map(|k| list[k].1)
        })
    };
    // A write of unknown outcome is known to have committed once a read returned it: from
    // then on it binds other replicas like an acknowledged one (the writer's quarantine
    // keeps a product's versions in seq order, so nothing older can follow it).
    let mut witnessed: BTreeMap<(u32, u64), (u64, usize)> = BTreeMap::new();
    let unknown: BTreeMap<(u32, u64), usize> = history
        .iter()
        .enumerate()
        .filter(|(_, op)| op.is_indeterminate_write() && op.product != 0)
        .filter_map(|(i, op)| Some(((op.product, op.seq?), i)))
        .collect();
    for read in history
        .iter()
        .filter(|op| op.kind == OpKind::Read && op.is_ok())
    {
        let Some(seq) = read.seq else { continue };
        if let Some(&write) = unknown.get(&(read.product, seq)) {
            let first = witnessed
                .entry((read.product, seq))
                .or_insert((read.complete_us, write));
            first.0 = first.0.min(read.complete_us);
        }
    }
    for (&(product, seq), &(seen_us, write)) in &witnessed {
        acked_any
            .entry(product)
            .or_default()
            .push((seen_us, seq, write));
    }
    let acked_any: BTreeMap<u32, Acked> = acked_any
        .into_iter()
        .map(|(k, v)| (k, Acked::build(v)))
        .collect();
    let acked_on: BTreeMap<(u32, usize), Acked> = acked_on
        .into_iter()
        .map(|(k, v)| (k, Acked::build(v)))
        .collect();
    // The newest write the read must not miss: acknowledged by its replica before it
    // began, or by any replica more than the bound before.
    let required = |read: &Op| -> Option<(ViolationKind, (u64, usize))> {
        let same = acked_on
            .get(&(read.product, read.replica))
            .and_then(|a| a.newest_before(read.invoke_us));
        let cross = read
            .invoke_us
            .checked_sub(coherence_bound_us)
            .and_then(|t| acked_any.get(&read.product)?.newest_before(t));
        match (same, cross) {
            (Some(s), Some(c)) if c.0 > s.0 => Some((ViolationKind::StaleCrossReplica, c)),
            (Some(s), _) => Some((ViolationKind::StaleSameReplica, s)),
            (None, Some(c)) => Some((ViolationKind::StaleCrossReplica, c)),
            (None, None) => None,
        }
    };
    let violation = |kind, read: usize, write: Option<(u64, usize)>| Violation {
        kind,
        read,
        newer_write: write.map(|w| w.1),
        missed_by_ms: write.map(|w| {
            history[read]
                .invoke_us
                .saturating_sub(history[w.1].complete_us) as f64
                / 1000.0
        }),
    };

    let mut out = Checked::default();
    for (i, read) in history.iter().enumerate() {
        if read.kind != OpKind::Read {
            continue;
        }
        if read.outcome == Outcome::NotFound {
            out.reads_checked += 1;
            let must = required(read);
            let explained = match must {
                // Nothing acknowledged yet: absent is right for a product not seeded.
                None => !seeded.contains(&read.product),
                // A delete at least that new had been invoked.
                Some((_, (seq, _))) => highest(&deletes, read.product, read.complete_us)
                    .is_some_and(|deleted| deleted >= seq),
            };
            if !explained {
                out.violations
                    .push(violation(ViolationKind::Missing, i, must.map(|m| m.1)));
            }
            continue;
        }
        if !read.is_ok() {
            continue;
        }
        out.reads_checked += 1;
        let creation = read
            .raw
            .as_deref()
            .filter(|raw| raw.starts_with(CREATION_PREFIX));
        let seq = match (read.seq, creation) {
            (_, Some(token)) => match created.get(token) {
                Some(&(product, at)) if at <= read.complete_us && product == read.product => 1,
                // Made by a create whose answer was lost: its id was never known, so no
                // write can be required of it.
                Some(&(0, at)) if at <= read.complete_us => continue,
                _ => {
                    out.violations
                        .push(violation(ViolationKind::NeverWritten, i, None));
                    continue;
                }
            },
            (Some(s), None)
                if read.raw.is_none()
                    && highest(&invoked, read.product, read.complete_us)
                        .is_some_and(|high| s <= high) =>
            {
                s
            }
            _ => {
                out.violations
                    .push(violation(ViolationKind::NeverWritten, i, None));
                continue;
            }
        };
        if let Some((kind, write)) = required(read).filter(|&(_, (w, _))| w > seq) {
            out.violations.push(violation(kind, i, Some(write)));
        }
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
