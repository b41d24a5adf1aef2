//! The Redis tier (L2): bounded calls, a circuit breaker, and fills that cannot
//! undo an invalidation.
//!
//! Every product key has a generation counter beside it. An invalidation bumps the
//! counter and deletes the value in one script; a fill carries the generation its
//! reader saw before going to PostgreSQL and is refused by a script if the counter has
//! moved since. So a reader that loaded an old row cannot put it back after a writer
//! invalidated it.
//!
//! Counters must never go back to a value a reader already saw (ABA): they carry no TTL
//! (so `volatile-*` eviction policies never touch them), and a per-Redis random *epoch*
//! key, also without TTL, is checked by every fill. A `FLUSHALL`, a restart without
//! persistence or a failover to an empty replica removes the epoch with the counters, so
//! every fill read before it is refused. A Redis that comes back with *older* data (a
//! restart from persistence, a restore, a failover to a lagging replica) keeps an old
//! epoch, so the epoch is also tied to the Redis process (`incarnation`) and every entry
//! records the epoch it was filled under. Under an `allkeys-*` policy a single counter can
//! still be evicted; that policy is not supported (docs/architecture.md, "Cache patterns").
//!
//! (Over 400 lines: the request-path calls of both modes, which share the breaker and
//! timeout wrapping, are kept together; admin calls and the cluster's topology are apart.)

use std::{sync::Arc, time::Duration};

use redis::{
    AsyncCommands, Client, ConnectionInfo, Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use tokio::time::Instant;

use super::{
    breaker::{BreakerState, Call, CircuitBreaker, Thresholds},
    expiry::{ExpiryPolicy, Freshness, random_u64, random_unit},
    keys::{self, KeyLayout, KeyScheme},
    value::{CachedValue, EncodedProduct},
};

pub mod admin;
pub mod cluster;
mod incarnation;
mod scripts;

use incarnation::Incarnation;
pub use incarnation::RECHECK_INTERVAL;

use cluster::{BreakerSettings, ClusterState, RedisConnection};

use scripts::{ENSURE_EPOCH_SCRIPT, FILL_SCRIPT, INVALIDATE_SCRIPT, VERIFY_INCARNATION_SCRIPT};

/// Administrative calls (clear, INFO) may scan many keys, so they get more time than a lookup.
const ADMIN_TIMEOUT_FLOOR: Duration = Duration::from_secs(5);

/// Longest wait for a replica to acknowledge an invalidation (cluster mode).
const WAIT_LIMIT: Duration = Duration::from_millis(100);

/// The JSON stored for a known-absent id.
const ABSENT: &str = "null";

/// Server errors that mean Redis cannot serve now (loading its data, blocked by a script,
/// out of memory, a read-only replica after a failover, ...): outages for the breaker.
/// Not `TRYAGAIN`: a cluster answers it while a slot migrates, for that slot only, and
/// counting it would switch off the whole master for the migration.
const OUTAGE_CODES: &[&str] = &[
    "LOADING",
    "BUSY",
    "OOM",
    "READONLY",
    "MASTERDOWN",
    "CLUSTERDOWN",
    "NOREPLICAS",
];

/// Whether `e` says Redis is unreachable or cannot serve now (as opposed to, say, a
/// script error, which retrying elsewhere would not fix).
fn is_outage(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.code().is_some_and(|code| OUTAGE_CODES.contains(&code))
}

/// Why a cache call did not complete.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("redis call timed out after {0:?}")]
    Timeout(Duration),
    #[error("redis skipped: circuit breaker open")]
    BreakerOpen,
    #[error("redis skipped: the connection changed while the lookup was in flight")]
    Unverified,
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis cluster node {node} is down: {error}")]
    NodeDown { node: String, error: String },
    #[error("no replica acknowledged the invalidation in time")]
    NotReplicated,
    #[error("unexpected redis reply: {0}")]
    Reply(#[from] redis::ParsingError),
    /// A shared read failed a moment ago (see `admin::RecentInfo`); its cause.
    #[error("{0} (a moment ago)")]
    Recent(String),
}

/// What a fill must still find in Redis to be stored: the key's generation and the
/// server's epoch as a lookup saw them before the database was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillTicket {
    pub generation: u64,
    pub epoch: u64,
}

/// What `MGET` of a lookup returns: the entry, its generation, the epoch, the epoch the
/// entry was filled under.
type LookupValues = (Option<String>, Option<u64>, Option<u64>, Option<u64>);

