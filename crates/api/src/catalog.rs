//! The product read path through both cache tiers, and writes that invalidate them.
//!
//! Read: L1 (memory) → L2 (Redis) → PostgreSQL, with one database query per key at a time
//! in this process (single flight), unknown ids remembered as absent, stale entries
//! served while one background refresh runs, and stale-if-error when PostgreSQL fails.
//!
//! Write: commit to PostgreSQL, then invalidate: forget any flight for the id, drop the L1
//! entry, and in Redis bump the generation, delete the entry and announce the id to the
//! other replicas, atomically. An invalidation that cannot reach Redis is retried in the
//! background, and until it succeeds this process reads that id from PostgreSQL only.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{FutureExt, future::BoxFuture};
use tokio::sync::Notify;
use tracing::Instrument as _;

use crate::{
    cache::{
        keys::Freshness,
        memory::{CachedValue, EncodedProduct, MemoryTier},
        redis_tier::{CacheError, Lookup, RedisTier},
        singleflight::SingleFlight,
    },
    db::{Database, Product},
    error::ApiError,
    input::{ValidPatch, ValidProduct},
    stats::{CacheCounters, bump},
    timing::{record_cache, record_db},
};

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

type LoadResult = Result<Option<Arc<EncodedProduct>>, LoadError>;

/// Called between a miss's database read and its cache fill; tests use it to pause a
/// reader there while a write happens.
pub type FillHook = Arc<dyn Fn(i32) -> BoxFuture<'static, ()> + Send + Sync>;

