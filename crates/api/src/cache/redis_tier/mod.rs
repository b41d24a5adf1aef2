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
//! These calls are the same for one Redis and a Redis Cluster: what differs (breakers,
//! epochs, the wait after an invalidation, announcements, subscriptions) is `Backend`'s,
//! in `backend.rs`, `single.rs`, `cluster/` and `subscription/`; the calls for people
//! are in `admin.rs`.

use std::{sync::Arc, time::Duration};

use redis::Script;
use tokio::time::Instant;

use super::{
    breaker::{BreakerState, Call, Thresholds},
    expiry::{ExpiryPolicy, Freshness, random_u64, random_unit},
    keys::{KeyScheme, RedisMode},
    value::CachedValue,
};

pub mod admin;
mod backend;
pub mod cluster;
mod connection;
mod error;
mod incarnation;
mod info;
mod scripts;
mod single;
mod stored;
pub mod subscription;

pub use backend::Backend;
use connection::ADMIN_TIMEOUT_FLOOR;
use connection::RedisConnection;
pub use error::CacheError;
use error::bounded;
use error::is_outage;
use incarnation::Incarnation;
use stored::{ABSENT, decode, stored_text};

use scripts::{ENSURE_EPOCH_SCRIPT, FILL_SCRIPT, INVALIDATE_SCRIPT, VERIFY_INCARNATION_SCRIPT};

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
    pub url: cacheme_runtime::Secret,
    /// One Redis, or a Redis Cluster.
    pub mode: RedisMode,
    pub key_prefix: String,
    pub expiry: ExpiryPolicy,
    pub timeout: Duration,
    pub breaker: Thresholds,
    pub breaker_cooldown: Duration,
    /// Test-only: store fills without checking generation and epoch (`UNSAFE_SKIP_FILL_CHECK`).
    pub unsafe_skip_fill_check: bool,
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

impl RedisTier {
    /// Does not connect: the first call does, so the service starts while Redis is down.
    pub fn new(settings: RedisTierSettings) -> Result<Self, redis::RedisError> {
        let (backend, conn) = Backend::connect(&settings)?;
        Ok(Self {
            keys: KeyScheme::with_mode(settings.key_prefix, backend.mode()),
            incarnation: Arc::new(Incarnation::new(backend.epochs())),
            backend,
            conn,
            expiry: settings.expiry,
            timeout: settings.timeout,
            fill_script: Arc::new(Script::new(FILL_SCRIPT)),
            invalidate_script: Arc::new(Script::new(INVALIDATE_SCRIPT)),
            ensure_epoch_script: Arc::new(Script::new(ENSURE_EPOCH_SCRIPT)),
            verify_incarnation_script: Arc::new(Script::new(VERIFY_INCARNATION_SCRIPT)),
            recent_info: Arc::default(),
            unsafe_skip_fill_check: settings.unsafe_skip_fill_check,
        })
    }

    /// Calls for people (clear, INFO, the replication wait) may take longer than a lookup.
    fn admin_timeout(&self) -> Duration {
        self.timeout.max(ADMIN_TIMEOUT_FLOOR)
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
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
        self.backend.breaker_state(Instant::now().into_std())
    }

    /// Which Redis holds `id`'s keys (see [`Backend::shard_of`]).
    pub fn shard_of(&self, id: i32) -> Option<String> {
        self.backend.shard_of(id)
    }

    /// A request-path call: skipped while the breaker is open, bounded by the timeout,
    /// and its outcome fed back to the breaker.
    async fn guarded<T>(
        &self,
        id: i32,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, CacheError> {
        let breaker = self.backend.breaker_for(id);
        let Some(permit) = breaker.allow(Instant::now().into_std()) else {
            return Err(CacheError::BreakerOpen);
        };
        // If this future is dropped here (its request was cancelled), a probe permit
        // reports a failure on drop: the breaker never waits for a probe that is gone.
        let result = bounded(self.timeout, call).await;
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

    /// Value, generation, epoch and remaining TTL in one round trip of two commands
    /// (`MGET` of the entry, its generation and the epoch, `PTTL`). A missing epoch (a new
    /// or flushed Redis) costs one more round trip, to create it.
    #[tracing::instrument(name = "cache.redis.lookup", skip(self), fields(cache.tier = "redis", db.system = "redis", cache.hit))]
    pub async fn lookup(&self, id: i32) -> Result<Lookup, CacheError> {
        let index = self.backend.epoch_index(id);
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
            .arg(self.backend.publish_command());
        // Not guarded by the breaker: a write must try to invalidate even when reads have
        // given up on Redis for a while; the caller retries failures.
        let invalidated = bounded(self.timeout, invocation.invoke_async::<i64>(&mut conn)).await;
        self.withdraw_trust_after(&invalidated);
        invalidated?;
        self.backend
            .after_invalidate(id, self.timeout, self.admin_timeout())
            .await
    }

    /// Tells every replica to drop its whole L1 (after `clear`).
    pub async fn announce_flush(&self) -> Result<(), CacheError> {
        self.backend
            .announce_flush(&self.keys, self.timeout, self.admin_timeout())
            .await
    }
}
