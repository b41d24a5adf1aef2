//! Faults of issue #22's wider model (C6): a Redis restored from an older snapshot,
//! `CLIENT PAUSE WRITE`, a `noeviction` OOM, one replica's link to Redis or PostgreSQL
//! cut or slowed (through its [`super::proxy::FaultProxy`]), and a frozen replica. Each
//! heals itself before it returns.

use std::time::Duration;

use anyhow::{Context as _, bail};

use super::{
    cluster::Cluster,
    faults::{BOTH_PG_JITTER_MS, FaultKind, Planned},
};

/// Replica 0's proxy to Redis (single Redis only).
fn redis_proxy(cluster: &Cluster) -> anyhow::Result<&super::proxy::FaultProxy> {
    cluster
        .redis_proxy
        .as_ref()
        .context("no proxy in front of Redis")
}

pub fn apply(cluster: &mut Cluster, fault: &Planned, len: Duration) -> anyhow::Result<()> {
    match fault.kind {
        FaultKind::RedisSnapshotRestore => {
            // What a restore from a backup, or a restart from an RDB file, does: the
            // writes of the window were invalidated in a Redis whose data comes back
            // from before them.
            cluster.redis(&["SAVE"])?;
            std::thread::sleep(len);
            let redis = cluster.single_redis()?;
            redis.restart_from_snapshot()?;
            cluster.redis(&["CONFIG", "SET", "appendonly", "yes"])?;
            Ok(())
        }
        FaultKind::RedisPauseWrites => {
            let ms = len.as_millis().to_string();
            cluster.redis(&["CLIENT", "PAUSE", &ms, "WRITE"])?;
            std::thread::sleep(len);
            // It ends by itself; unpause in case the clock ran slow.
            cluster.redis(&["CLIENT", "UNPAUSE"]).map(drop)
        }
        FaultKind::RedisOom => {
            let policy = cluster.redis(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
            let limit = cluster.redis(&["CONFIG", "SET", "maxmemory", "1"]);
            std::thread::sleep(len);
            cluster.redis(&["CONFIG", "SET", "maxmemory", "0"])?;
            policy.and(limit).map(drop)
        }
        FaultKind::RedisPartition => {
            let proxy = redis_proxy(cluster)?;
            proxy.cut();
            std::thread::sleep(len);
            proxy.heal();
            Ok(())
        }
        FaultKind::PgPartition => {
            cluster.pg_proxy.cut();
            std::thread::sleep(len);
            cluster.pg_proxy.heal();
            Ok(())
        }
        FaultKind::RedisLatency => {
            let proxy = redis_proxy(cluster)?;
            proxy.set_jitter(fault.target);
            std::thread::sleep(len);
            proxy.set_jitter(0);
            Ok(())
        }
        FaultKind::PgLatency => {
            cluster.pg_proxy.set_jitter(fault.target);
            std::thread::sleep(len);
            cluster.pg_proxy.set_jitter(0);
            Ok(())
        }
        FaultKind::BothLatency => {
            let redis = redis_proxy(cluster)?;
            redis.set_jitter(fault.target);
            cluster.pg_proxy.set_jitter(BOTH_PG_JITTER_MS);
            std::thread::sleep(len);
            redis.set_jitter(0);
            cluster.pg_proxy.set_jitter(0);
            Ok(())
        }
        FaultKind::ReplicaPause => {
            let replica = cluster
                .replicas
                .get_mut(fault.target as usize)
                .context("no such replica")?;
            replica.signal("STOP")?;
            std::thread::sleep(len);
            replica.signal("CONT")
        }
        other => bail!("{other:?} is not a link fault"),
    }
}
