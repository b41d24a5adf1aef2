//! The product read path through both cache tiers, and writes that invalidate them.
//!
//! Read: L1 (memory) → L2 (Redis) → PostgreSQL, with one database query per key at a time
//! in this process (single flight), unknown ids remembered as absent, stale entries
//! served while one background refresh runs, and stale-if-error when PostgreSQL fails.
//!
//! Write (`catalog/writes.rs`): the statement and its outbox row commit together, then the
//! invalidation runs; both as one task that a cancelled request cannot split.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures::{FutureExt, future::BoxFuture};
use tokio::sync::Notify;
use tracing::Instrument as _;

use crate::{
    cache::{
        keys::Freshness,
        memory::{CachedValue, EncodedProduct, MemoryTier},
        pending::PendingSet,
        redis_tier::{CacheError, FillTicket, Lookup, RedisTier},
        singleflight::SingleFlight,
    },
    db::Database,
    error::ApiError,
    stats::{CacheCounters, bump},
    timing::{record_cache, record_db},
};

mod writes;

/// How long a finished database load still answers requests that missed the cache just
/// before it was filled (writes end it at once).
const FLIGHT_LINGER: Duration = Duration::from_millis(100);

/// Which cache tier answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Memory,
    Redis,
}

/// A product and where it came from.
#[derive(Debug, Clone)]
pub struct Served {
    pub product: Arc<EncodedProduct>,
    /// `None`: read from PostgreSQL.
    pub tier: Option<Tier>,
}

/// A load failure that every waiter of a single flight can share.
#[derive(Debug, Clone)]
pub enum LoadError {
    Unavailable(String),
    Internal(String),
}

impl From<ApiError> for LoadError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::DatabaseUnavailable(e) => Self::Unavailable(e.to_string()),
            other => Self::Internal(format!("{other:?}")),
        }
    }
}

impl From<LoadError> for ApiError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Unavailable(msg) => ApiError::DatabaseUnavailableMsg(msg),
            LoadError::Internal(msg) => ApiError::Internal(anyhow::anyhow!(msg)),
        }
    }
}

/// What a load read, and whether Redis took it (only such results answer late joiners).
#[derive(Debug, Clone)]
pub struct Loaded {
    product: Option<Arc<EncodedProduct>>,
    cached: bool,
}

type LoadResult = Result<Loaded, LoadError>;

/// A pause point for tests: called with the product id.
pub type Hook = Arc<dyn Fn(i32) -> BoxFuture<'static, ()> + Send + Sync>;

/// Where tests can pause the read and write paths to force an interleaving.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Between a miss's database read and its cache fill.
    pub before_fill: Option<Hook>,
    /// Between a write's L1 drop and its Redis invalidation.
    pub before_redis_invalidate: Option<Hook>,
    /// Before an invalidation announced on the channel (this process's own included) is applied.
    pub before_remote_invalidation: Option<Hook>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("before_fill", &self.before_fill.is_some())
            .field(
                "before_redis_invalidate",
                &self.before_redis_invalidate.is_some(),
            )
            .field(
                "before_remote_invalidation",
                &self.before_remote_invalidation.is_some(),
            )
            .finish()
    }
}

