//! The head sampler: whether a request is traced at all, decided before any span exists.
//!
//! Building spans costs even when nothing collects them (the OpenTelemetry layer gives
//! every span an id, a start time and attributes): on cache hits it was 45 % of the
//! time. So the decision comes first, from `OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG`
//! and the caller's `traceparent`, and an unsampled request builds no span at all.
//! Without an OTLP endpoint nothing is sampled.
//!
//! One deliberate departure from the OpenTelemetry specification: `traceidratio` draws
//! its number per request instead of reading it from the trace id. The trace id comes
//! from the caller, so deriving the decision from it would let any client choose its
//! way into the sample (and flood the collector); an edge service gains nothing from
//! the cross-service consistency that rule buys.

use std::{fmt, sync::OnceLock};

/// Which requests are traced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadSampler {
    /// Share of requests sampled when the caller's decision is not followed, 0.0..=1.0.
    ratio: f64,
    /// Follow a caller's `traceparent` sampled flag when there is one (`parentbased_*`).
    follow_parent: bool,
}

/// A sampler setting that is not one of the supported ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SamplerError(String);

impl HeadSampler {
    /// Samples nothing: what runs when no OTLP endpoint is set.
    pub const NEVER: Self = Self {
        ratio: 0.0,
        follow_parent: false,
    };

    /// The OpenTelemetry default, `parentbased_always_on`.
    pub const DEFAULT: Self = Self {
        ratio: 1.0,
        follow_parent: true,
    };

    /// Reads `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`.
    pub fn from_env() -> Result<Self, SamplerError> {
        Self::parse(
            std::env::var("OTEL_TRACES_SAMPLER").ok().as_deref(),
            std::env::var("OTEL_TRACES_SAMPLER_ARG").ok().as_deref(),
        )
    }

    /// The pure parser behind [`HeadSampler::from_env`]: the samplers of the
    /// OpenTelemetry environment specification that need no remote service.
    pub fn parse(sampler: Option<&str>, arg: Option<&str>) -> Result<Self, SamplerError> {
        let ratio = || -> Result<f64, SamplerError> {
            let Some(arg) = arg.map(str::trim).filter(|a| !a.is_empty()) else {
                return Ok(1.0);
            };
            match arg.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(SamplerError(format!(
                    "OTEL_TRACES_SAMPLER_ARG={arg:?} is not a ratio between 0 and 1"
                ))),
            }
        };
        let name = sampler.map(str::trim).unwrap_or_default();
        let (ratio, follow_parent) = match name.to_ascii_lowercase().as_str() {
            "" | "parentbased_always_on" => (1.0, true),
            "always_on" => (1.0, false),
            "always_off" => (0.0, false),
            "parentbased_always_off" => (0.0, true),
            "traceidratio" => (ratio()?, false),
            "parentbased_traceidratio" => (ratio()?, true),
            _ => {
                return Err(SamplerError(format!(
                    "OTEL_TRACES_SAMPLER={name:?} is not supported; use always_on, always_off, \
                     traceidratio, parentbased_always_on, parentbased_always_off or \
                     parentbased_traceidratio"
                )));
            }
        };
        Ok(Self {
            ratio,
            follow_parent,
        })
    }

    /// Whether to trace a request with this caller context; `draw` is a uniform random
    /// `u64`, asked for only when the ratio decides.
    pub fn sample(&self, parent: Option<&RemoteParent>, draw: impl FnOnce() -> u64) -> bool {
        if let Some(parent) = parent.filter(|_| self.follow_parent) {
            return parent.sampled;
        }
        if self.ratio >= 1.0 {
            return true;
        }
        if self.ratio <= 0.0 {
            return false;
        }
        // The specification's comparison: 63 random bits against ratio × 2^63.
        let bound = (self.ratio * (1u64 << 63) as f64) as u64;
        (draw() >> 1) < bound
    }

    /// Whether any request can be sampled at all.
    pub fn samples_anything(&self) -> bool {
        self.ratio > 0.0 || self.follow_parent
    }
}

impl fmt::Display for HeadSampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = if self.follow_parent {
            "parentbased_"
        } else {
            ""
        };
        write!(f, "{prefix}traceidratio {}", self.ratio)
    }
}

static SAMPLER: OnceLock<HeadSampler> = OnceLock::new();

/// Installs the process's sampler; the first call wins. [`crate::init_for_requests`]
/// calls it.
pub fn install(sampler: HeadSampler) {
    let _ = SAMPLER.set(sampler);
}

/// The process's sampler: [`HeadSampler::NEVER`] until one is installed (as in tests
/// that build the app in-process).
pub fn installed_sampler() -> HeadSampler {
    SAMPLER.get().copied().unwrap_or(HeadSampler::NEVER)
}

impl HeadSampler {
    /// Whether to trace a request with this caller context, drawing from a fast
    /// thread-local generator when the ratio decides.
    pub fn sample_request(&self, parent: Option<&RemoteParent>) -> bool {
        self.sample(parent, || fastrand::u64(..))
    }
}

/// The caller's trace context, from a W3C `traceparent` header, parsed without
/// allocating: enough to decide sampling and name the caller's trace in a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteParent {
    trace_id: u128,
    span_id: u64,
    sampled: bool,
}

