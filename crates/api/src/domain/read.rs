//! The read path, one step per tier: L1, then L2, then one database load per id shared
//! by every request that missed meanwhile. What each step counts and times is in
//! `observe.rs`: here is only what it decides.

use std::{sync::Arc, time::Instant};

use futures::FutureExt as _;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument as _;

use super::{
    Catalog, CatalogError, Served, Tier,
    loaded::{LoadResult, Loaded},
    observe::{self, cache_time, db_time},
    owed::Owed,
};
use crate::{
    cache::{
        expiry::Freshness,
        redis_tier::{FillTicket, Lookup},
        value::{CachedValue, EncodedProduct},
    },
    observability::stats::bump,
};

/// What L2 gave a read.
enum FromRedis {
    /// Serve this: fresh, or stale while one refresh runs.
    Hit(CachedValue),
    /// Load from PostgreSQL. `ticket` lets the load fill Redis (none when Redis failed);
    /// `fallback` is an entry past its stale window, served only if PostgreSQL fails.
    Miss {
        ticket: Option<FillTicket>,
        fallback: Option<CachedValue>,
    },
}

impl Catalog {
    /// Looks a product up through both tiers.
    pub async fn get(&self, id: i32) -> Result<Served, CatalogError> {
        let arrived = Instant::now();
        match self.owed(id) {
            Owed::No => {}
            Owed::Yes => {
                // Redis may still hold what a write replaced: bypass both tiers.
                return self.read_database_only(id).await;
            }
            Owed::Unknown => {
                // The outbox has not been read yet (it failed at start): any id may be
                // owed, so PostgreSQL first; only if it fails do the caches answer.
                match self.read_database_only(id).await {
                    Err(e) if e.database_unavailable() => {}
                    answered => return answered,
                }
            }
            // PostgreSQL is down: the caches answer (what they hold may include an entry
            // whose invalidation is owed, as the limits in docs/architecture.md say), and as fast as
            // when the outbox is known.
            Owed::UnknownDatabaseDown => {}
        }
        let epoch = self.memory.epoch();
        if let Some(value) = self.lookup_memory(id).await {
            return self.answer(value, Some(Tier::Memory));
        }
        match self.lookup_redis(id, epoch).await {
            FromRedis::Hit(value) => self.answer(value, Some(Tier::Redis)),
            FromRedis::Miss { ticket, fallback } => {
                let db = &self.db;
                if !self
                    .id_bound
                    .may_exist(id, arrived, || db.max_product_id())
                    .await
                {
                    // Above the highest id: no query, no load task, no negative entry.
                    bump(&self.counters.beyond_last_id);
                    return Err(CatalogError::NotFound);
                }
                // Boxed: only a miss pays for the load's future, so a hit in flight
                // holds a small one (1000 connections' worth adds up).
                Box::pin(self.load_from_database(id, ticket, epoch, fallback)).await
            }
        }
    }

    async fn read_database_only(&self, id: i32) -> Result<Served, CatalogError> {
        match db_time(self.query(id)).await? {
            Some(product) => Ok(Served {
                product,
                tier: None,
            }),
            None => Err(CatalogError::NotFound),
        }
    }

    async fn lookup_memory(&self, id: i32) -> Option<CachedValue> {
        if !self.memory.active() {
            return None;
        }
        observe::memory_lookup(&self.counters, id, self.memory.get(id)).await
    }

    async fn lookup_redis(&self, id: i32, epoch: u64) -> FromRedis {
        let lookup = cache_time(self.redis.lookup(id)).await;
        observe::redis_lookup(&self.counters, &lookup);
        match lookup {
            Ok(Lookup {
                entry: Some((value, Freshness::Fresh)),
                ..
            }) => {
                self.memory
                    .insert_if_unchanged(id, value.clone(), epoch)
                    .await;
                FromRedis::Hit(value)
            }
            Ok(Lookup {
                entry: Some((value, Freshness::Stale)),
                ticket,
            }) => {
                self.refresh_in_background(id, ticket, epoch);
                FromRedis::Hit(value)
            }
            Ok(Lookup {
                entry: Some((value, Freshness::ErrorOnly)),
                ticket,
            }) => FromRedis::Miss {
                ticket: Some(ticket),
                fallback: Some(value),
            },
            Ok(Lookup {
                entry: None,
                ticket,
            }) => FromRedis::Miss {
                ticket: Some(ticket),
                fallback: None,
            },
            // Redis failed or was skipped: load, but fill nothing.
            Err(_) => FromRedis::Miss {
                ticket: None,
                fallback: None,
            },
        }
    }

