//! The product catalog: reads through both cache tiers (`read.rs`), writes that
//! invalidate them (`writes.rs`), and what keeps the tiers in step across replicas.
//!
//! Read: L1 (memory) → L2 (Redis) → PostgreSQL, with one database query per key at a time
//! in this process (single flight), unknown ids remembered as absent, stale entries
//! served while one background refresh runs (none while half of the loads are refreshes),
//! and stale-if-error when PostgreSQL fails.
//!
//! Write: the statement and its outbox row commit together, then the invalidation runs;
//! both as one task that a cancelled request cannot split.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::{Notify, Semaphore};

use super::{
    CatalogError,
    hooks::Hooks,
    loaded::{LoadResult, lingers},
    owed::{Owed, Pending},
};
use crate::{
    cache::{
        memory::MemoryTier,
        redis_tier::{RedisTier, subscription::InvalidationTarget},
        singleflight::SingleFlight,
        value::EncodedProduct,
    },
    model::Product,
    observability::{stats::CacheCounters, timing::record_db},
    store::Database,
};

/// How long a finished database load still answers requests that missed the cache just
/// before it was filled (writes end it at once).
const FLIGHT_LINGER: Duration = Duration::from_millis(100);

/// How many of `max_loads` places background refreshes may hold at once: half, at least
/// one. The other half is kept for misses, whose requests wait for their load.
pub(super) fn refreshes_allowed(max_loads: usize) -> usize {
    (max_loads / 2).max(1)
}

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

/// The read-through catalog. A clone is one reference count: a miss, a write and a
/// refresh each hand one to a task of their own.
#[derive(Debug, Clone)]
pub struct Catalog(Arc<Parts>);

/// What a [`Catalog`] is made of; its methods reach these through `Deref`.
#[derive(Debug)]
pub struct Parts {
    pub(super) db: Database,
    pub(super) redis: RedisTier,
    pub(super) memory: MemoryTier,
    pub(super) flights: SingleFlight<i32, Option<crate::cache::redis_tier::FillTicket>, LoadResult>,
    /// One permit per load that may run at once (`DB_MAX_LOADS`), held by the load's own
    /// task to its end: a request that stops waiting does not free it.
    pub(super) loads: Arc<Semaphore>,
    /// Its size, for the error that names it.
    pub(super) loads_allowed: usize,
    /// Places background refreshes may take: at most half of `DB_MAX_LOADS` (at least one),
    /// so that refreshes of stale entries, which nobody waits for, cannot take the places
    /// a miss needs. Taken before a refresh's task starts; the load it starts keeps it to
    /// its end, beside its `loads` permit; a refresh that joins a running load, or finds
    /// no `loads` permit, gives it back at once.
    pub(super) refreshes: Arc<Semaphore>,
    pub(super) counters: Arc<CacheCounters>,
    pub(super) pending: Arc<Pending>,
    pub(super) pending_added: Arc<Notify>,
    /// The highest existing id: misses above it answer 404 without a query (A3).
    pub(super) id_bound: Arc<super::id_bound::IdBound>,
    pub(super) hooks: Hooks,
}

impl std::ops::Deref for Catalog {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

impl Catalog {
    /// `counters` are the ones [`crate::observability::metrics::Metrics`] exports.
    pub fn new(
        db: Database,
        redis: RedisTier,
        memory: MemoryTier,
        hooks: Hooks,
        counters: Arc<CacheCounters>,
        max_loads: usize,
    ) -> Self {
        Self(Arc::new(Parts {
            db,
            redis,
            memory,
            // Only what Redis also took lingers: a refused fill may be old, and with
            // negative caching off an unknown id must be asked again.
            flights: SingleFlight::with_linger(FLIGHT_LINGER, lingers),
            loads: Arc::new(Semaphore::new(max_loads)),
            loads_allowed: max_loads,
            refreshes: Arc::new(Semaphore::new(refreshes_allowed(max_loads))),
            counters,
            pending: Arc::default(),
            pending_added: Arc::default(),
            id_bound: Arc::default(),
            hooks,
        }))
    }

    /// Keeps L1 in step with every replica's writes: the invalidation channel, for the
    /// life of the app.
    pub async fn follow_invalidations(self) {
        crate::cache::redis_tier::subscription::listen_for_invalidations(self.redis.clone(), self)
            .await;
    }

    /// Watches which Redis process answers: one restarted from older data must not serve
    /// what was invalidated since (for the life of the app).
    pub async fn keep_checking_incarnation(self) {
        self.redis.clone().keep_checking_incarnation().await;
    }

