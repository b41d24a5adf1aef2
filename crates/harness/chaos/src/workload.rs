//! What the clients share: the workload (ports, products, readers, pacing) and the
//! progress counters. The clients themselves are in `clients` (readers, and the start of
//! every thread), `writers` (the sequential writers) and `lifecycle` (the writers that
//! create and delete products).

use std::{
    collections::VecDeque,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};

use super::{
    history::{Effect, Op, OpKind},
    rng::Rng,
};

#[derive(Debug, Clone)]
pub struct Workload {
    pub ports: Vec<u16>,
    pub products: u32,
    /// Seeded products after the hot ones, written every few seconds (issue #22, C3).
    pub cold: u32,
    pub readers: usize,
    /// Readers of cold products only, besides `readers`: during a PostgreSQL fault the
    /// others wait on reads only PostgreSQL can answer (ids owed an invalidation), and
    /// would leave the cold entries unread just when stale-if-error should serve them.
    pub cold_readers: usize,
    pub abandon_percent: f64,
    pub quarantine: Duration,
    /// After half the acknowledged writes, writers pause 1..=this many ms, so that writes
    /// spread over the run instead of coming in bursts between quarantines.
    pub write_think_ms: u64,
    pub seed: u64,
}

/// Counters the progress line shows while the run goes on, and what readers share with
/// the writer of created products.
#[derive(Debug, Default)]
pub struct Progress {
    pub stop: AtomicBool,
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub failed: AtomicU64,
    /// The ids created lately (readers keep reading a deleted one for a while).
    created: Mutex<VecDeque<u32>>,
    /// The highest id known to exist or to have existed (15 seeded products at first).
    highest_id: AtomicU32,
}

/// Created ids readers choose from: the newest few.
const CREATED_KEPT: usize = 3;

/// Share of reads that go to created products and to the next id (percent).
pub(crate) const LIFECYCLE_READS: f64 = 15.0;

/// Ids the seed file gives the chaos database; creations get ids above.
const SEEDED_IDS: u32 = 15;

/// Cold products: every seeded id after the hot ones, at most this many.
const COLD_PRODUCTS: u32 = 9;

/// How many cold products a run with `products` hot ones has.
pub fn cold_products(products: u32) -> u32 {
    COLD_PRODUCTS.min(SEEDED_IDS.saturating_sub(products))
}

impl Workload {
    /// Every product with a sequential writer: hot ones first, then cold ones.
    pub fn written_products(&self) -> u32 {
        self.products + self.cold
    }
}

impl Progress {
    pub(crate) fn created(&self, id: u32) {
        self.highest_id.fetch_max(id, Ordering::Relaxed);
        if let Ok(mut ids) = self.created.lock() {
            ids.push_back(id);
            while ids.len() > CREATED_KEPT {
                ids.pop_front();
            }
        }
    }

    /// An id for a reader of created products: one of the newest (maybe deleted), or one
    /// near the highest known: a creation may be under way there (absent until it
    /// commits, then present: the negative entry a creation must drop), possibly
    /// committing after a higher id did.
    pub(crate) fn lifecycle_id(&self, rng: &mut Rng) -> u32 {
        let ids: Vec<u32> = self
            .created
            .lock()
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default();
        let pick = rng.below(ids.len() as u64 + 1) as usize;
        ids.get(pick).copied().unwrap_or_else(|| {
            let highest = self.highest_id.load(Ordering::Relaxed).max(SEEDED_IDS);
            // highest - 1 ..= highest + 2, never a seeded id.
            (highest + rng.below(4) as u32)
                .saturating_sub(1)
                .max(SEEDED_IDS + 1)
        })
    }

    /// Counts `op`, and makes an acknowledged creation's id known to the readers.
    pub(super) fn count(&self, op: &Op) {
        let counter = match op.kind {
            OpKind::Read => &self.reads,
            OpKind::Write => &self.writes,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if !op.is_ok() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        if op.effect == Effect::Create && op.is_ok() && op.product != 0 {
            self.created(op.product);
        }
    }
}