    async fn load_from_database(
        &self,
        id: i32,
        ticket: Option<FillTicket>,
        epoch: u64,
        fallback: Option<CachedValue>,
    ) -> Result<Served, CatalogError> {
        let (loaded, joined) = db_time(self.load(id, ticket, epoch, None)).await;
        if joined {
            bump(&self.counters.coalesced);
        }
        match (loaded, fallback) {
            (Ok(Loaded { product, .. }), _) => product
                .map(|product| Served {
                    product,
                    tier: None,
                })
                .ok_or(CatalogError::NotFound),
            (Err(e), Some(_))
                if e.database_unavailable()
                    && crate::mutation::active(crate::mutation::Mutation::SieAnswersAbsent) =>
            {
                Err(CatalogError::NotFound)
            }
            (Err(e), Some(stale)) if e.database_unavailable() => {
                if let CatalogError::TooManyLoads(_) = e {
                    // Counted in `loads_refused`; a line each would flood the log when
                    // the loads are full.
                    tracing::debug!(error = %e, "no load started; serving a stale entry");
                } else {
                    tracing::warn!(error = %e, "PostgreSQL failed; serving a stale entry");
                }
                bump(&self.counters.stale_if_error_served);
                self.answer(stale, Some(Tier::Redis))
            }
            (Err(e), _) => Err(e),
        }
    }

    fn answer(&self, value: CachedValue, tier: Option<Tier>) -> Result<Served, CatalogError> {
        match value {
            CachedValue::Present(product) => Ok(Served { product, tier }),
            CachedValue::Absent => {
                bump(&self.counters.negative_hits);
                Err(CatalogError::NotFound)
            }
        }
    }

    async fn query(&self, id: i32) -> Result<Option<Arc<EncodedProduct>>, CatalogError> {
        bump(&self.counters.db_queries);
        let row = self
            .db
            .get_product(id)
            .await
            .map_err(CatalogError::from_db)?;
        row.map(|p| EncodedProduct::encode(&p).map(Arc::new))
            .transpose()
            .map_err(|e| {
                CatalogError::internal(anyhow::Error::new(e).context("cannot encode a product"))
            })
    }

    /// One database query per id and generation at a time; the others wait for it, at
    /// most as long as a load may take. Returns whether this call waited for another's
    /// query. A background refresh passes its place among the refreshes': a load it starts
    /// keeps it to its end, as its place among the loads.
    async fn load(
        &self,
        id: i32,
        ticket: Option<FillTicket>,
        epoch: u64,
        refresh_place: Option<OwnedSemaphorePermit>,
    ) -> (LoadResult, bool) {
        let this = self.clone();
        let deadline = self.db.load_deadline();
        // The load runs as a task of its own, under the span of the request that started it.
        let span = tracing::Span::current();
        let flight = self.flights.run(id, ticket, move || {
            // Only a load that starts takes a permit, and its task keeps it to its end:
            // requests that join it need none, and one that stops waiting frees none.
            // None left: this request alone is refused, and no flight is started.
            match this.loads.clone().try_acquire_owned() {
                Ok(load_place) => Ok(async move {
                    let loaded = this.load_and_fill(id, ticket, epoch).await;
                    // The refresh's place first: `/cache/stats` reads the loads' count
                    // before the refreshes', so an ending refresh is not shown without
                    // its load.
                    drop(refresh_place);
                    drop(load_place);
                    loaded
                }
                .instrument(span)
                .boxed()),
                Err(_) => {
                    bump(&this.counters.loads_refused);
                    Err(Err(CatalogError::TooManyLoads(this.loads_allowed)))
                }
            }
        });
        match tokio::time::timeout(deadline, flight).await {
            Ok((Some(result), joined)) => (result, joined),
            Ok((None, joined)) => (
                Err(CatalogError::internal(anyhow::anyhow!(
                    "the load task failed"
                ))),
                joined,
            ),
            Err(_) => (Err(CatalogError::LoadTimedOut(deadline)), false),
        }
    }

    async fn load_and_fill(&self, id: i32, ticket: Option<FillTicket>, epoch: u64) -> LoadResult {
        let product = self.query(id).await?;
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
        self.hooks.pause_before_fill(id).await;
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

    /// Starts (or joins) a load for a stale entry, unless half of `DB_MAX_LOADS` are
    /// refreshes already ([`super::catalog::refreshes_allowed`]): nobody waits for a
    /// refresh, so it must not take the places misses need. The entry is served stale
    /// either way.
    fn refresh_in_background(&self, id: i32, ticket: FillTicket, epoch: u64) {
        let Ok(refresh_place) = self.refreshes.clone().try_acquire_owned() else {
            bump(&self.counters.refreshes_skipped);
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            match this
                .load(id, Some(ticket), epoch, Some(refresh_place))
                .await
            {
                (Err(e @ CatalogError::TooManyLoads(_)), _) => {
                    // Counted in `loads_refused`; a log line each would flood under load.
                    tracing::debug!(error = %e, product.id = id, "background refresh skipped");
                }
                (Err(e), _) => {
                    tracing::warn!(error = ?e, product.id = id, "background refresh failed");
                }
                (Ok(_), _) => {}
            }
        });
    }
}