#[derive(Clone, Default)]
pub struct Hooks {
    pub before_fill: Option<FillHook>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("before_fill", &self.before_fill.is_some())
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct Catalog {
    db: Database,
    redis: RedisTier,
    memory: MemoryTier,
    flights: SingleFlight<i32, LoadResult>,
    counters: Arc<CacheCounters>,
    pending: Arc<Mutex<BTreeSet<i32>>>,
    pending_added: Arc<Notify>,
    hooks: Hooks,
}

impl Catalog {
    pub fn new(db: Database, redis: RedisTier, memory: MemoryTier, hooks: Hooks) -> Self {
        let negative_caching = redis.negative_caching();
        Self {
            db,
            redis,
            memory,
            // Only what was also cached lingers: with negative caching off, an unknown
            // id must be asked again.
            flights: SingleFlight::with_linger(
                FLIGHT_LINGER,
                if negative_caching {
                    |r: &LoadResult| r.is_ok()
                } else {
                    |r: &LoadResult| matches!(r, Ok(Some(_)))
                },
            ),
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

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, BTreeSet<i32>> {
        // Plain set operations; a poisoned set is still consistent.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_pending(&self, id: i32) -> bool {
        self.lock_pending().contains(&id)
    }

    pub fn pending_invalidations(&self) -> usize {
        self.lock_pending().len()
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
        let generation = match lookup {
            Ok(Lookup {
                entry: Some((value, freshness)),
                generation,
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
                    self.refresh_in_background(id, generation, epoch);
                    return self.answer(value, Some(Tier::Redis));
                }
                Freshness::ErrorOnly => {
                    bump(&self.counters.redis_misses);
                    fallback = Some(value);
                    Some(generation)
                }
            },
            Ok(Lookup {
                entry: None,
                generation,
            }) => {
                bump(&self.counters.redis_misses);
                Some(generation)
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
        let (loaded, joined) = self.load(id, generation, epoch).await;
        record_db(started.elapsed());
        if joined {
            bump(&self.counters.coalesced);
        }
        match (loaded, fallback) {
            (Ok(Some(product)), _) => Ok(Served {
                product,
                tier: None,
            }),
            (Ok(None), _) => Err(ApiError::ProductNotFound),
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

    /// One database query per id at a time; the others wait for it. Returns whether
    /// this call waited for another's query.
    async fn load(&self, id: i32, generation: Option<u64>, epoch: u64) -> (LoadResult, bool) {
        let this = self.clone();
        self.flights
            .run(id, move || {
                async move { this.load_and_fill(id, generation, epoch).await }.boxed()
            })
            .await
    }

    async fn load_and_fill(&self, id: i32, generation: Option<u64>, epoch: u64) -> LoadResult {
        let product = self.query(id).await.map_err(LoadError::from)?;
        let value = match &product {
            Some(p) => CachedValue::Present(p.clone()),
            None if self.redis.negative_caching() => CachedValue::Absent,
            None => return Ok(None),
        };
        if let Some(hook) = &self.hooks.before_fill {
            hook(id).await;
        }
        if let Some(generation) = generation {
            match self.redis.fill(id, &value, generation).await {
                Ok(true) => {}
                Ok(false) => {
                    // A write invalidated the key after we read the row: what we hold may
                    // be old, so it goes into neither tier.
                    bump(&self.counters.fills_refused);
                    return Ok(product);
                }
                Err(e) => tracing::debug!(error = %e, "cache fill skipped"),
            }
        }
        self.memory.insert_if_unchanged(id, value, epoch).await;
        Ok(product)
    }

    fn refresh_in_background(&self, id: i32, generation: u64, epoch: u64) {
        let this = self.clone();
        tokio::spawn(async move {
            if let (Err(e), _) = this.load(id, Some(generation), epoch).await {
                tracing::warn!(error = ?e, product.id = id, "background refresh failed");
            }
        });
    }

    /// Drops every trace of `id` from both tiers (see the module comment).
    pub async fn invalidate(&self, id: i32) {
        self.flights.forget(&id);
        self.memory.invalidate(id).await;
        if let Err(e) = self.redis.invalidate(id).await {
            bump(&self.counters.invalidation_failures);
            tracing::warn!(error = %e, product.id = id, "invalidation did not reach Redis; retrying in the background");
            self.lock_pending().insert(id);
            self.pending_added.notify_one();
        }
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
            self.flights.forget(&id);
            self.memory.invalidate(id).await;
        } else {
            tracing::warn!(message, "ignoring a malformed invalidation message");
        }
    }

    /// Retries failed invalidations until each reaches Redis. Runs for the life of the app.
    pub async fn retry_pending_invalidations(self) {
        loop {
            let _ = tokio::time::timeout(Duration::from_millis(250), self.pending_added.notified())
                .await;
            let ids: Vec<i32> = self.lock_pending().iter().copied().collect();
            for id in ids {
                match self.redis.invalidate(id).await {
                    Ok(()) => {
                        self.lock_pending().remove(&id);
                        tracing::info!(product.id = id, "delayed invalidation reached Redis");
                    }
                    Err(_) => break,
                }
            }
        }
    }

    pub async fn create(&self, input: &ValidProduct) -> Result<Product, ApiError> {
        let product = self
            .db
            .insert_product(input)
            .await
            .map_err(ApiError::from_db)?;
        // The id may be remembered as absent.
        self.invalidate(product.id).await;
        Ok(product)
    }

    pub async fn replace(&self, id: i32, input: &ValidProduct) -> Result<Product, ApiError> {
        let product = self
            .db
            .replace_product(id, input)
            .await
            .map_err(ApiError::from_db)?;
        let product = product.ok_or(ApiError::ProductNotFound)?;
        self.invalidate(id).await;
        Ok(product)
    }

    pub async fn patch(&self, id: i32, patch: &ValidPatch) -> Result<Product, ApiError> {
        let product = self
            .db
            .patch_product(id, patch)
            .await
            .map_err(ApiError::from_db)?;
        let product = product.ok_or(ApiError::ProductNotFound)?;
        self.invalidate(id).await;
        Ok(product)
    }

    pub async fn delete(&self, id: i32) -> Result<(), ApiError> {
        let deleted = self
            .db
            .delete_product(id)
            .await
            .map_err(ApiError::from_db)?;
        if !deleted {
            return Err(ApiError::ProductNotFound);
        }
        self.invalidate(id).await;
        Ok(())
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
