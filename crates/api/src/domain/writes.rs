//! Writes and the invalidations they owe.
//!
//! A write's statement and its outbox row commit together (`store/products.rs`); the
//! invalidation then runs, and the whole runs as a task of its own that the handler awaits,
//! so a client that gives up cannot split the write from its invalidation. A write whose
//! outcome is unknown (the connection died after the statement was sent) is invalidated
//! all the same. An invalidation that does not reach Redis stays in the outbox: every
//! replica reads the outbox every `poll` and bypasses the cache for the ids it holds,
//! and the one holding the relay lock that pass relays the rows until Redis acknowledges
//! them, across restarts and crashes.

use std::time::Duration;

use tracing::Instrument as _;

use super::{Catalog, CatalogError};
use crate::{
    model::{Product, ValidPatch, ValidProduct},
    observability::stats::bump,
    store::{OwedInvalidation, Written, outcome_unknown},
};

/// How old an outbox row must be before other replicas relay it: its writer deletes it
/// itself within milliseconds when Redis answers.
const RELAY_GRACE: Duration = Duration::from_secs(1);

/// Most products relayed per pass: a long backlog is worked through over several polls,
/// so the next poll (which learns new pending ids) is not held up behind it.
const RELAY_BATCH: usize = 1000;

impl Catalog {
    /// Runs `work` as a task of its own and waits for it: dropping the caller (a cancelled
    /// request) does not stop it.
    async fn detached<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, CatalogError>> + Send + 'static,
    ) -> Result<T, CatalogError> {
        tokio::spawn(work.instrument(tracing::Span::current()))
            .await
            .map_err(|e| {
                CatalogError::internal(anyhow::Error::new(e).context("the write task failed"))
            })?
    }

    /// After a write statement on `id`: invalidates what it changed, also when its
    /// outcome is unknown, and maps its error.
    async fn settle<T>(
        &self,
        id: i32,
        result: Result<Option<Written<T>>, sqlx::Error>,
    ) -> Result<T, CatalogError> {
        match result {
            Ok(Some(written)) => {
                self.invalidate(id, Some(written.outbox_id)).await;
                Ok(written.value)
            }
            Ok(None) => Err(CatalogError::NotFound),
            Err(e) => {
                if outcome_unknown(&e) {
                    self.invalidate(id, None).await;
                }
                Err(CatalogError::from_db(e))
            }
        }
    }

    pub async fn create(&self, input: ValidProduct) -> Result<Product, CatalogError> {
        let this = self.clone();
        self.detached(async move {
            // The new id may be remembered as absent. An insert whose outcome is unknown
            // has no id to invalidate here; its outbox row, if it committed, is relayed.
            let written = this
                .db
                .insert_product(&input)
                .await
                .map_err(CatalogError::from_db)?;
            this.id_bound.raise(written.value.id);
            if !crate::mutation::active(crate::mutation::Mutation::NoInvalidateOnCreate) {
                this.invalidate(written.value.id, Some(written.outbox_id))
                    .await;
            }
            Ok(written.value)
        })
        .await
    }

    pub async fn replace(&self, id: i32, input: ValidProduct) -> Result<Product, CatalogError> {
        let this = self.clone();
        self.detached(async move {
            let result = this.db.replace_product(id, &input).await;
            this.settle(id, result).await
        })
        .await
    }

    pub async fn patch(&self, id: i32, patch: ValidPatch) -> Result<Product, CatalogError> {
        let this = self.clone();
        self.detached(async move {
            let result = this.db.patch_product(id, &patch).await;
            this.settle(id, result).await
        })
        .await
    }

    pub async fn delete(&self, id: i32) -> Result<(), CatalogError> {
        let this = self.clone();
        self.detached(async move {
            let result = this.db.delete_product(id).await;
            if crate::mutation::active(crate::mutation::Mutation::NoInvalidateOnDelete) {
                return match result {
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => Err(CatalogError::NotFound),
                    Err(e) => Err(CatalogError::from_db(e)),
                };
            }
            this.settle(id, result).await
        })
        .await
    }

    /// Seed data at start (see `Database::apply_seed`): applied once per distinct seed, its
    /// changes committed with their outbox rows, then invalidated like any write. `None`:
    /// this seed was applied before, nothing changed.
    pub async fn apply_seed(
        &self,
        products: &[(i32, ValidProduct)],
    ) -> Result<Option<usize>, sqlx::Error> {
        let canonical = crate::seed::canonical(products);
        let Some(changed) = self.db.apply_seed(&canonical, products).await? else {
            return Ok(None);
        };
        for written in &changed {
            self.invalidate(written.value, Some(written.outbox_id))
                .await;
        }
        Ok(Some(changed.len()))
    }

    /// Drops every trace of `id`: its flight, its L1 entry, and in Redis (one script) its
    /// entry, with a generation bump and an announcement to every replica. Once Redis
    /// acknowledged, the outbox row goes; until then the id is pending.
    async fn invalidate(&self, id: i32, outbox_id: Option<i64>) {
        use crate::mutation::{Mutation, active};
        if !active(Mutation::NoFlightForgetOnWrite) {
            self.flights.forget(&id);
        }
        self.memory.invalidate(id).await;
        self.hooks.pause_before_redis_invalidate(id).await;
        match self.redis.invalidate(id).await {
            Ok(()) => {
                // A reader may have copied the old entry from Redis into L1, or started a
                // load, between the drop above and the script: drop both again, so no
                // read after this write returns can see the old value here.
                if !active(Mutation::NoSecondL1Drop) {
                    self.memory.invalidate(id).await;
                    if !active(Mutation::NoFlightForgetOnWrite) {
                        self.flights.forget(&id);
                    }
                }
                if let Some(outbox_id) = outbox_id
                    && !active(Mutation::OutboxNeverDeleted)
                    && let Err(e) = self.db.delete_outbox_rows(&[outbox_id]).await
                {
                    // Harmless: the relay invalidates it once more, then deletes it.
                    tracing::debug!(error = %e, product.id = id, "outbox row left for the relay");
                }
            }
            Err(e) => {
                bump(&self.counters.invalidation_failures);
                tracing::warn!(error = %e, product.id = id, "invalidation did not reach Redis; relayed from the outbox");
                self.pending.update(|set| set.mark(id));
                self.pending_added.notify_one();
            }
        }
    }

    /// Reads the outbox every `poll` (or at once when this process marks an id): its ids
    /// become pending here, and rows older than [`RELAY_GRACE`] are relayed to Redis and
    /// deleted by whichever replica holds the relay lock that pass. Runs for the life of
    /// the app, on every replica.
    pub async fn relay_invalidations(self, poll: Duration) {
        loop {
            let _ = tokio::time::timeout(poll, self.pending_added.notified()).await;
            self.relay_once().await;
        }
    }

    /// Runs for the life of the app: when the outbox has not been read for `lease`, every
    /// id counts as owed (PostgreSQL first) until it is read again, so in-process trust
    /// has a bound that does not depend on the poll getting through.
    pub async fn expire_outbox_knowledge(self, lease: Duration) {
        let mut ticks = tokio::time::interval(lease / 4);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if self
                .pending
                .expire_older_than(lease, std::time::Instant::now())
            {
                tracing::warn!(
                    ?lease,
                    "the invalidation outbox has not been read for longer than its lease: \
                     reading PostgreSQL first until it is"
                );
            }
        }
    }

    /// One pass of [`Catalog::relay_invalidations`].
    pub async fn relay_once(&self) {
        let round = self.pending.update(|set| set.begin_round());
        let started = std::time::Instant::now();
        let owed = match self.db.owed_invalidations(RELAY_GRACE).await {
            Ok(owed) => {
                self.pending.read_failed(false);
                owed
            }
            Err(e) => {
                // Keep what is pending until the table can be read again.
                tracing::debug!(error = %e, "cannot read the invalidation outbox");
                self.pending.read_failed(crate::store::unavailable(&e));
                return;
            }
        };
        let added = self
            .pending
            .update(|set| set.replace(round, owed.iter().map(|o| o.product_id)));
        // What the table held when the read began is what it vouches for.
        self.pending.read_at(started);
        for id in added {
            self.flights.forget(&id);
            self.memory.invalidate(id).await;
        }
        if !owed.iter().any(|o| o.due) || !self.db.try_lead_relay().await {
            return;
        }
        // Read again under the lock: another replica may have relayed and deleted these
        // rows between the read above and taking the lock, and relaying them again would
        // bump their generations and drop every replica's L1 entries a second time.
        match self.db.owed_invalidations(RELAY_GRACE).await {
            Ok(owed) => self.relay_due(&owed).await,
            Err(e) => tracing::debug!(error = %e, "cannot read the invalidation outbox"),
        }
        self.db.end_relay_lead().await;
    }

    /// Relays the due rows of `owed` to Redis and deletes those that got through; the
    /// caller holds the relay lock.
    async fn relay_due(&self, owed: &[OwedInvalidation]) {
        let mut relayed = Vec::new();
        // In a cluster, one master that fails skips only its own ids this pass (each
        // failure costs a timeout); the others' are relayed.
        let mut failed_shards = std::collections::HashSet::new();
        for o in owed.iter().filter(|o| o.due).take(RELAY_BATCH) {
            let shard = self.redis.shard_of(o.product_id);
            if shard.as_ref().is_some_and(|s| failed_shards.contains(s)) {
                continue;
            }
            match self.redis.invalidate(o.product_id).await {
                Ok(()) => {
                    self.memory.invalidate(o.product_id).await;
                    self.flights.forget(&o.product_id);
                    relayed.extend_from_slice(&o.row_ids);
                    tracing::info!(
                        product.id = o.product_id,
                        "delayed invalidation reached Redis"
                    );
                }
                // Still unreachable: try again on the next pass.
                Err(_) => match shard {
                    None => break,
                    Some(shard) => {
                        failed_shards.insert(shard);
                    }
                },
            }
        }
        if crate::mutation::active(crate::mutation::Mutation::OutboxNeverDeleted) {
            relayed.clear();
        }
        if let Err(e) = self.db.delete_outbox_rows(&relayed).await {
            tracing::debug!(error = %e, "relayed outbox rows not deleted yet");
        }
    }
}
