//! A Redis Cluster: seed nodes, one cluster connection, the topology with a breaker per
//! master, and what only a cluster needs: the replication wait after an invalidation and
//! an announcement on every bucket's sharded channel.

mod topology;

use std::{sync::Arc, time::Duration};

use redis::{
    ConnectionInfo, IntoConnectionInfo, RedisResult, cluster::ClusterClientBuilder,
    cluster_async::ClusterConnection,
};

pub use topology::{ClusterState, NodeAddress, SlotRange, Topology, fetch_slots};

use super::{
    CacheError,
    error::{bounded, within},
};
use crate::cache::{
    breaker::{BreakerSettings, CircuitBreaker},
    keys::{self, KeyScheme},
};

/// Longest wait for a replica to acknowledge an invalidation.
const WAIT_LIMIT: Duration = Duration::from_millis(100);

#[derive(Clone)]
pub struct Cluster {
    /// For the listener's per-node subscriptions (credentials, TLS).
    seeds: Arc<Vec<ConnectionInfo>>,
    state: Arc<ClusterState>,
    conn: ClusterConnection,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("seeds", &self.seeds.len())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Does not connect: the first call does, so the service starts while the cluster is
    /// down. `urls`: the seed nodes, comma-separated.
    pub fn connect(urls: &str, timeout: Duration, breakers: BreakerSettings) -> RedisResult<Self> {
        let seeds = seed_nodes(urls)?;
        if seeds.is_empty() {
            return Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "REDIS_URL lists no cluster node",
            )));
        }
        let conn = connect_cluster(&seeds, timeout)?;
        Ok(Self {
            seeds: Arc::new(seeds),
            state: Arc::new(ClusterState::new(breakers)),
            conn,
        })
    }

    pub fn connection(&self) -> ClusterConnection {
        self.conn.clone()
    }

    pub fn seeds(&self) -> &Arc<Vec<ConnectionInfo>> {
        &self.seeds
    }

    pub fn state(&self) -> &Arc<ClusterState> {
        &self.state
    }

    /// The breaker of the master serving `id`'s bucket.
    pub fn breaker_for(&self, id: i32) -> Arc<CircuitBreaker> {
        self.state.breaker(KeyScheme::bucket(id))
    }

    /// The master serving `id`'s bucket, as the slot map last said.
    pub fn shard_of(&self, id: i32) -> String {
        self.state
            .topology()
            .owner(KeyScheme::bucket(id))
            .map_or_else(|| "unserved".to_owned(), ToString::to_string)
    }

    /// One id per master whose epoch stands for its master's buckets (id `b` is in bucket
    /// `b`); with no slot map yet, every bucket.
    pub fn incarnation_probe_ids(&self) -> Vec<i32> {
        let topology = self.state.topology();
        let mut owners = std::collections::HashSet::new();
        (0..keys::BUCKETS)
            .filter(|&bucket| match topology.owner(bucket) {
                Some(owner) => owners.insert(owner.clone()),
                None => true,
            })
            .map(i32::from)
            .collect()
    }

    /// The masters, read now (the topology is refreshed too).
    pub async fn masters(&self, limit: Duration) -> Result<Vec<NodeAddress>, CacheError> {
        let mut conn = self.conn.clone();
        let ranges = bounded(limit, fetch_slots(&mut conn)).await?;
        self.state.install(&ranges);
        Ok(self.state.topology().masters.clone())
    }

    /// An invalidation counts only once a replica has it (`WAIT`): Redis replicates
    /// asynchronously, and a master lost before its replica received the generation bump
    /// would hand its buckets to a replica with the old counter, where a reader that
    /// loaded the old row before the write could still fill it. `WAIT` covers the writes
    /// of the connection it runs on: every clone of the cluster connection shares its
    /// per-node connections, so it covers the script. Masters without replicas skip it
    /// (nothing to fail over to).
    pub async fn await_replica(
        &self,
        id: i32,
        timeout: Duration,
        admin_timeout: Duration,
    ) -> Result<(), CacheError> {
        let bucket = KeyScheme::bucket(id);
        if self.state.topology().owner(bucket).is_none() {
            self.masters(admin_timeout).await?;
        }
        if self.state.topology().replicas_of(bucket) == 0 {
            return Ok(());
        }
        // Short: a replica on the same network acknowledges in about a millisecond, and a
        // dead replica the slot map still lists must not hold every write for long.
        let limit = timeout.clamp(Duration::from_millis(10), WAIT_LIMIT);
        let route = redis::cluster_routing::RoutingInfo::SingleNode(
            redis::cluster_routing::SingleNodeRoutingInfo::SpecificNode(
                redis::cluster_routing::Route::new(
                    keys::bucket_slot(bucket),
                    redis::cluster_routing::SlotAddr::Master,
                ),
            ),
        );
        let mut conn = self.conn.clone();
        let mut wait = redis::cmd("WAIT");
        wait.arg(1)
            .arg(u64::try_from(limit.as_millis()).unwrap_or(u64::MAX));
        let acked: i64 = within(limit * 2, async {
            let value = conn.route_command(wait, route.clone()).await?;
            Ok(redis::from_redis_value(value)?)
        })
        .await?;
        if acked >= 1 {
            return Ok(());
        }
        // No acknowledgement: fine only if the master has no connected replica (its
        // replica died with a failover, say; the slot map may still list it).
        let role: (String, i64, Vec<redis::Value>) = within(limit * 2, async {
            let value = conn.route_command(redis::cmd("ROLE"), route).await?;
            Ok(redis::from_redis_value(value)?)
        })
        .await?;
        if role.2.is_empty() {
            Ok(())
        } else {
            Err(CacheError::NotReplicated)
        }
    }

    /// Tells every replica to drop its whole L1 on every bucket's channel: a replica that
    /// lost one of them flushes anyway, and any one message reaching a replica is enough.
    pub async fn announce_flush(
        &self,
        keys: &KeyScheme,
        limit: Duration,
    ) -> Result<(), CacheError> {
        let announcements = keys
            .invalidation_channels()
            .into_iter()
            .map(|(channel, _)| {
                let mut conn = self.conn.clone();
                async move {
                    redis::cmd("SPUBLISH")
                        .arg(channel)
                        .arg("*")
                        .query_async::<i64>(&mut conn)
                        .await
                }
            });
        let results = bounded(limit, async {
            Ok(futures::future::join_all(announcements).await)
        })
        .await?;
        results.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok(())
    }
}

/// The seed nodes of a cluster: `REDIS_URL` as a comma-separated list.
pub fn seed_nodes(urls: &str) -> RedisResult<Vec<ConnectionInfo>> {
    urls.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(IntoConnectionInfo::into_connection_info)
        .collect()
}

/// A cluster connection that connects lazily (the service starts while the cluster is
/// down) and retries MOVED/ASK/TRYAGAIN and reconnects within `timeout`.
pub fn connect_cluster(
    seeds: &[ConnectionInfo],
    timeout: Duration,
) -> RedisResult<ClusterConnection> {
    let client = ClusterClientBuilder::new(seeds.iter().cloned())
        .connection_timeout(timeout.max(Duration::from_millis(250)))
        .response_timeout(timeout.max(Duration::from_secs(5)))
        .retries(3)
        .min_retry_wait(10)
        .max_retry_wait(200)
        .build()?;
    Ok(client.get_pending_async_connection_with_config(redis::cluster::ClusterConfig::new()))
}
