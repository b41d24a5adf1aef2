//! The fault kinds and the schedule, a pure function of the seed (`inject` applies it).

use anyhow::Context as _;

use super::rng::Rng;

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
    /// Redis restarted from a snapshot taken when the window opened (older data).
    RedisSnapshotRestore,
    /// `CLIENT PAUSE len WRITE`: reads answer, writes (invalidations) wait.
    RedisPauseWrites,
    /// `maxmemory 1`, `noeviction`: entries stay, every command that adds memory fails.
    RedisOom,
    /// Replica 0 cut off from Redis (the fault proxy).
    RedisPartition,
    /// Replica 0's link to Redis delayed by up to `target` ms each way.
    RedisLatency,
    /// Replica 0 cut off from PostgreSQL.
    PgPartition,
    /// Replica 0's link to PostgreSQL delayed by up to `target` ms each way.
    PgLatency,
    /// An API replica frozen (SIGSTOP), then thawed.
    ReplicaPause,
    /// Overlapping: replica 0's links to Redis (up to `target` ms) and to PostgreSQL (up
    /// to 150 ms) delayed at once, so its Redis calls time out now and then while its
    /// loads take long.
    BothLatency,
    /// Replica 0's pool saturated (issue #22, C7): its link to PostgreSQL delayed by up
    /// to `target` ms each way while uncached reads flood it (`flood.rs`).
    FloodPgLatency,
}

impl FaultKind {
    pub const ALL: [FaultKind; 19] = [
        FaultKind::RedisPause,
        FaultKind::RedisKill,
        FaultKind::RedisSnapshotRestore,
        FaultKind::RedisFlushall,
        FaultKind::RedisEviction,
        FaultKind::RedisOom,
        FaultKind::RedisPauseWrites,
        FaultKind::PubsubKill,
        FaultKind::RedisPartition,
        FaultKind::RedisLatency,
        FaultKind::PgRowLock,
        FaultKind::PgRestart,
        FaultKind::PgTerminate,
        FaultKind::PgPartition,
        FaultKind::PgLatency,
        FaultKind::ReplicaKill,
        FaultKind::ReplicaPause,
        FaultKind::BothLatency,
        FaultKind::FloodPgLatency,
    ];

    /// The deck of a run against a Redis Cluster: the cluster's faults and the rest.
    pub const CLUSTER: [FaultKind; 11] = [
        FaultKind::ClusterMasterKill,
        FaultKind::ClusterFailover,
        FaultKind::ClusterSlotMigration,
        FaultKind::PgRowLock,
        FaultKind::PgRestart,
        FaultKind::PgTerminate,
        FaultKind::PgPartition,
        FaultKind::PgLatency,
        FaultKind::ReplicaKill,
        FaultKind::ReplicaPause,
        FaultKind::FloodPgLatency,
    ];

    /// Every kind, for parsing `--faults`: the single deck and the cluster's own.
    fn every() -> impl Iterator<Item = FaultKind> {
        Self::ALL.into_iter().chain([
            FaultKind::ClusterMasterKill,
            FaultKind::ClusterFailover,
            FaultKind::ClusterSlotMigration,
        ])
    }

    /// The kind named `name` (as [`FaultKind::name`] spells it).
    pub fn parse(name: &str) -> anyhow::Result<FaultKind> {
        Self::every().find(|k| k.name() == name).with_context(|| {
            let names: Vec<&str> = Self::every().map(FaultKind::name).collect();
            format!("no fault kind {name:?}; the kinds: {}", names.join(", "))
        })
    }

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
            FaultKind::RedisSnapshotRestore => "redis-restart-from-snapshot",
            FaultKind::RedisPauseWrites => "redis-client-pause-write",
            FaultKind::RedisOom => "redis-oom-noeviction",
            FaultKind::RedisPartition => "redis-partition",
            FaultKind::RedisLatency => "redis-latency",
            FaultKind::PgPartition => "pg-partition",
            FaultKind::PgLatency => "pg-latency",
            FaultKind::ReplicaPause => "api-sigstop",
            FaultKind::BothLatency => "redis-latency+pg-latency",
            FaultKind::FloodPgLatency => "api-flood+pg-latency",
        }
    }
}

/// PostgreSQL's jitter in [`FaultKind::BothLatency`].
pub const BOTH_PG_JITTER_MS: u64 = 150;

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
#[cfg(test)]
pub fn plan(seed: u64, duration_ms: u64, replicas: usize, products: u32) -> Vec<Planned> {
    plan_from(&FaultKind::ALL, seed, duration_ms, replicas, products)
}

