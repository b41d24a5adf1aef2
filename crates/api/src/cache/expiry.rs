//! When entries expire, and how long past that they may still be served. Pure, so the
//! rules are tested without Redis.

use std::{
    hash::{BuildHasher, Hasher},
    time::Duration,
};

/// `base` spread uniformly by ± `percent`, picked by `unit` in [0, 1). Never below 1 s.
pub fn jittered_ttl(base: Duration, percent: u8, unit: f64) -> Duration {
    let base_secs = base.as_secs_f64();
    let spread = base_secs * f64::from(percent) / 100.0;
    let unit = unit.clamp(0.0, 1.0);
    let secs = base_secs - spread + 2.0 * spread * unit;
    Duration::from_secs(secs.round().max(1.0) as u64)
}

/// A random number from the standard library's per-process random keys (not for secrets).
pub fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default(),
    );
    hasher.finish()
}

/// A uniform value in [0, 1) from the standard library's per-process random keys.
pub fn random_unit() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// How usable an entry still is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Within its TTL: serve it.
    Fresh,
    /// Past its TTL, within the stale-while-revalidate window: serve it and refresh in the background.
    Stale,
    /// Past both windows but within stale-if-error: only served when PostgreSQL fails.
    ErrorOnly,
}

/// When entries expire, and how long past that they may still be served.
///
/// An entry lives in Redis for its (jittered) TTL plus a grace period, the longer of the
/// two stale windows; its remaining `PTTL` tells how far into the grace period it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryPolicy {
    pub ttl: Duration,
    pub jitter_percent: u8,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
    pub negative_ttl: Duration,
}

impl ExpiryPolicy {
    pub fn grace(&self) -> Duration {
        self.stale_while_revalidate.max(self.stale_if_error)
    }

    /// The Redis TTL of a present product: jittered TTL plus the grace period.
    pub fn redis_ttl(&self, unit: f64) -> Duration {
        jittered_ttl(self.ttl, self.jitter_percent, unit) + self.grace()
    }

    /// Freshness of a present product from its remaining Redis TTL.
    pub fn classify(&self, remaining: Duration) -> Freshness {
        let grace = self.grace();
        if remaining > grace {
            return Freshness::Fresh;
        }
        let stale_for = grace - remaining;
        if stale_for < self.stale_while_revalidate {
            Freshness::Stale
        } else {
            Freshness::ErrorOnly
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_the_band_and_is_centred() {
        let base = Duration::from_secs(3600);
        assert_eq!(jittered_ttl(base, 10, 0.0), Duration::from_secs(3240));
        assert_eq!(jittered_ttl(base, 10, 0.5), Duration::from_secs(3600));
        assert_eq!(jittered_ttl(base, 10, 1.0), Duration::from_secs(3960));
        assert_eq!(jittered_ttl(base, 0, 0.9), base);
        assert_eq!(
            jittered_ttl(Duration::from_secs(1), 50, 0.0),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn random_unit_is_in_range_and_varies() {
        let samples: Vec<f64> = (0..64).map(|_| random_unit()).collect();
        assert!(samples.iter().all(|u| (0.0..1.0).contains(u)));
        assert!(samples.windows(2).any(|w| w[0] != w[1]));
    }

    fn policy(swr: u64, sie: u64) -> ExpiryPolicy {
        ExpiryPolicy {
            ttl: Duration::from_secs(100),
            jitter_percent: 0,
            stale_while_revalidate: Duration::from_secs(swr),
            stale_if_error: Duration::from_secs(sie),
            negative_ttl: Duration::from_secs(30),
        }
    }

    #[test]
    fn redis_ttl_adds_the_longer_grace_window() {
        assert_eq!(policy(10, 300).redis_ttl(0.5), Duration::from_secs(400));
        assert_eq!(policy(60, 0).redis_ttl(0.5), Duration::from_secs(160));
    }

    #[test]
    fn freshness_follows_the_windows() {
        let p = policy(10, 300);
        // 300 s of grace: the first 10 s past the TTL are stale-while-revalidate.
        assert_eq!(p.classify(Duration::from_secs(350)), Freshness::Fresh);
        assert_eq!(p.classify(Duration::from_secs(301)), Freshness::Fresh);
        assert_eq!(p.classify(Duration::from_secs(295)), Freshness::Stale);
        assert_eq!(p.classify(Duration::from_secs(200)), Freshness::ErrorOnly);
        assert_eq!(p.classify(Duration::ZERO), Freshness::ErrorOnly);
        // No grace at all: an entry is fresh until Redis expires it.
        assert_eq!(
            policy(0, 0).classify(Duration::from_millis(1)),
            Freshness::Fresh
        );
    }
}
