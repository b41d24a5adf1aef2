//! Injecting the plan: applies each fault, keeps it for its window, heals it, and records
//! the window as it really happened.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::{
    cluster::Cluster,
    faults::{BOTH_PG_JITTER_MS, FaultKind, Planned},
    history::Clock,
    history::FaultWindow,
};

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
        let mut detail = describe(cluster, fault);
        set(current, &format!("{} {detail}", fault.kind.name()));
        let start_us = clock.us();
        let result = apply(cluster, fault, len).map(|note| {
            if let Some(note) = note {
                detail = format!("{detail}; {note}");
            }
        });
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
        FaultKind::RedisKill => {
            format!("SIGKILL, {len} ms down, restarted from its append-only file")
        }
        FaultKind::RedisSnapshotRestore => {
            format!("SAVE, {len} ms of load, SIGKILL, restarted from that snapshot")
        }
        FaultKind::RedisPauseWrites => format!("CLIENT PAUSE {len} WRITE"),
        FaultKind::RedisOom => "maxmemory 1, noeviction".into(),
        FaultKind::RedisPartition => {
            format!("replica 0 cut off from Redis for {len} ms")
        }
        FaultKind::PgPartition => {
            format!("replica 0 cut off from PostgreSQL for {len} ms")
        }
        FaultKind::RedisLatency => format!(
            "replica 0's link to Redis delayed 0–{} ms each way",
            fault.target
        ),
        FaultKind::PgLatency => format!(
            "replica 0's link to PostgreSQL delayed 0–{} ms each way",
            fault.target
        ),
        FaultKind::BothLatency => format!(
            "replica 0's links delayed 0–{} ms (Redis) and 0–{BOTH_PG_JITTER_MS} ms (PostgreSQL) each way",
            fault.target
        ),
        FaultKind::ReplicaPause => {
            let i = fault.target as usize;
            let port = cluster.replicas.get(i).map_or(0, |r| r.port);
            format!("replica {i} (port {port}) frozen for {len} ms")
        }
        FaultKind::FloodPgLatency => format!(
            "replica 0's link to PostgreSQL delayed 0–{} ms each way, {} connections of uncached reads",
            fault.target,
            super::flood::CONNECTIONS
        ),
        _ => format!("{len} ms"),
    }
}

/// Applies the fault, keeps it for `len` (repeating the instantaneous ones), then heals it;
/// returns what the window's note should add (the flood's outcome).
fn apply(cluster: &mut Cluster, fault: &Planned, len: Duration) -> anyhow::Result<Option<String>> {
    match fault.kind {
        FaultKind::FloodPgLatency => super::flood::apply(cluster, fault, len).map(Some),
        _ => apply_silently(cluster, fault, len).map(|()| None),
    }
}

fn apply_silently(cluster: &mut Cluster, fault: &Planned, len: Duration) -> anyhow::Result<()> {
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
        FaultKind::RedisSnapshotRestore
        | FaultKind::RedisPauseWrites
        | FaultKind::RedisOom
        | FaultKind::RedisPartition
        | FaultKind::RedisLatency
        | FaultKind::PgPartition
        | FaultKind::PgLatency
        | FaultKind::ReplicaPause
        | FaultKind::BothLatency => super::link_faults::apply(cluster, fault, len),
        FaultKind::FloodPgLatency => {
            anyhow::bail!("the flood is applied by `apply`, with its note")
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