/// [`plan`] for a run against a Redis Cluster.
#[cfg(test)]
pub fn cluster_plan(seed: u64, duration_ms: u64, replicas: usize, products: u32) -> Vec<Planned> {
    plan_from(&FaultKind::CLUSTER, seed, duration_ms, replicas, products)
}

/// The kinds a run draws from: `only` (`--faults`), checked against what the run's Redis
/// offers, or its whole deck.
pub fn deck(redis_cluster: bool, only: &[String]) -> anyhow::Result<Vec<FaultKind>> {
    let offered: &[FaultKind] = if redis_cluster {
        &FaultKind::CLUSTER
    } else {
        &FaultKind::ALL
    };
    if only.is_empty() {
        return Ok(offered.to_vec());
    }
    let mut kinds = Vec::new();
    for name in only {
        let kind = FaultKind::parse(name)?;
        anyhow::ensure!(
            offered.contains(&kind),
            "fault {name:?} is not one a run {} Redis Cluster can inject",
            if redis_cluster {
                "against a"
            } else {
                "without a"
            }
        );
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}

pub fn plan_from(
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
                FaultKind::ReplicaPause => rng.below(replicas as u64),
                // Up to this many ms each way: around the chaos settings' 50 ms Redis
                // timeout, and well past the 2 ms of simulated database latency.
                FaultKind::RedisLatency => rng.between(10, 80),
                FaultKind::BothLatency => rng.between(30, 80),
                FaultKind::PgLatency => rng.between(20, 200),
                // A query then holds a pooled connection for up to two of these: enough
                // for the flood to keep more requests waiting than the pool serves.
                FaultKind::FloodPgLatency => rng.between(50, 150),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_follows_the_seed_and_covers_every_kind() {
        let a = plan(7, 60_000, 2, 6);
        assert_eq!(a, plan(7, 60_000, 2, 6));
        assert_ne!(a, plan(8, 60_000, 2, 6));
        let first_round: Vec<FaultKind> = a
            .iter()
            .take(FaultKind::ALL.len())
            .map(|p| p.kind)
            .collect();
        for kind in FaultKind::ALL {
            assert!(first_round.contains(&kind), "{kind:?} missing");
        }
        for p in &a {
            assert!((1000..=3000).contains(&p.gap_ms) && (1000..=4000).contains(&p.len_ms));
            match p.kind {
                FaultKind::ReplicaKill | FaultKind::ReplicaPause => assert!(p.target < 2),
                FaultKind::PgRowLock => assert!((1..=6).contains(&p.target)),
                FaultKind::RedisLatency => assert!((10..=80).contains(&p.target)),
                FaultKind::BothLatency => assert!((30..=80).contains(&p.target)),
                FaultKind::PgLatency => assert!((20..=200).contains(&p.target)),
                FaultKind::FloodPgLatency => assert!((50..=150).contains(&p.target)),
                _ => assert_eq!(p.target, 0),
            }
        }
        let planned: u64 = a.iter().map(|p| p.gap_ms + p.len_ms).sum();
        assert!(planned >= 60_000);
    }

    #[test]
    fn a_cluster_plan_uses_the_cluster_deck_only() {
        let plan = cluster_plan(7, 60_000, 2, 6);
        let first_round: Vec<FaultKind> = plan
            .iter()
            .take(FaultKind::CLUSTER.len())
            .map(|p| p.kind)
            .collect();
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

    #[test]
    fn faults_narrows_the_deck_to_kinds_the_run_can_inject() -> anyhow::Result<()> {
        assert_eq!(deck(false, &[])?, FaultKind::ALL);
        assert_eq!(deck(true, &[])?, FaultKind::CLUSTER);
        let only = ["api-sigstop".to_owned(), "redis-partition".to_owned()];
        assert_eq!(
            deck(false, &only)?,
            [FaultKind::ReplicaPause, FaultKind::RedisPartition]
        );
        let plan = plan_from(&deck(false, &only)?, 3, 60_000, 2, 6);
        assert!(
            plan.iter()
                .all(|p| matches!(p.kind, FaultKind::ReplicaPause | FaultKind::RedisPartition))
        );
        assert!(deck(true, &only).is_err(), "no proxy in front of a cluster");
        assert!(deck(false, &["redis-cluster-failover".to_owned()]).is_err());
        for kind in FaultKind::every().chain(FaultKind::CLUSTER) {
            assert_eq!(FaultKind::parse(kind.name())?, kind);
        }
        Ok(())
    }
}
