//! The fault schedule (a pure function of the seed) and the code that applies and heals faults.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::{Clock, cluster::Cluster, history::FaultWindow, rng::Rng};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    RedisPause,
    RedisKill,
    RedisFlushall,
    RedisEviction,
    PubsubKill,
    PgRowLock,
    PgRestart,
    PgTerminate,
    ReplicaKill,
    ClusterMasterKill,
    ClusterFailover,
    ClusterSlotMigration,
}

impl FaultKind {
    pub const ALL: [FaultKind; 9] = [
        FaultKind::RedisPause,
        FaultKind::RedisKill,
        FaultKind::RedisFlushall,
        FaultKind::RedisEviction,
        FaultKind::PubsubKill,
        FaultKind::PgRowLock,
        FaultKind::PgRestart,
        FaultKind::PgTerminate,
        FaultKind::ReplicaKill,
    ];

    /// The deck of a run against a Redis Cluster: the cluster's faults and the rest.
    pub const CLUSTER: [FaultKind; 7] = [
        FaultKind::ClusterMasterKill,
        FaultKind::ClusterFailover,
        FaultKind::ClusterSlotMigration,
        FaultKind::PgRowLock,
        FaultKind::PgRestart,
        FaultKind::PgTerminate,
        FaultKind::ReplicaKill,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::RedisPause => "redis-sigstop",
            FaultKind::RedisKill => "redis-kill-restart",
            FaultKind::RedisFlushall => "redis-flushall",
            FaultKind::RedisEviction => "redis-eviction",
            FaultKind::PubsubKill => "redis-kill-pubsub-clients",
            FaultKind::PgRowLock => "pg-row-lock",
            FaultKind::PgRestart => "pg-restart",
            FaultKind::PgTerminate => "pg-terminate-backends",
            FaultKind::ReplicaKill => "api-kill-restart",
            FaultKind::ClusterMasterKill => "redis-cluster-kill-master",
            FaultKind::ClusterFailover => "redis-cluster-failover",
            FaultKind::ClusterSlotMigration => "redis-cluster-migrate-slot",
        }
    }
}

/// One fault of the plan: a quiet gap, then the fault for `len_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    pub kind: FaultKind,
    pub gap_ms: u64,
    pub len_ms: u64,
    /// The product a row lock holds, or the replica a kill hits.
    pub target: u64,
}

/// Enough faults to fill `duration_ms`: every kind once per shuffled round, gaps of 1–3 s,
/// windows of 1–4 s. The same seed gives the same plan.
pub fn plan(seed: u64, duration_ms: u64, replicas: usize, products: u32) -> Vec<Planned> {
    plan_from(&FaultKind::ALL, seed, duration_ms, replicas, products)
}

/// [`plan`] for a run against a Redis Cluster.
pub fn cluster_plan(seed: u64, duration_ms: u64, replicas: usize, products: u32) -> Vec<Planned> {
    plan_from(&FaultKind::CLUSTER, seed, duration_ms, replicas, products)
}

fn plan_from(
    kinds: &[FaultKind],
    seed: u64,
    duration_ms: u64,
    replicas: usize,
    products: u32,
) -> Vec<Planned> {
    let mut rng = Rng::fork(seed, 0xFA17);
    let mut out = Vec::new();
    let mut planned = 0;
    while planned < duration_ms {
        let mut deck = kinds.to_vec();
        rng.shuffle(&mut deck);
        for kind in deck {
            let gap_ms = rng.between(1000, 3000);
            let len_ms = rng.between(1000, 4000);
            let target = match kind {
                FaultKind::ReplicaKill => rng.below(replicas as u64),
                FaultKind::PgRowLock | FaultKind::ClusterSlotMigration => {
                    rng.between(1, u64::from(products))
                }
                FaultKind::ClusterMasterKill | FaultKind::ClusterFailover => rng.below(3),
                _ => 0,
            };
            out.push(Planned {
                kind,
                gap_ms,
                len_ms,
                target,
            });
            planned += gap_ms + len_ms;
        }
    }
    out
}

/// Runs the plan from now until `end_by` (no fault starts unless it can end by then), one
/// fault at a time, and returns the windows as they really happened.
pub fn run(
    cluster: &mut Cluster,
    plan: &[Planned],
    clock: Clock,
    end_by: Instant,
    current: &Mutex<String>,
) -> anyhow::Result<Vec<FaultWindow>> {
    let mut windows = Vec::new();
    for fault in plan {
        let gap = Duration::from_millis(fault.gap_ms);
        let len = Duration::from_millis(fault.len_ms);
        if Instant::now() + gap + len > end_by {
            break;
        }
        std::thread::sleep(gap);
        let detail = describe(cluster, fault);
        set(current, &format!("{} {detail}", fault.kind.name()));
        let start_us = clock.us();
        let result = apply(cluster, fault, len);
        let end_us = clock.us();
        set(current, "none");
        windows.push(FaultWindow {
            kind: fault.kind.name().to_owned(),
            detail,
            start_us,
            end_us,
        });
        result.with_context(|| format!("fault {}", fault.kind.name()))?;
    }
    Ok(windows)
}

fn set(current: &Mutex<String>, text: &str) {
    if let Ok(mut c) = current.lock() {
        text.clone_into(&mut c);
    }
}

