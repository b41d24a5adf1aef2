//! A circuit breaker for Redis: after enough consecutive failures, stop calling it for a
//! cool-down, then let one probe through. A down or frozen Redis then costs a request at
//! most one timeout instead of one per request.
//!
//! "Consecutive" spans time as well as count: the failures must also have gone on, with no
//! success between them, for `failing_for`. One slow reply on the shared connection (a
//! `fork` for an RDB save, another tenant's slow command) fails every call in flight at
//! once; counting alone opened the breaker on that blip and sent every replica's reads to
//! PostgreSQL for the cool-down (A4 of the second consistency review).
//!
//! The probe must never get lost: a probe whose caller is cancelled (its client gave up)
//! never reports back, so [`Probe`] reports a failure when dropped unreported, and a probe
//! out for longer than `probe_patience` is presumed lost and another one is allowed.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

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
    /// `since`: the first failure of the current run (none while calls succeed).
    Closed {
        failures: u32,
        since: Option<Instant>,
    },
    Open {
        until: Instant,
    },
    HalfOpen {
        probe_since: Option<Instant>,
    },
}

/// A call the breaker let through.
#[derive(Debug)]
pub enum Call<'a> {
    /// The breaker is closed: report failures with [`CircuitBreaker::record_failure`].
    Plain,
    /// The one probe after the cool-down.
    Probe(Probe<'a>),
}

/// When a run of failures opens the breaker: at least `failures` of them, spread over at
/// least `failing_for` with no success between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub failures: u32,
    pub failing_for: Duration,
}

/// How to make a breaker: one for a single Redis, one per master of a cluster.
#[derive(Debug, Clone, Copy)]
pub struct BreakerSettings {
    pub thresholds: Thresholds,
    pub cooldown: Duration,
    pub probe_patience: Duration,
}

impl BreakerSettings {
    pub fn build(self) -> CircuitBreaker {
        CircuitBreaker::new(self.thresholds, self.cooldown, self.probe_patience)
    }
}

#[derive(Debug)]
pub struct CircuitBreaker {
    inner: Mutex<Inner>,
    failure_threshold: u32,
    /// How long failures must have gone on, with no success between, before it opens.
    failing_for: Duration,
    cooldown: Duration,
    /// How long a probe may be out before another one is allowed (a lost probe must not
    /// keep Redis switched off).
    probe_patience: Duration,
}

/// What [`CircuitBreaker::allow`] grants: a plain call, or the one probe after the cool-down.
/// A probe dropped without [`Probe::succeeded`] or [`Probe::failed`] counts as failed, so
/// a cancelled probe reopens the breaker instead of leaving it half-open for good.
#[derive(Debug)]
#[must_use = "report the call's outcome"]
pub struct Probe<'a> {
    breaker: &'a CircuitBreaker,
    reported: bool,
}

impl Probe<'_> {
    pub fn succeeded(mut self) {
        self.reported = true;
        self.breaker.record_success();
    }

    pub fn failed(mut self, now: Instant) {
        self.reported = true;
        self.breaker.record_failure(now);
    }
}

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.breaker.record_failure(Instant::now());
        }
    }
}

