//! A circuit breaker for Redis: after enough consecutive failures, stop calling it for a
//! cool-down, then let one probe through. A down or frozen Redis then costs a request at
//! most one timeout instead of one per request.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are skipped until the cool-down ends.
    Open,
    /// One probe call is allowed; its outcome closes or reopens the breaker.
    HalfOpen,
}

#[derive(Debug)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug)]
pub struct CircuitBreaker {
    inner: Mutex<Inner>,
    failure_threshold: u32,
    cooldown: Duration,
}

impl CircuitBreaker {
    pub fn new(failure_threshold: u32, cooldown: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner::Closed { failures: 0 }),
            failure_threshold: failure_threshold.max(1),
            cooldown,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave Inner half-updated (every
        // update is a single assignment), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a call may go to Redis now.
    pub fn allow(&self, now: Instant) -> bool {
        let mut inner = self.lock();
        match *inner {
            Inner::Closed { .. } => true,
            Inner::Open { until } if now >= until => {
                *inner = Inner::HalfOpen { probing: true };
                true
            }
            Inner::Open { .. } => false,
            Inner::HalfOpen { probing: true } => false,
            Inner::HalfOpen { probing: false } => {
                *inner = Inner::HalfOpen { probing: true };
                true
            }
        }
    }

    pub fn record_success(&self) {
        *self.lock() = Inner::Closed { failures: 0 };
    }

    pub fn record_failure(&self, now: Instant) {
        let mut inner = self.lock();
        let failures = match *inner {
            Inner::Closed { failures } => failures + 1,
            Inner::Open { .. } | Inner::HalfOpen { .. } => self.failure_threshold,
        };
        *inner = if failures >= self.failure_threshold {
            Inner::Open {
                until: now + self.cooldown,
            }
        } else {
            Inner::Closed { failures }
        };
    }

    pub fn state(&self, now: Instant) -> BreakerState {
        match *self.lock() {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if now >= until => BreakerState::HalfOpen,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_probes_once_after_the_cooldown() {
        let breaker = CircuitBreaker::new(2, Duration::from_secs(1));
        let t0 = Instant::now();
        assert!(breaker.allow(t0));
        breaker.record_failure(t0);
        assert_eq!(breaker.state(t0), BreakerState::Closed);
        breaker.record_failure(t0);
        assert_eq!(breaker.state(t0), BreakerState::Open);
        assert!(!breaker.allow(t0 + Duration::from_millis(500)));

        let later = t0 + Duration::from_secs(1);
        assert!(
            breaker.allow(later),
            "the first call after the cool-down probes"
        );
        assert!(!breaker.allow(later), "only one probe at a time");
        breaker.record_failure(later);
        assert_eq!(
            breaker.state(later),
            BreakerState::Open,
            "a failed probe reopens at once"
        );

        let again = later + Duration::from_secs(1);
        assert!(breaker.allow(again));
        breaker.record_success();
        assert_eq!(breaker.state(again), BreakerState::Closed);
        assert!(breaker.allow(again) && breaker.allow(again));
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let breaker = CircuitBreaker::new(2, Duration::from_secs(1));
        let t0 = Instant::now();
        breaker.record_failure(t0);
        breaker.record_success();
        breaker.record_failure(t0);
        assert_eq!(breaker.state(t0), BreakerState::Closed);
    }
}