    /// Closes the database pool (at shutdown).
    pub async fn close(&self) {
        self.db.close().await;
    }

    /// The database pool, for tests that change rows behind the caches' back.
    #[cfg(feature = "test-hooks")]
    pub fn db_pool(&self) -> sqlx::PgPool {
        self.db.pool().clone()
    }

    pub(super) fn owed(&self, id: i32) -> Owed {
        self.pending.owed(id)
    }

    pub fn pending_invalidations(&self) -> usize {
        self.pending.len()
    }

    /// Loads holding a place under `DB_MAX_LOADS`: running ones, joinable or not (a write
    /// stops new requests joining a load, which still runs to its end).
    pub fn loads_running(&self) -> usize {
        self.loads_allowed - self.loads.available_permits()
    }

    /// Background refreshes holding a place: those whose loads run (also counted in
    /// [`Self::loads_running`]), and for a moment those about to start or join one.
    pub fn refreshes_running(&self) -> usize {
        refreshes_allowed(self.loads_allowed) - self.refreshes.available_permits()
    }

    /// Loads in flight or lingering (for `/cache/stats`: none should outlive its deadline).
    pub fn flights_in_progress(&self) -> usize {
        self.flights.in_flight()
    }

    /// A page of products ordered by id, always from PostgreSQL.
    pub async fn list(&self, limit: i64, offset: i64) -> Result<Vec<Product>, CatalogError> {
        let started = Instant::now();
        let products = self.db.list_products(limit, offset).await;
        record_db(started.elapsed());
        products.map_err(CatalogError::from_db)
    }

    /// Empties both tiers (this service's keys only) and tells the other replicas, unless
    /// any replica cleared less than `min_interval` ago ([`CatalogError::TooSoon`]).
    pub async fn clear(&self, min_interval: Duration) -> Result<u64, CatalogError> {
        if !min_interval.is_zero() {
            let reserved = self
                .redis
                .reserve_clear(min_interval)
                .await
                .map_err(|e| CatalogError::CacheUnavailable(Arc::new(e)))?;
            if let Some(wait) = reserved {
                return Err(CatalogError::TooSoon(wait));
            }
        }
        self.flights.forget_finished();
        self.memory.flush();
        let cleared = self
            .redis
            .clear()
            .await
            .map_err(|e| CatalogError::CacheUnavailable(Arc::new(e)))?;
        if let Err(e) = self.redis.announce_flush().await {
            tracing::warn!(error = %e, "could not announce the flush to other replicas");
        }
        Ok(cleared)
    }
}

/// The invalidation channel drives L1 and the loads in flight.
impl InvalidationTarget for Catalog {
    fn subscribed(&self) {
        self.memory.set_trusted(true);
    }

    fn vouched(&self, sent_at: std::time::Instant) {
        self.memory.vouch(sent_at);
    }

    /// `*` for everything, else one id.
    async fn apply(&self, message: &str) {
        if crate::mutation::active(crate::mutation::Mutation::ListenerIgnoresMessages) {
            return;
        }
        if message == "*" {
            // A clear changes no row: loads still running stay valid and are kept (so a
            // stampede right after a clear still costs one query); finished ones go, so
            // the next read loads and caches afresh.
            self.flights.forget_finished();
            self.memory.flush();
        } else if let Ok(id) = message.parse::<i32>() {
            self.hooks.pause_before_remote_invalidation(id).await;
            self.flights.forget(&id);
            self.memory.invalidate(id).await;
        } else {
            tracing::warn!(message, "ignoring a malformed invalidation message");
        }
    }

    /// Messages may have been missed, so L1 is flushed and bypassed, and no load started
    /// before now is joined.
    fn lost(&self) {
        if crate::mutation::active(crate::mutation::Mutation::LostDoesNothing) {
            return;
        }
        self.memory.set_trusted(false);
        self.flights.forget_all();
    }
}

#[cfg(test)]
mod tests {
    use super::refreshes_allowed;

    #[test]
    fn refreshes_may_take_half_of_the_loads_and_at_least_one() {
        assert_eq!(refreshes_allowed(2048), 1024);
        assert_eq!(refreshes_allowed(3), 1);
        assert_eq!(refreshes_allowed(2), 1);
        // With a single place there is nothing to keep back: refreshes share it.
        assert_eq!(refreshes_allowed(1), 1);
    }
}