impl CircuitBreaker {
    /// `probe_patience`: how long one probe may be out before it is presumed lost.
    pub fn new(thresholds: Thresholds, cooldown: Duration, probe_patience: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner::Closed {
                failures: 0,
                since: None,
            }),
            failure_threshold: thresholds.failures.max(1),
            failing_for: thresholds.failing_for,
            cooldown,
            probe_patience,
        }
    }

    /// Whether a call may go to Redis now: `None` when it may not, else a [`Call`] whose
    /// outcome must be reported.
    pub fn allow(&self, now: Instant) -> Option<Call<'_>> {
        let mut inner = self.inner.lock();
        let probe = match *inner {
            Inner::Closed { .. } => return Some(Call::Plain),
            Inner::Open { until } if now >= until => true,
            Inner::Open { .. } => false,
            Inner::HalfOpen { probe_since: None } => true,
            Inner::HalfOpen {
                probe_since: Some(since),
            } => now.saturating_duration_since(since) >= self.probe_patience,
        };
        if !probe {
            return None;
        }
        *inner = Inner::HalfOpen {
            probe_since: Some(now),
        };
        Some(Call::Probe(Probe {
            breaker: self,
            reported: false,
        }))
    }

    pub fn record_success(&self) {
        *self.inner.lock() = Inner::Closed {
            failures: 0,
            since: None,
        };
    }

    pub fn record_failure(&self, now: Instant) {
        let mut inner = self.inner.lock();
        let (failures, since) = match *inner {
            Inner::Closed { failures, since } => (failures + 1, since.unwrap_or(now)),
            // A failed probe: the outage goes on.
            Inner::Open { .. } | Inner::HalfOpen { .. } => (self.failure_threshold, now),
        };
        let failing = now.saturating_duration_since(since);
        let probe_failed = !matches!(*inner, Inner::Closed { .. });
        *inner = if probe_failed
            || (failures >= self.failure_threshold && failing >= self.failing_for)
        {
            Inner::Open {
                until: now + self.cooldown,
            }
        } else {
            Inner::Closed {
                failures,
                since: Some(since),
            }
        };
    }

    pub fn state(&self, now: Instant) -> BreakerState {
        match *self.inner.lock() {
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

    const PATIENCE: Duration = Duration::from_secs(10);

    /// Counting only.
    fn count(failures: u32) -> Thresholds {
        Thresholds {
            failures,
            failing_for: Duration::ZERO,
        }
    }

    #[test]
    fn a_burst_of_failures_shorter_than_failing_for_keeps_it_closed() {
        let breaker = CircuitBreaker::new(
            Thresholds {
                failures: 1,
                failing_for: Duration::from_millis(500),
            },
            Duration::from_secs(1),
            PATIENCE,
        );
        let t0 = Instant::now();
        // One stall fails the 40 calls in flight within 100 ms...
        for i in 0..40 {
            breaker.record_failure(t0 + Duration::from_millis(i * 2));
        }
        assert_eq!(breaker.state(t0), BreakerState::Closed);
        // ...and the next call succeeds: the run is over.
        breaker.record_success();
        breaker.record_failure(t0 + Duration::from_millis(600));
        assert_eq!(breaker.state(t0), BreakerState::Closed);
        // Failures that go on for the whole span open it.
        breaker.record_failure(t0 + Duration::from_millis(1100));
        assert_eq!(
            breaker.state(t0 + Duration::from_millis(1100)),
            BreakerState::Open
        );
        // A failed probe reopens at once, whatever the span.
        let later = t0 + Duration::from_millis(2100);
        report(breaker.allow(later), false, later, &breaker);
        assert_eq!(breaker.state(later), BreakerState::Open);
    }

    fn report(call: Option<Call<'_>>, ok: bool, now: Instant, breaker: &CircuitBreaker) {
        match call {
            Some(Call::Probe(probe)) if ok => probe.succeeded(),
            Some(Call::Probe(probe)) => probe.failed(now),
            Some(Call::Plain) if ok => breaker.record_success(),
            Some(Call::Plain) => breaker.record_failure(now),
            None => panic!("the call was not allowed"),
        }
    }

    #[test]
    fn opens_after_the_threshold_and_probes_once_after_the_cooldown() {
        let breaker = CircuitBreaker::new(count(2), Duration::from_secs(1), PATIENCE);
        let t0 = Instant::now();
        report(breaker.allow(t0), false, t0, &breaker);
        assert_eq!(breaker.state(t0), BreakerState::Closed);
        report(breaker.allow(t0), false, t0, &breaker);
        assert_eq!(breaker.state(t0), BreakerState::Open);
        assert!(breaker.allow(t0 + Duration::from_millis(500)).is_none());

        let later = t0 + Duration::from_secs(1);
        let probe = breaker.allow(later);
        assert!(
            matches!(probe, Some(Call::Probe(_))),
            "the first call after the cool-down probes"
        );
        assert!(breaker.allow(later).is_none(), "only one probe at a time");
        report(probe, false, later, &breaker);
        assert_eq!(
            breaker.state(later),
            BreakerState::Open,
            "a failed probe reopens at once"
        );

        let again = later + Duration::from_secs(1);
        report(breaker.allow(again), true, again, &breaker);
        assert_eq!(breaker.state(again), BreakerState::Closed);
        assert!(matches!(breaker.allow(again), Some(Call::Plain)));
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let breaker = CircuitBreaker::new(count(2), Duration::from_secs(1), PATIENCE);
        let t0 = Instant::now();
        breaker.record_failure(t0);
        breaker.record_success();
        breaker.record_failure(t0);
        assert_eq!(breaker.state(t0), BreakerState::Closed);
    }

    #[test]
    fn a_probe_dropped_unreported_reopens_the_breaker() {
        let breaker = CircuitBreaker::new(count(1), Duration::from_secs(1), PATIENCE);
        let t0 = Instant::now();
        breaker.record_failure(t0);
        let t1 = t0 + Duration::from_secs(1);
        let probe = breaker.allow(t1);
        assert!(matches!(probe, Some(Call::Probe(_))));
        // Its request was cancelled: the probe is dropped without an outcome.
        drop(probe);
        assert_eq!(breaker.state(Instant::now()), BreakerState::Open);
        let t2 = Instant::now() + Duration::from_secs(2);
        assert!(
            matches!(breaker.allow(t2), Some(Call::Probe(_))),
            "after the cool-down a new probe goes out"
        );
    }

    #[test]
    fn a_probe_out_longer_than_the_patience_is_presumed_lost() {
        let breaker = CircuitBreaker::new(count(1), Duration::from_secs(1), Duration::from_secs(2));
        let t0 = Instant::now();
        breaker.record_failure(t0);
        let t1 = t0 + Duration::from_secs(1);
        let stuck = breaker.allow(t1);
        assert!(matches!(stuck, Some(Call::Probe(_))));
        assert!(breaker.allow(t1 + Duration::from_secs(1)).is_none());
        assert!(
            matches!(
                breaker.allow(t1 + Duration::from_secs(2)),
                Some(Call::Probe(_))
            ),
            "a second probe once the first has been out for the patience"
        );
        std::mem::forget(stuck);
    }
}