fn describe(cluster: &Cluster, fault: &Planned) -> String {
    let len = fault.len_ms;
    match fault.kind {
        FaultKind::PgRowLock => format!("product {} locked for {len} ms", fault.target),
        FaultKind::ReplicaKill => {
            let i = fault.target as usize;
            let port = cluster.replicas.get(i).map_or(0, |r| r.port);
            format!("replica {i} (port {port}) down for {len} ms, then restarted")
        }
        FaultKind::RedisFlushall => "FLUSHALL, then the window to recover".into(),
        FaultKind::PubsubKill => "CLIENT KILL TYPE pubsub every second".into(),
        FaultKind::PgTerminate => "pg_terminate_backend every 500 ms".into(),
        FaultKind::RedisEviction => "maxmemory 1mb, volatile-lru".into(),
        FaultKind::ClusterSlotMigration => {
            format!(
                "the slot of product {}'s bucket moved to another master",
                fault.target
            )
        }
        FaultKind::ClusterMasterKill => format!(
            "master #{} SIGKILLed for {len} ms, then restarted",
            fault.target
        ),
        _ => format!("{len} ms"),
    }
}

/// Applies the fault, keeps it for `len` (repeating the instantaneous ones), then heals it.
fn apply(cluster: &mut Cluster, fault: &Planned, len: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + len;
    match fault.kind {
        FaultKind::RedisPause => {
            cluster.single_redis()?.pause()?;
            std::thread::sleep(len);
            cluster.single_redis()?.resume()
        }
        FaultKind::RedisKill => {
            cluster.single_redis()?.kill()?;
            std::thread::sleep(len);
            cluster.single_redis()?.restart()
        }
        FaultKind::ClusterMasterKill
        | FaultKind::ClusterFailover
        | FaultKind::ClusterSlotMigration => {
            super::redis_faults::apply(cluster.redis_cluster()?, fault, len)
        }
        FaultKind::RedisFlushall => {
            cluster.redis(&["FLUSHALL"])?;
            std::thread::sleep(len);
            Ok(())
        }
        FaultKind::RedisEviction => {
            cluster.redis(&["CONFIG", "SET", "maxmemory-policy", "volatile-lru"])?;
            cluster.redis(&["CONFIG", "SET", "maxmemory", "1mb"])?;
            std::thread::sleep(len);
            cluster.redis(&["CONFIG", "SET", "maxmemory", "0"])?;
            cluster.redis(&["CONFIG", "SET", "maxmemory-policy", "noeviction"])?;
            Ok(())
        }
        FaultKind::PubsubKill => repeat(until, Duration::from_secs(1), || {
            cluster
                .redis(&["CLIENT", "KILL", "TYPE", "pubsub"])
                .map(drop)
        }),
        FaultKind::PgTerminate => repeat(until, Duration::from_millis(500), || {
            cluster.psql_wait(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = 'cacheme-api'",
            )
        }),
        FaultKind::PgRowLock => {
            let sql = format!(
                "BEGIN; SELECT 1 FROM products WHERE id = {} FOR UPDATE; SELECT pg_sleep({:.3}); COMMIT;",
                fault.target,
                len.as_secs_f64()
            );
            let mut session = SessionGuard(Some(cluster.psql(&sql)?));
            session.wait(len + Duration::from_secs(5))
        }
        FaultKind::PgRestart => {
            cluster.postgres.stop()?;
            std::thread::sleep(len);
            cluster.postgres.start_again()
        }
        FaultKind::ReplicaKill => {
            let replica = cluster
                .replicas
                .get_mut(fault.target as usize)
                .context("no such replica")?;
            replica.kill()?;
            std::thread::sleep(len);
            replica.restart().map(drop)
        }
    }
}

fn repeat(
    until: Instant,
    every: Duration,
    mut action: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    loop {
        action()?;
        let next = Instant::now() + every;
        if next >= until {
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
            return Ok(());
        }
        std::thread::sleep(every);
    }
}

/// A psql session that is killed if it outlives its welcome (or the run fails).
#[derive(Debug)]
struct SessionGuard(Option<std::process::Child>);

impl SessionGuard {
    fn wait(&mut self, patience: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + patience;
        let Some(child) = self.0.as_mut() else {
            return Ok(());
        };
        loop {
            if let Some(status) = child.try_wait()? {
                self.0 = None;
                anyhow::ensure!(status.success(), "the row-lock session failed ({status})");
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "the row-lock session hung");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_follows_the_seed_and_covers_every_kind() {
        let a = plan(7, 60_000, 2, 6);
        assert_eq!(a, plan(7, 60_000, 2, 6));
        assert_ne!(a, plan(8, 60_000, 2, 6));
        let first_round: Vec<FaultKind> = a.iter().take(9).map(|p| p.kind).collect();
        for kind in FaultKind::ALL {
            assert!(first_round.contains(&kind), "{kind:?} missing");
        }
        for p in &a {
            assert!((1000..=3000).contains(&p.gap_ms) && (1000..=4000).contains(&p.len_ms));
            match p.kind {
                FaultKind::ReplicaKill => assert!(p.target < 2),
                FaultKind::PgRowLock => assert!((1..=6).contains(&p.target)),
                _ => assert_eq!(p.target, 0),
            }
        }
        let planned: u64 = a.iter().map(|p| p.gap_ms + p.len_ms).sum();
        assert!(planned >= 60_000);
    }

    #[test]
    fn a_cluster_plan_uses_the_cluster_deck_only() {
        let plan = cluster_plan(7, 60_000, 2, 6);
        let first_round: Vec<FaultKind> = plan.iter().take(7).map(|p| p.kind).collect();
        for kind in FaultKind::CLUSTER {
            assert!(first_round.contains(&kind), "{kind:?} missing");
        }
        for p in &plan {
            assert!(FaultKind::CLUSTER.contains(&p.kind), "{:?}", p.kind);
            if p.kind == FaultKind::ClusterSlotMigration {
                assert!((1..=6).contains(&p.target));
            }
        }
        // A single-Redis run's plan is what it was.
        assert!(plan_from(&FaultKind::ALL, 7, 60_000, 2, 6) == super::plan(7, 60_000, 2, 6));
    }
}