impl CacheError {
    /// What kind of failure this is, without its cause (for public answers).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::BreakerOpen | Self::Unverified => "breaker open",
            Self::Redis(e) if e.is_io_error() || e.is_connection_dropped() => "unreachable",
            Self::NodeDown { .. } => "unreachable",
            Self::Redis(_) | Self::NotReplicated | Self::Reply(_) | Self::Recent(_) => {
                "server error"
            }
        }
    }
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq)]
pub struct Lookup {
    /// The entry and how fresh it is, if there is one.
    pub entry: Option<(CachedValue, Freshness)>,
    /// Generation and epoch when it was read; a later fill must match both.
    pub ticket: FillTicket,
}

/// How the Redis tier is set up.
#[derive(Debug, Clone)]
pub struct RedisTierSettings {
    /// One URL, or in cluster mode a comma-separated list of seed nodes.
    pub url: String,
    /// One Redis, or a Redis Cluster.
    pub layout: KeyLayout,
    pub key_prefix: String,
    pub expiry: ExpiryPolicy,
    pub timeout: Duration,
    pub breaker: Thresholds,
    pub breaker_cooldown: Duration,
    /// Test-only: store fills without checking generation and epoch (`UNSAFE_SKIP_FILL_CHECK`).
    pub unsafe_skip_fill_check: bool,
}

/// What differs between one Redis and a cluster, besides the connection.
#[derive(Debug, Clone)]
pub enum Backend {
    /// One Redis: one client (for the listener's subscription) and one breaker.
    Single {
        client: Client,
        breaker: Arc<CircuitBreaker>,
    },
    /// A cluster: its seeds (for the listener's per-node subscriptions), its topology
    /// and a breaker per master.
    Cluster {
        seeds: Arc<Vec<ConnectionInfo>>,
        state: Arc<ClusterState>,
    },
}

#[derive(Debug, Clone)]
pub struct RedisTier {
    backend: Backend,
    conn: RedisConnection,
    keys: KeyScheme,
    expiry: ExpiryPolicy,
    timeout: Duration,
    fill_script: Arc<Script>,
    invalidate_script: Arc<Script>,
    ensure_epoch_script: Arc<Script>,
    verify_incarnation_script: Arc<Script>,
    /// Which epochs were checked against the Redis process answering now.
    incarnation: Arc<Incarnation>,
    /// `INFO`, shared by the callers of one second.
    recent_info: Arc<admin::RecentInfo>,
    unsafe_skip_fill_check: bool,
}

/// What Redis stores for `value`.
fn stored_text(value: &CachedValue) -> &str {
    match value {
        CachedValue::Present(product) => &product.json,
        CachedValue::Absent => ABSENT,
    }
}

fn decode(raw: String) -> Result<CachedValue, serde_json::Error> {
    if raw.trim() == ABSENT {
        return Ok(CachedValue::Absent);
    }
    Ok(CachedValue::Present(Arc::new(EncodedProduct::decode(raw)?)))
}