/// Ids with a pending invalidation, and their number, so the read path skips the lock
/// when there are none (nearly always).
#[derive(Debug, Default)]
struct Pending {
    set: Mutex<PendingSet>,
    count: AtomicUsize,
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, PendingSet> {
        // Plain map operations; a poisoned set is still consistent.
        self.set.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update<R>(&self, change: impl FnOnce(&mut PendingSet) -> R) -> R {
        let mut set = self.lock();
        let result = change(&mut set);
        self.count.store(set.len(), Ordering::Release);
        result
    }

    fn contains(&self, id: i32) -> bool {
        self.count.load(Ordering::Acquire) > 0 && self.lock().contains(id)
    }
}

#[derive(Debug, Clone)]
pub struct Catalog {
    db: Database,
    redis: RedisTier,
    memory: MemoryTier,
    flights: SingleFlight<i32, Option<FillTicket>, LoadResult>,
    counters: Arc<CacheCounters>,
    pending: Arc<Pending>,
    pending_added: Arc<Notify>,
    hooks: Hooks,
}

impl Catalog {
    pub fn new(db: Database, redis: RedisTier, memory: MemoryTier, hooks: Hooks) -> Self {
        Self {
            db,
            redis,
            memory,
            // Only what Redis also took lingers: a refused fill may be old, and with
            // negative caching off an unknown id must be asked again.
            flights: SingleFlight::with_linger(FLIGHT_LINGER, |r: &LoadResult| {
                matches!(r, Ok(Loaded { cached: true, .. }))
            }),
            counters: Arc::default(),
            pending: Arc::default(),
            pending_added: Arc::default(),
            hooks,
        }
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    pub fn redis(&self) -> &RedisTier {
        &self.redis
    }

    pub fn memory(&self) -> &MemoryTier {
        &self.memory
    }

    pub fn counters(&self) -> &CacheCounters {
        &self.counters
    }

    fn is_pending(&self, id: i32) -> bool {
        self.pending.contains(id)
    }

    pub fn pending_invalidations(&self) -> usize {
        self.pending.count.load(Ordering::Acquire)
    }

    /// Loads in flight or lingering (for `/cache/stats`: none should outlive its deadline).
    pub fn flights_in_progress(&self) -> usize {
        self.flights.in_flight()
    }

    async fn query(&self, id: i32) -> Result<Option<Arc<EncodedProduct>>, ApiError> {
        bump(&self.counters.db_queries);
        let row = self.db.get_product(id).await.map_err(ApiError::from_db)?;
        row.map(|p| EncodedProduct::encode(&p).map(Arc::new))
            .transpose()
            .map_err(|e| {
                ApiError::Internal(anyhow::Error::new(e).context("cannot encode a product"))
            })
    }

    /// Looks a product up through both tiers.
    pub async fn get(&self, id: i32) -> Result<Served, ApiError> {
        if self.is_pending(id) {
            // Redis may still hold what a write replaced: bypass both tiers.
            let started = Instant::now();
            let product = self.query(id).await;
            record_db(started.elapsed());
            let product = product?;
            return product
                .map(|product| Served {
                    product,
                    tier: None,
                })
                .ok_or(ApiError::ProductNotFound);
        }

        let epoch = self.memory.epoch();
        if self.memory.active() {
            let started = Instant::now();
            let span = tracing::info_span!(
                "cache.memory.get",
                cache.tier = "memory",
                product.id = id,
                cache.hit = tracing::field::Empty
            );
            let found = self.memory.get(id).instrument(span.clone()).await;
            span.record("cache.hit", found.is_some());
            record_cache(started.elapsed());
            match found {
                Some(value) => {
                    bump(&self.counters.memory_hits);
                    return self.answer(value, Some(Tier::Memory));
                }
                None => bump(&self.counters.memory_misses),
            }
        }

        let mut fallback = None;
        let started = Instant::now();
        let lookup = self.redis.lookup(id).await;
        record_cache(started.elapsed());
        let ticket = match lookup {
            Ok(Lookup {
                entry: Some((value, freshness)),
                ticket,
            }) => match freshness {
                Freshness::Fresh => {
                    bump(&self.counters.redis_hits);
                    self.memory
                        .insert_if_unchanged(id, value.clone(), epoch)
                        .await;
                    return self.answer(value, Some(Tier::Redis));
                }
                Freshness::Stale => {
                    bump(&self.counters.redis_hits);
                    bump(&self.counters.stale_served);
                    self.refresh_in_background(id, ticket, epoch);
                    return self.answer(value, Some(Tier::Redis));
                }
                Freshness::ErrorOnly => {
                    bump(&self.counters.redis_misses);
                    fallback = Some(value);
                    Some(ticket)
                }
            },
            Ok(Lookup {
                entry: None,
                ticket,
            }) => {
                bump(&self.counters.redis_misses);
                Some(ticket)
            }
            Err(e) => {
                bump(&self.counters.redis_misses);
                match e {
                    CacheError::BreakerOpen => bump(&self.counters.redis_skipped),
                    other => {
                        bump(&self.counters.redis_errors);
                        if matches!(other, CacheError::Timeout(_)) {
                            bump(&self.counters.redis_timeouts);
                        }
                        tracing::warn!(error = %other, "Redis lookup failed; reading from PostgreSQL");
                    }
                }
                None
            }
        };

        let started = Instant::now();
        let (loaded, joined) = self.load(id, ticket, epoch).await;
        record_db(started.elapsed());
        if joined {
            bump(&self.counters.coalesced);
        }
        match (loaded, fallback) {
            (
                Ok(Loaded {
                    product: Some(product),
                    ..
                }),
                _,
            ) => Ok(Served {
                product,
                tier: None,
            }),
            (Ok(Loaded { product: None, .. }), _) => Err(ApiError::ProductNotFound),
            (Err(LoadError::Unavailable(msg)), Some(stale)) => {
                tracing::warn!(error = %msg, "PostgreSQL failed; serving a stale entry");
                bump(&self.counters.stale_if_error_served);
                self.answer(stale, Some(Tier::Redis))
            }
            (Err(e), _) => Err(e.into()),
        }
    }

    fn answer(&self, value: CachedValue, tier: Option<Tier>) -> Result<Served, ApiError> {
        match value {
            CachedValue::Present(product) => Ok(Served { product, tier }),
            CachedValue::Absent => {
                bump(&self.counters.negative_hits);
                Err(ApiError::ProductNotFound)
            }
        }
    }

    /// One database query per id and generation at a time; the others wait for it, at
    /// most as long as a load may take. Returns whether this call waited for another's
    /// query.
    async fn load(&self, id: i32, ticket: Option<FillTicket>, epoch: u64) -> (LoadResult, bool) {
        let this = self.clone();
        let deadline = self.db.load_deadline();
        // The load runs as a task of its own, under the span of the request that started it.
        let span = tracing::Span::current();
        let flight = self.flights.run(id, ticket, move || {
            async move { this.load_and_fill(id, ticket, epoch).await }
                .instrument(span)
                .boxed()
        });
        match tokio::time::timeout(deadline, flight).await {
            Ok((Some(result), joined)) => (result, joined),
            Ok((None, joined)) => (
                Err(LoadError::Internal("the load task failed".into())),
                joined,
            ),
            Err(_) => (
                Err(LoadError::Unavailable(format!(
                    "no answer from PostgreSQL within {deadline:?}"
                ))),
                false,
            ),
        }
    }

    async fn load_and_fill(&self, id: i32, ticket: Option<FillTicket>, epoch: u64) -> LoadResult {
        let product = self.query(id).await.map_err(LoadError::from)?;
        let value = match &product {
            Some(p) => CachedValue::Present(p.clone()),
            None if self.redis.negative_caching() => CachedValue::Absent,
            None => {
                return Ok(Loaded {
                    product,
                    cached: false,
                });
            }
        };
        if let Some(hook) = &self.hooks.before_fill {
            hook(id).await;
        }
        let mut cached = false;
        if let Some(ticket) = ticket {
            match self.redis.fill(id, &value, ticket).await {
                Ok(true) => cached = true,
                Ok(false) => {
                    // A write invalidated the key (or Redis lost its counters) after we
                    // read the row: what we hold may be old, so it goes into neither tier.
                    bump(&self.counters.fills_refused);
                    return Ok(Loaded { product, cached });
                }
                Err(e) => tracing::debug!(error = %e, "cache fill skipped"),
            }
        }
        self.memory.insert_if_unchanged(id, value, epoch).await;
        Ok(Loaded { product, cached })
    }

    fn refresh_in_background(&self, id: i32, ticket: FillTicket, epoch: u64) {
        let this = self.clone();
        tokio::spawn(async move {
            if let (Err(e), _) = this.load(id, Some(ticket), epoch).await {
                tracing::warn!(error = ?e, product.id = id, "background refresh failed");
            }
        });
    }

    /// The invalidation channel was lost: messages may have been missed, so L1 is flushed
    /// and bypassed, and no load started before now is joined.
    pub fn invalidation_channel_lost(&self) {
        self.memory.set_trusted(false);
        self.flights.forget_all();
    }

    /// What another replica announced: `*` for everything, else one id.
    pub async fn apply_remote_invalidation(&self, message: &str) {
        if message == "*" {
            // A clear changes no row: loads still running stay valid and are kept (so a
            // stampede right after a clear still costs one query); finished ones go, so
            // the next read loads and caches afresh.
            self.flights.forget_finished();
            self.memory.flush();
        } else if let Ok(id) = message.parse::<i32>() {
            if let Some(hook) = &self.hooks.before_remote_invalidation {
                hook(id).await;
            }
            self.flights.forget(&id);
            self.memory.invalidate(id).await;
        } else {
            tracing::warn!(message, "ignoring a malformed invalidation message");
        }
    }

    /// Empties both tiers (this service's keys only) and tells the other replicas.
    pub async fn clear(&self) -> Result<u64, ApiError> {
        self.flights.forget_finished();
        self.memory.flush();
        let cleared = self
            .redis
            .clear()
            .await
            .map_err(|e| ApiError::CacheUnavailable(e.to_string()))?;
        if let Err(e) = self.redis.announce_flush().await {
            tracing::warn!(error = %e, "could not announce the flush to other replicas");
        }
        Ok(cleared)
    }
}
