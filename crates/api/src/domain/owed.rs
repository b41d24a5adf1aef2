//! Which invalidations may still be owed to Redis, as the outbox last said: the read
//! path asks before it trusts a cached entry.

use std::{
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use parking_lot::Mutex;

use crate::cache::pending::PendingSet;

/// Ids with a pending invalidation, and their number, so the read path skips the lock
/// when there are none (nearly always): one atomic load on a hit.
#[derive(Debug)]
pub(super) struct Pending {
    set: Mutex<PendingSet>,
    /// The set's size, or [`NOT_READ_YET`] until the outbox has been read once (until
    /// then every id counts as owed).
    count: AtomicUsize,
    /// The last outbox read failed because PostgreSQL is unavailable.
    unreadable: AtomicBool,
    /// When the outbox was last read.
    last_read: Mutex<Option<Instant>>,
}

const NOT_READ_YET: usize = usize::MAX;

impl Default for Pending {
    fn default() -> Self {
        Self {
            set: Mutex::default(),
            count: AtomicUsize::new(NOT_READ_YET),
            unreadable: AtomicBool::new(false),
            last_read: Mutex::new(None),
        }
    }
}

impl Pending {
    pub(super) fn update<R>(&self, change: impl FnOnce(&mut PendingSet) -> R) -> R {
        let mut set = self.set.lock();
        let result = change(&mut set);
        let count = if set.is_known() {
            set.len()
        } else {
            NOT_READ_YET
        };
        self.count.store(count, Ordering::Release);
        result
    }

    /// Records whether the last outbox read failed for want of PostgreSQL.
    pub(super) fn read_failed(&self, database_unavailable: bool) {
        self.unreadable
            .store(database_unavailable, Ordering::Release);
    }

    /// Records a successful outbox read (after [`PendingSet::replace`]).
    pub(super) fn read_at(&self, now: Instant) {
        *self.last_read.lock() = Some(now);
    }

    /// Forgets what the outbox said when that is older than `lease`: a replica that
    /// cannot read it (a slow or saturated PostgreSQL) does not know which writes other
    /// replicas failed to invalidate since, so every id counts as owed until it can.
    /// Returns whether it did so now (it vouched until then).
    pub(super) fn expire_older_than(&self, lease: Duration, now: Instant) -> bool {
        let stale = self
            .last_read
            .lock()
            .is_some_and(|at| now.saturating_duration_since(at) > lease);
        stale
            && self.update(|set| {
                let vouched = set.is_known();
                set.expire();
                vouched
            })
    }

    pub(super) fn owed(&self, id: i32) -> Owed {
        if crate::mutation::active(crate::mutation::Mutation::NothingPending) {
            return Owed::No;
        }
        match self.count.load(Ordering::Acquire) {
            0 => Owed::No,
            NOT_READ_YET if self.unreadable.load(Ordering::Acquire) => Owed::UnknownDatabaseDown,
            NOT_READ_YET => Owed::Unknown,
            _ if self.set.lock().contains(id) => Owed::Yes,
            _ => Owed::No,
        }
    }

    /// Ids owed (0 until the outbox has been read once).
    pub(super) fn len(&self) -> usize {
        match self.count.load(Ordering::Acquire) {
            NOT_READ_YET => 0,
            n => n,
        }
    }
}

/// Whether an invalidation of an id may still be owed to Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Owed {
    No,
    Yes,
    /// The outbox has not been read yet.
    Unknown,
    /// The outbox has not been read yet, and PostgreSQL failed the last try.
    UnknownDatabaseDown,
}