impl RedisTier {
    /// Does not connect: the first call does, so the service starts while Redis is down.
    pub fn new(settings: RedisTierSettings) -> Result<Self, redis::RedisError> {
        let breakers = BreakerSettings {
            thresholds: settings.breaker,
            cooldown: settings.breaker_cooldown,
            // A probe is bounded by the timeout; one out far longer was lost.
            probe_patience: settings.timeout.max(Duration::from_millis(100))
                + settings.breaker_cooldown,
        };
        let (backend, conn) = match settings.layout {
            KeyLayout::Single => {
                let client = Client::open(settings.url.as_str())?;
                let manager_config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(settings.timeout.max(Duration::from_millis(250))))
                    .set_response_timeout(Some(settings.timeout.max(ADMIN_TIMEOUT_FLOOR)))
                    .set_number_of_retries(2)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_secs(2));
                let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)?;
                let breaker = Arc::new(breakers.build());
                (
                    Backend::Single { client, breaker },
                    RedisConnection::Single(conn),
                )
            }
            KeyLayout::Cluster => {
                let seeds = cluster::seed_nodes(&settings.url)?;
                if seeds.is_empty() {
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::InvalidClientConfig,
                        "REDIS_URL lists no cluster node",
                    )));
                }
                let conn = cluster::connect_cluster(&seeds, settings.timeout)?;
                (
                    Backend::Cluster {
                        seeds: Arc::new(seeds),
                        state: Arc::new(ClusterState::new(breakers)),
                    },
                    RedisConnection::Cluster(conn),
                )
            }
        };
        Ok(Self {
            backend,
            conn,
            keys: KeyScheme::with_layout(settings.key_prefix, settings.layout),
            expiry: settings.expiry,
            timeout: settings.timeout,
            fill_script: Arc::new(Script::new(FILL_SCRIPT)),
            invalidate_script: Arc::new(Script::new(INVALIDATE_SCRIPT)),
            ensure_epoch_script: Arc::new(Script::new(ENSURE_EPOCH_SCRIPT)),
            verify_incarnation_script: Arc::new(Script::new(VERIFY_INCARNATION_SCRIPT)),
            incarnation: Arc::new(Incarnation::new(match settings.layout {
                KeyLayout::Single => 1,
                KeyLayout::Cluster => usize::from(keys::BUCKETS),
            })),
            recent_info: Arc::default(),
            unsafe_skip_fill_check: settings.unsafe_skip_fill_check,
        })
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub(crate) fn connection(&self) -> RedisConnection {
        self.conn.clone()
    }

    pub fn keys(&self) -> &KeyScheme {
        &self.keys
    }

    /// Whether unknown ids are remembered as absent.
    pub fn negative_caching(&self) -> bool {
        !self.expiry.negative_ttl.is_zero()
    }

    /// The breaker's state; in cluster mode the worst of the masters' breakers.
    pub fn breaker_state(&self) -> BreakerState {
        let now = Instant::now().into_std();
        match &self.backend {
            Backend::Single { breaker, .. } => breaker.state(now),
            Backend::Cluster { state, .. } => state.summary(now),
        }
    }

    /// Which Redis holds `id`'s keys, for callers that stop sending to one that failed:
    /// `None` for the single Redis (a failure there stops everything), else its master as
    /// the slot map last said.
    pub fn shard_of(&self, id: i32) -> Option<String> {
        match &self.backend {
            Backend::Single { .. } => None,
            Backend::Cluster { state, .. } => Some(
                state
                    .topology()
                    .owner(KeyScheme::bucket(id))
                    .map_or_else(|| "unserved".to_owned(), ToString::to_string),
            ),
        }
    }

    /// The breaker guarding calls about `id`: the one breaker, or its master's.
    fn breaker_for(&self, id: i32) -> Arc<CircuitBreaker> {
        match &self.backend {
            Backend::Single { breaker, .. } => Arc::clone(breaker),
            Backend::Cluster { state, .. } => state.breaker(KeyScheme::bucket(id)),
        }
    }

    async fn bounded<T>(
        limit: Duration,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, CacheError> {
        match tokio::time::timeout(limit, call).await {
            Ok(result) => result.map_err(CacheError::from),
            Err(_) => Err(CacheError::Timeout(limit)),
        }
    }

    /// Like [`Self::bounded`], for a call made of several steps.
    async fn within<T>(
        limit: Duration,
        call: impl Future<Output = Result<T, CacheError>>,
    ) -> Result<T, CacheError> {
        tokio::time::timeout(limit, call)
            .await
            .unwrap_or(Err(CacheError::Timeout(limit)))
    }

    /// A request-path call: skipped while the breaker is open, bounded by the timeout,
    /// and its outcome fed back to the breaker.
    async fn guarded<T>(
        &self,
        id: i32,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, CacheError> {
        let breaker = self.breaker_for(id);
        let Some(permit) = breaker.allow(Instant::now().into_std()) else {
            return Err(CacheError::BreakerOpen);
        };
        // If this future is dropped here (its request was cancelled), a probe permit
        // reports a failure on drop: the breaker never waits for a probe that is gone.
        let result = Self::bounded(self.timeout, call).await;
        let now = Instant::now().into_std();
        match (&result, permit) {
            (Ok(_), Call::Probe(probe)) => probe.succeeded(),
            (Ok(_), Call::Plain) => breaker.record_success(),
            // A probe closes the breaker only by succeeding.
            (Err(_), Call::Probe(probe)) => probe.failed(now),
            // A server-side error that is not an outage (say, a script error) is not
            // counted against Redis.
            (Err(CacheError::Redis(e)), Call::Plain) if !is_outage(e) => {}
            (Err(_), Call::Plain) => breaker.record_failure(now),
        }
        self.withdraw_trust_after(&result);
        result
    }

    /// After a call that failed as an outage (the connection may be re-established to
    /// another Redis process), entries are not served until the epoch is checked again.
    fn withdraw_trust_after<T>(&self, result: &Result<T, CacheError>) {
        match result {
            Err(CacheError::Redis(e)) if !is_outage(e) => {}
            Err(
                CacheError::Redis(_)
                | CacheError::Timeout(_)
                | CacheError::NodeDown { .. }
                | CacheError::NotReplicated,
            ) => self.incarnation.withdraw(),
            Ok(_)
            | Err(
                CacheError::BreakerOpen
                | CacheError::Unverified
                | CacheError::Reply(_)
                | CacheError::Recent(_),
            ) => {}
        }
    }

    /// Stops serving entries until the epoch is checked against the Redis process again
    /// (the subscription was lost: the server may have restarted).
    pub fn withdraw_trust(&self) {
        self.incarnation.withdraw();
    }

    /// Which epoch `id` uses: the server's, or its bucket's.
    fn epoch_index(&self, id: i32) -> usize {
        match self.keys.layout() {
            KeyLayout::Single => 0,
            KeyLayout::Cluster => usize::from(KeyScheme::bucket(id)),
        }
    }

    /// Checks `id`'s epoch against the Redis process answering, rotating it if that
    /// process is not the one it was checked against (see `incarnation`).
    /// Returns whether another process than the one recorded answered.
    async fn check_incarnation(&self, id: i32) -> Result<bool, CacheError> {
        let token = self.incarnation.before_check();
        let mut conn = self.conn.clone();
        let mut invocation = self.verify_incarnation_script.prepare_invoke();
        invocation
            .key(self.keys.incarnation(id))
            .key(self.keys.epoch(id))
            .arg(random_u64());
        let outcome: i64 = self.guarded(id, invocation.invoke_async(&mut conn)).await?;
        let another_process = outcome == 1;
        if another_process {
            tracing::info!(
                epoch = %self.keys.epoch(id),
                "new Redis process (restart, restore or failover): epoch rotated, entries \
                 filled before it are not served"
            );
        }
        self.incarnation.checked(self.epoch_index(id), token);
        Ok(another_process)
    }

    /// Runs for the life of the app: checks every epoch every [`RECHECK_INTERVAL`], so a
    /// restart no call saw fail (an idle connection re-established in between) is noticed
    /// within that interval.
    pub async fn keep_checking_incarnation(self) {
        let mut ticks = tokio::time::interval(RECHECK_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(e) = self.check_every_incarnation().await {
                tracing::debug!(error = %e, "cannot check the Redis process yet");
            }
        }
    }

    /// Checks the epoch against every Redis process (run every [`RECHECK_INTERVAL`]). In
    /// a cluster, one bucket per master stands for its master's buckets: a process seen
    /// new there makes every bucket check its own epoch again before it is served.
    pub async fn check_every_incarnation(&self) -> Result<(), CacheError> {
        let ids: Vec<i32> = match &self.backend {
            Backend::Single { .. } => vec![0],
            Backend::Cluster { state, .. } => {
                let topology = state.topology();
                let mut owners = std::collections::HashSet::new();
                // Id `b` is in bucket `b`; with no slot map yet, every bucket.
                (0..keys::BUCKETS)
                    .filter(|&bucket| match topology.owner(bucket) {
                        Some(owner) => owners.insert(owner.clone()),
                        None => true,
                    })
                    .map(i32::from)
                    .collect()
            }
        };
        let checks = ids.into_iter().map(|id| self.check_incarnation(id));
        let rotated = futures::future::join_all(checks)
            .await
            .into_iter()
            .collect::<Result<Vec<bool>, _>>()?;
        if matches!(self.backend, Backend::Cluster { .. }) && rotated.contains(&true) {
            self.incarnation.withdraw();
        }
        Ok(())
    }

    /// Value, generation, epoch and remaining TTL in one round trip of two commands
    /// (`MGET` of the entry, its generation and the epoch, `PTTL`). A missing epoch (a new
    /// or flushed Redis) costs one more round trip, to create it.
    #[tracing::instrument(name = "cache.redis.lookup", skip(self), fields(cache.tier = "redis", db.system = "redis", cache.hit))]
    pub async fn lookup(&self, id: i32) -> Result<Lookup, CacheError> {
        let index = self.epoch_index(id);
        let token = match self.incarnation.trusted(index) {
            Some(token) => token,
            None => {
                self.check_incarnation(id).await?;
                self.incarnation
                    .trusted(index)
                    .ok_or(CacheError::Unverified)?
            }
        };
        let key = self.keys.product(id);
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("MGET")
            .arg(&key)
            .arg(self.keys.generation(id))
            .arg(self.keys.epoch(id))
            .arg(self.keys.filled_epoch(id))
            .pttl(&key);
        let (values, pttl): (LookupValues, i64) =
            self.guarded(id, pipe.query_async(&mut conn)).await?;
        if !self.incarnation.still_trusted(token) {
            return Err(CacheError::Unverified);
        }
        let (raw, generation, epoch, filled_under) = values;
        let epoch = match epoch {
            Some(epoch) => epoch,
            None => self.ensure_epoch(id).await?,
        };
        // An entry filled under another epoch is older than a rotation: not served.
        let raw = raw.filter(|_| filled_under == Some(epoch));
        let ticket = FillTicket {
            generation: generation.unwrap_or(0),
            epoch,
        };
        let entry = match raw {
            None => None,
            Some(raw) => match decode(raw) {
                Ok(CachedValue::Absent) => Some((CachedValue::Absent, Freshness::Fresh)),
                Ok(value) => {
                    let remaining = Duration::from_millis(u64::try_from(pttl).unwrap_or(0));
                    Some((value, self.expiry.classify(remaining)))
                }
                Err(e) => {
                    tracing::warn!(%key, error = %e, "ignoring undecodable cache entry");
                    None
                }
            },
        };
        tracing::Span::current().record("cache.hit", entry.is_some());
        Ok(Lookup { entry, ticket })
    }

    /// The epoch `id`'s fills check (the server's, or its bucket's), created if missing.
    async fn ensure_epoch(&self, id: i32) -> Result<u64, CacheError> {
        let mut conn = self.conn.clone();
        let mut invocation = self.ensure_epoch_script.prepare_invoke();
        invocation.key(self.keys.epoch(id)).arg(random_u64());
        self.guarded(id, invocation.invoke_async(&mut conn)).await
    }

    /// Stores `value` unless the key was invalidated, or Redis lost its counters, since
    /// `ticket` was read. Returns whether it was stored.
    #[tracing::instrument(name = "cache.redis.fill", skip(self, value), fields(cache.tier = "redis", db.system = "redis"))]
    pub async fn fill(
        &self,
        id: i32,
        value: &CachedValue,
        ticket: FillTicket,
    ) -> Result<bool, CacheError> {
        let ttl = match value {
            CachedValue::Present(_) => self.expiry.redis_ttl(random_unit()),
            CachedValue::Absent => self.expiry.negative_ttl,
        };
        let mut conn = self.conn.clone();
        let mut invocation = self.fill_script.prepare_invoke();
        invocation
            .key(self.keys.product(id))
            .key(self.keys.generation(id))
            .key(self.keys.epoch(id))
            .key(self.keys.filled_epoch(id))
            .arg(ticket.generation)
            .arg(ticket.epoch)
            .arg(stored_text(value))
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
            .arg(if self.unsafe_skip_fill_check {
                "1"
            } else {
                "0"
            });
        let stored: i64 = self.guarded(id, invocation.invoke_async(&mut conn)).await?;
        Ok(stored == 1)
    }

    /// Deletes the entry, bumps its generation and tells every replica, atomically.
    #[tracing::instrument(name = "cache.redis.invalidate", skip(self), fields(cache.tier = "redis", db.system = "redis"))]
    pub async fn invalidate(&self, id: i32) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        let mut invocation = self.invalidate_script.prepare_invoke();
        invocation
            .key(self.keys.product(id))
            .key(self.keys.generation(id))
            .key(self.keys.epoch(id))
            .arg(self.keys.invalidation_channel(id))
            .arg(id)
            .arg(random_u64())
            .arg(self.publish_command());
        // Not guarded by the breaker: a write must try to invalidate even when reads have
        // given up on Redis for a while; the caller retries failures.
        let invalidated =
            Self::bounded(self.timeout, invocation.invoke_async::<i64>(&mut conn)).await;
        self.withdraw_trust_after(&invalidated);
        invalidated?;
        if let (Backend::Cluster { state, .. }, RedisConnection::Cluster(cluster)) =
            (&self.backend, &mut conn)
        {
            self.await_replica(state, cluster, id).await?;
        }
        Ok(())
    }

    /// In a cluster, an invalidation counts only once a replica has it (`WAIT`): Redis
    /// replicates asynchronously, and a master lost before its replica received the
    /// generation bump would hand its buckets to a replica with the old counter, where a
    /// reader that loaded the old row before the write could still fill it. `WAIT` runs
    /// on the connection the script went through, so it covers it. Masters without
    /// replicas skip it (nothing to fail over to).
    async fn await_replica(
        &self,
        state: &ClusterState,
        conn: &mut redis::cluster_async::ClusterConnection,
        id: i32,
    ) -> Result<(), CacheError> {
        let bucket = KeyScheme::bucket(id);
        if state.topology().owner(bucket).is_none() {
            self.masters().await?;
        }
        if state.topology().replicas_of(bucket) == 0 {
            return Ok(());
        }
        // Short: a replica on the same network acknowledges in about a millisecond, and a
        // dead replica the slot map still lists must not hold every write for long.
        let limit = self.timeout.clamp(Duration::from_millis(10), WAIT_LIMIT);
        let route = redis::cluster_routing::RoutingInfo::SingleNode(
            redis::cluster_routing::SingleNodeRoutingInfo::SpecificNode(
                redis::cluster_routing::Route::new(
                    keys::bucket_slot(bucket),
                    redis::cluster_routing::SlotAddr::Master,
                ),
            ),
        );
        let mut wait = redis::cmd("WAIT");
        wait.arg(1)
            .arg(u64::try_from(limit.as_millis()).unwrap_or(u64::MAX));
        let acked: i64 = Self::within(limit * 2, async {
            let value = conn.route_command(wait, route.clone()).await?;
            Ok(redis::from_redis_value(value)?)
        })
        .await?;
        if acked >= 1 {
            return Ok(());
        }
        // No acknowledgement: fine only if the master has no connected replica (its
        // replica died with a failover, say; the slot map may still list it).
        let role: (String, i64, Vec<redis::Value>) = Self::within(limit * 2, async {
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

    /// `PUBLISH`, or `SPUBLISH` to a sharded channel in cluster mode.
    fn publish_command(&self) -> &'static str {
        match self.keys.layout() {
            KeyLayout::Single => "PUBLISH",
            KeyLayout::Cluster => "SPUBLISH",
        }
    }

    /// Tells every replica to drop its whole L1 (after `clear`). In cluster mode on every
    /// bucket's channel: a replica that lost one of them flushes anyway, and any one
    /// message reaching a replica is enough.
    pub async fn announce_flush(&self) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        match self.keys.layout() {
            KeyLayout::Single => {
                let _: i64 = Self::bounded(
                    self.timeout,
                    conn.publish(self.keys.invalidation_channel(0), "*"),
                )
                .await?;
            }
            KeyLayout::Cluster => {
                let announcements =
                    self.keys
                        .invalidation_channels()
                        .into_iter()
                        .map(|(channel, _)| {
                            let mut conn = conn.clone();
                            async move {
                                redis::cmd("SPUBLISH")
                                    .arg(channel)
                                    .arg("*")
                                    .query_async::<i64>(&mut conn)
                                    .await
                            }
                        });
                let results = Self::bounded(self.timeout.max(ADMIN_TIMEOUT_FLOOR), async {
                    Ok(futures::future::join_all(announcements).await)
                })
                .await?;
                results.into_iter().collect::<Result<Vec<_>, _>>()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Product;

    #[test]
    fn absent_and_present_values_round_trip() {
        assert_eq!(decode(ABSENT.to_owned()).ok(), Some(CachedValue::Absent));
        let product = Product {
            id: 3,
            name: "n".into(),
            category: Some("c".into()),
            price: Some(rust_decimal::Decimal::new(1999, 2)),
            description: None,
            created_at: chrono::DateTime::UNIX_EPOCH,
            updated_at: chrono::DateTime::UNIX_EPOCH,
        };
        let value =
            CachedValue::Present(Arc::new(EncodedProduct::encode(&product).expect("encodes")));
        let json = stored_text(&value).to_owned();
        assert!(json.contains("\"price\":19.99"), "{json}");
        assert_eq!(decode(json).ok(), Some(value));
        assert_eq!(stored_text(&CachedValue::Absent), ABSENT);
        assert!(decode("{broken".to_owned()).is_err());
    }
}
