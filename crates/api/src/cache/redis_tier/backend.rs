//! The one place that knows whether CacheMe talks to one Redis or to a Redis Cluster:
//! which breaker guards a call, how many epochs there are, what an invalidation waits
//! for, how a flush is announced, and where the listener subscribes. `RedisTier`'s
//! request calls (`lookup`, `fill`, `invalidate`) are the same for both and ask this.

use std::{sync::Arc, time::Duration};

use super::{
    CacheError, RedisTierSettings,
    cluster::{Cluster, NodeAddress},
    connection::RedisConnection,
    single::Single,
};
use crate::cache::{
    breaker::{BreakerSettings, BreakerState, CircuitBreaker},
    keys::{self, KeyScheme, RedisMode},
};

/// One Redis, or a Redis Cluster.
#[derive(Debug, Clone)]
pub enum Backend {
    Single(Single),
    Cluster(Cluster),
}

impl Backend {
    /// The backend `settings.mode` asks for, and the connection every call shares.
    /// Does not connect: the first call does, so the service starts while Redis is down.
    pub fn connect(settings: &RedisTierSettings) -> redis::RedisResult<(Self, RedisConnection)> {
        let breakers = BreakerSettings {
            thresholds: settings.breaker,
            cooldown: settings.breaker_cooldown,
            // A probe is bounded by the timeout; one out far longer was lost.
            probe_patience: settings.timeout.max(Duration::from_millis(100))
                + settings.breaker_cooldown,
        };
        Ok(match settings.mode {
            RedisMode::Single => {
                let single = Single::connect(settings.url.expose(), settings.timeout, breakers)?;
                let conn = RedisConnection::Single(single.connection());
                (Self::Single(single), conn)
            }
            RedisMode::Cluster => {
                let cluster = Cluster::connect(settings.url.expose(), settings.timeout, breakers)?;
                let conn = RedisConnection::Cluster(cluster.connection());
                (Self::Cluster(cluster), conn)
            }
        })
    }

    /// How its keys are named.
    pub fn mode(&self) -> RedisMode {
        match self {
            Self::Single(_) => RedisMode::Single,
            Self::Cluster(_) => RedisMode::Cluster,
        }
    }

    /// How many epochs there are: one for the server, or one per bucket.
    pub fn epochs(&self) -> usize {
        match self {
            Self::Single(_) => 1,
            Self::Cluster(_) => usize::from(keys::BUCKETS),
        }
    }

    /// Which epoch `id` uses: the server's, or its bucket's.
    pub fn epoch_index(&self, id: i32) -> usize {
        match self {
            Self::Single(_) => 0,
            Self::Cluster(_) => usize::from(KeyScheme::bucket(id)),
        }
    }

    /// The breaker guarding calls about `id`: the one breaker, or its master's.
    pub fn breaker_for(&self, id: i32) -> Arc<CircuitBreaker> {
        match self {
            Self::Single(single) => Arc::clone(single.breaker()),
            Self::Cluster(cluster) => cluster.breaker_for(id),
        }
    }

    /// The breaker's state; in a cluster the worst of the masters' breakers.
    pub fn breaker_state(&self, now: std::time::Instant) -> BreakerState {
        match self {
            Self::Single(single) => single.breaker().state(now),
            Self::Cluster(cluster) => cluster.state().summary(now),
        }
    }

    /// Which Redis holds `id`'s keys, for callers that stop sending to one that failed:
    /// `None` for the single Redis (a failure there stops everything), else its master.
    pub fn shard_of(&self, id: i32) -> Option<String> {
        match self {
            Self::Single(_) => None,
            Self::Cluster(cluster) => Some(cluster.shard_of(id)),
        }
    }

    /// The ids whose epochs the periodic check reads, one per Redis process, and whether
    /// a process seen new there stands for others (a cluster master's buckets), so every
    /// epoch must be checked again before it is trusted.
    pub fn incarnation_probes(&self) -> (Vec<i32>, bool) {
        match self {
            Self::Single(_) => (vec![0], false),
            Self::Cluster(cluster) => (cluster.incarnation_probe_ids(), true),
        }
    }

    /// `PUBLISH`, or `SPUBLISH` to a sharded channel in a cluster (the invalidation
    /// script's argument).
    pub fn publish_command(&self) -> &'static str {
        match self {
            Self::Single(_) => "PUBLISH",
            Self::Cluster(_) => "SPUBLISH",
        }
    }

    /// What an invalidation of `id` waits for once its script ran: nothing on one Redis,
    /// a replica's acknowledgement in a cluster (see [`Cluster::await_replica`]).
    pub async fn after_invalidate(
        &self,
        id: i32,
        timeout: Duration,
        admin_timeout: Duration,
    ) -> Result<(), CacheError> {
        match self {
            Self::Single(_) => Ok(()),
            Self::Cluster(cluster) => cluster.await_replica(id, timeout, admin_timeout).await,
        }
    }

    /// Tells every replica to drop its whole L1 (after a clear): one `PUBLISH` within
    /// `timeout`, or one `SPUBLISH` per bucket within `admin_timeout`.
    pub async fn announce_flush(
        &self,
        keys: &KeyScheme,
        timeout: Duration,
        admin_timeout: Duration,
    ) -> Result<(), CacheError> {
        match self {
            Self::Single(single) => {
                single
                    .announce_flush(keys.invalidation_channel(0), timeout)
                    .await
            }
            Self::Cluster(cluster) => cluster.announce_flush(keys, admin_timeout).await,
        }
    }

    /// The masters of a cluster, read now; `None` for one Redis.
    pub async fn masters(&self, limit: Duration) -> Result<Option<Vec<NodeAddress>>, CacheError> {
        match self {
            Self::Single(_) => Ok(None),
            Self::Cluster(cluster) => cluster.masters(limit).await.map(Some),
        }
    }

    /// The cluster, for what only a cluster has (per-master health, subscriptions).
    pub fn cluster(&self) -> Option<&Cluster> {
        match self {
            Self::Single(_) => None,
            Self::Cluster(cluster) => Some(cluster),
        }
    }
}
