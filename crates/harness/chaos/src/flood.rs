//! `api-flood+pg-latency` (issue #22, C7): replica 0's PostgreSQL pool saturated. Its
//! link to PostgreSQL is slowed (so a query holds a pooled connection for a round trip
//! of up to twice the jitter) while [`CONNECTIONS`] clients send it uncached reads
//! (`GET /products?limit=100`, always answered from PostgreSQL) back to back: more
//! requests wait for the pool than it has connections (4 in the chaos settings), so the
//! checked readers' misses and the writers' transactions on that replica queue behind
//! them, some up to their acquire timeout (a 503, or a write of unknown outcome), while
//! the outbox poll must go on through its own connection.
//!
//! The rest of the load is closed-loop and light; this is the window in which it is not.
//! The flood's own requests are not in the history (they read no product by id); the
//! window's note in the report says how many were answered, and how.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::{cluster::Cluster, faults::Planned};
use cacheme_harness::http::{Conn, Reply};

/// Clients of the flood, each with one keep-alive connection: eight times the chaos
/// settings' pool (`DB_MAX_CONNECTIONS=4`).
pub const CONNECTIONS: usize = 32;

/// The flood's request: a page of products, which no tier caches.
const PATH: &str = "/products?limit=100";

/// Floods replica 0 for `len` with its link to PostgreSQL jittered by up to
/// `fault.target` ms each way; returns what the flood's requests got.
pub fn apply(cluster: &Cluster, fault: &Planned, len: Duration) -> anyhow::Result<String> {
    let port = cluster
        .replicas
        .first()
        .context("no replica to flood")?
        .port;
    cluster.pg_proxy.set_jitter(fault.target);
    let outcomes = Mutex::new(Outcomes::default());
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..CONNECTIONS {
            s.spawn(|| {
                let mut conn = Conn::new(port);
                let mut mine = Outcomes::default();
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    let reply = conn.send("GET", PATH, None, None);
                    mine.add(&reply, sent.elapsed());
                    if matches!(reply, Reply::Io(_)) {
                        // Refused or cut (the replica restarting, say): not a busy loop.
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
                if let Ok(mut all) = outcomes.lock() {
                    all.merge(mine);
                }
            });
        }
        std::thread::sleep(len);
        stop.store(true, Ordering::Relaxed);
    });
    cluster.pg_proxy.set_jitter(0);
    let outcomes = outcomes
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a flood client panicked"))?;
    Ok(outcomes.summary(started.elapsed()))
}

/// What the flood's requests got.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcomes {
    by_status: BTreeMap<u16, u64>,
    failed: u64,
    latencies_ms: Vec<f64>,
}

impl Outcomes {
    fn add(&mut self, reply: &Reply, took: Duration) {
        match reply {
            Reply::Answer { status, .. } => *self.by_status.entry(*status).or_default() += 1,
            Reply::Abandoned | Reply::Io(_) => self.failed += 1,
        }
        self.latencies_ms.push(took.as_secs_f64() * 1000.0);
    }

    fn merge(&mut self, other: Outcomes) {
        for (status, n) in other.by_status {
            *self.by_status.entry(status).or_default() += n;
        }
        self.failed += other.failed;
        self.latencies_ms.extend(other.latencies_ms);
    }

    /// One line for the report: counts by status and the median and slowest answer.
    pub fn summary(mut self, took: Duration) -> String {
        let total: u64 = self.by_status.values().sum::<u64>() + self.failed;
        let statuses: Vec<String> = self
            .by_status
            .iter()
            .map(|(status, n)| format!("{n} × {status}"))
            .collect();
        self.latencies_ms.sort_by(f64::total_cmp);
        let median = self
            .latencies_ms
            .get(self.latencies_ms.len() / 2)
            .copied()
            .unwrap_or(0.0);
        let slowest = self.latencies_ms.last().copied().unwrap_or(0.0);
        format!(
            "flood: {total} requests in {:.1} s from {CONNECTIONS} connections ({}{}), \
             median {median:.0} ms, slowest {slowest:.0} ms",
            took.as_secs_f64(),
            if statuses.is_empty() {
                "none answered".to_owned()
            } else {
                statuses.join(", ")
            },
            if self.failed > 0 {
                format!(", {} failed", self.failed)
            } else {
                String::new()
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_answers_by_status_and_failures() {
        let mut a = Outcomes::default();
        let ok = Reply::Answer {
            status: 200,
            body: String::new(),
        };
        a.add(&ok, Duration::from_millis(10));
        a.add(&ok, Duration::from_millis(30));
        let mut b = Outcomes::default();
        b.add(
            &Reply::Answer {
                status: 503,
                body: String::new(),
            },
            Duration::from_millis(1000),
        );
        b.add(&Reply::Io("reset".into()), Duration::from_millis(5));
        a.merge(b);
        assert_eq!(
            a.summary(Duration::from_millis(2500)),
            "flood: 4 requests in 2.5 s from 32 connections (2 × 200, 1 × 503, 1 failed), \
             median 30 ms, slowest 1000 ms"
        );
        assert!(
            Outcomes::default()
                .summary(Duration::ZERO)
                .contains("0 requests in 0.0 s from 32 connections (none answered)")
        );
    }
}