impl RemoteParent {
    /// Parses a `traceparent` value (W3C Trace Context level 1: version, trace id,
    /// parent id, flags; a later version may append fields). `None` when invalid.
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim();
        let bytes = header.as_bytes();
        // ASCII first: the slicing below is by byte.
        if !header.is_ascii() || bytes.len() < 55 || [2, 35, 52].iter().any(|&i| bytes[i] != b'-') {
            return None;
        }
        let version = hex_u8(&header[0..2])?;
        if version == 0xff || (version == 0 && bytes.len() != 55) {
            return None;
        }
        if version > 0 && bytes.len() > 55 && bytes[55] != b'-' {
            return None;
        }
        let trace_id = lower_hex(&header[3..35]).and_then(|t| u128::from_str_radix(t, 16).ok())?;
        let span_id = lower_hex(&header[36..52]).and_then(|t| u64::from_str_radix(t, 16).ok())?;
        let flags = hex_u8(&header[53..55])?;
        (trace_id != 0 && span_id != 0).then_some(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// The caller's trace id as 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// Whether the caller sampled its trace.
    pub fn sampled(&self) -> bool {
        self.sampled
    }
}

/// `text` when it is lowercase hex digits only (the W3C format allows no other; the
/// integer parsers alone would accept a sign and capitals).
fn lower_hex(text: &str) -> Option<&str> {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        .then_some(text)
}

fn hex_u8(text: &str) -> Option<u8> {
    lower_hex(text).and_then(|t| u8::from_str_radix(t, 16).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn parent(sampled: bool) -> RemoteParent {
        let flags = if sampled { "01" } else { "00" };
        RemoteParent::parse(&CALLER.replace("-01", &format!("-{flags}"))).expect("valid")
    }

    #[test]
    fn traceparent_headers_parse_by_the_w3c_rules() {
        let p = RemoteParent::parse(CALLER).expect("valid");
        assert_eq!(p.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(p.span_id, 0x00f0_67aa_0ba9_02b7);
        assert!(p.sampled());
        assert!(!parent(false).sampled());
        // A later version may carry more fields; version 00 may not.
        let future = format!("{}-extra", CALLER.replacen("00", "01", 1));
        assert!(RemoteParent::parse(&future).is_some());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            &format!("{CALLER}-extra"),
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            "0é-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(RemoteParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sampler_settings_parse_and_bad_ones_are_refused() {
        let parse = |s: Option<&str>, a: Option<&str>| HeadSampler::parse(s, a);
        assert_eq!(parse(None, None), Ok(HeadSampler::DEFAULT));
        assert_eq!(
            parse(Some("parentbased_traceidratio"), Some("0.01")),
            Ok(HeadSampler {
                ratio: 0.01,
                follow_parent: true
            })
        );
        assert_eq!(
            parse(Some("traceidratio"), None),
            Ok(HeadSampler {
                ratio: 1.0,
                follow_parent: false
            })
        );
        assert!(
            !parse(Some("always_off"), None)
                .expect("ok")
                .samples_anything()
        );
        assert!(
            parse(Some("parentbased_always_off"), None)
                .expect("ok")
                .samples_anything()
        );
        for (s, a) in [
            (Some("jaeger_remote"), None),
            (Some("traceidratio"), Some("1.5")),
            (Some("traceidratio"), Some("-0.1")),
            (Some("traceidratio"), Some("ten percent")),
        ] {
            let e = parse(s, a).expect_err("refused");
            assert!(e.to_string().contains("OTEL_TRACES_SAMPLER"), "{e}");
        }
    }

    #[test]
    fn parent_based_samplers_follow_the_caller_and_others_do_not() {
        let parent_based =
            HeadSampler::parse(Some("parentbased_traceidratio"), Some("0")).expect("ok");
        assert!(parent_based.sample(Some(&parent(true)), || 0));
        assert!(!parent_based.sample(Some(&parent(false)), || 0));
        assert!(!parent_based.sample(None, || 0));

        // At the edge a caller's sampled flag must not force a trace (S5).
        let edge = HeadSampler::parse(Some("traceidratio"), Some("0")).expect("ok");
        assert!(!edge.sample(Some(&parent(true)), || 0));
        let all = HeadSampler::parse(Some("traceidratio"), Some("1")).expect("ok");
        assert!(all.sample(Some(&parent(false)), || u64::MAX));
        assert!(!HeadSampler::NEVER.sample(Some(&parent(true)), || 0));
    }

    #[test]
    fn a_ratio_samples_that_share_of_draws() {
        let sampler = HeadSampler::parse(Some("traceidratio"), Some("0.01")).expect("ok");
        assert!(sampler.sample(None, || 0));
        assert!(!sampler.sample(None, || u64::MAX));
        let mut rng = fastrand::Rng::with_seed(7);
        let sampled = (0..100_000)
            .filter(|_| sampler.sample(None, || rng.u64(..)))
            .count();
        assert!((800..1200).contains(&sampled), "{sampled} of 100 000");
    }

    #[test]
    fn with_no_sampler_installed_nothing_is_sampled() {
        // SAMPLER is never installed in this test binary.
        let sampler = installed_sampler();
        assert!(!sampler.sample_request(Some(&parent(true))));
        assert!(!sampler.sample_request(None));
    }
}
