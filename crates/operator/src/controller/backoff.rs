//! Per-object exponential backoff after failed reconciles.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// First retry after a failure; doubles per consecutive failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(5);
/// Longest retry delay after failures.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Delay before the next try after `failures` consecutive failures (≥ 1).
pub fn backoff_delay(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    BACKOFF_BASE
        .saturating_mul(1u32 << exponent)
        .min(BACKOFF_MAX)
}

/// An entry not renewed for this long belongs to an object no longer reconciled: a
/// failing object is retried at least every [`BACKOFF_MAX`], so twice that plus a margin
/// means it was deleted (kube-runtime never calls `reconcile` or `error_policy` for an
/// object gone from its store). Forgetting one wrongly only restarts its backoff at
/// [`BACKOFF_BASE`].
pub const FORGET_AFTER: Duration = Duration::from_secs(2 * 300 + 60);

/// Consecutive failures per object, for per-object exponential backoff.
#[derive(Debug, Default)]
pub struct Backoffs(Mutex<HashMap<String, (u32, Instant)>>);

impl Backoffs {
    /// Counts one more failure of `key` and returns the count.
    pub fn failed(&self, key: &str) -> u32 {
        self.failed_at(key, Instant::now())
    }

    /// [`Backoffs::failed`] at `now`; entries of objects not seen for [`FORGET_AFTER`]
    /// go (an object deleted while failing would otherwise stay for ever).
    pub fn failed_at(&self, key: &str, now: Instant) -> u32 {
        let mut map = self.0.lock();
        map.retain(|_, (_, last)| now.saturating_duration_since(*last) < FORGET_AFTER);
        let entry = map.entry(key.to_string()).or_insert((0, now));
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        entry.0
    }

    /// Forgets the failures of `key` after a success.
    pub fn succeeded(&self, key: &str) {
        let mut map = self.0.lock();
        map.remove(key);
    }

    /// Objects with failures remembered.
    pub fn len(&self) -> usize {
        self.0.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_delay(1), Duration::from_secs(5));
        assert_eq!(backoff_delay(2), Duration::from_secs(10));
        assert_eq!(backoff_delay(4), Duration::from_secs(40));
        assert_eq!(backoff_delay(7), BACKOFF_MAX);
        assert_eq!(backoff_delay(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn an_object_not_seen_for_a_while_is_forgotten() {
        let backoffs = Backoffs::default();
        let t0 = Instant::now();
        assert_eq!(backoffs.failed_at("ns/deleted", t0), 1);
        assert_eq!(backoffs.failed_at("ns/failing", t0), 1);
        // Still failing: retried at least every BACKOFF_MAX, so never forgotten.
        let mut t = t0;
        for n in 2..=4 {
            t += BACKOFF_MAX;
            assert_eq!(backoffs.failed_at("ns/failing", t), n);
        }
        assert_eq!(backoffs.len(), 1, "the deleted object's entry stayed");
        assert!(FORGET_AFTER > BACKOFF_MAX * 2);
    }
}
