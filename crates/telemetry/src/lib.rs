//! Tracing setup shared by the CacheMe binaries.
//!
//! Logs are structured: JSON lines when `LOG_FORMAT=json` (what a cluster's
//! log collector wants), human-readable otherwise. The filter comes from
//! `RUST_LOG` and defaults to `info`. OTLP export is added here later, so both
//! binaries get it by calling [`init`] once.

use tracing_subscriber::{EnvFilter, fmt, layer::SubscriberExt, util::SubscriberInitExt};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable, for a terminal.
    Pretty,
}

impl LogFormat {
    /// Reads `LOG_FORMAT` (`json` or anything else for pretty).
    pub fn from_env() -> Self {
        Self::parse(std::env::var("LOG_FORMAT").ok().as_deref())
    }

    /// Pure parser behind [`LogFormat::from_env`].
    pub fn parse(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            Some(v) if v.eq_ignore_ascii_case("json") => Self::Json,
            _ => Self::Pretty,
        }
    }
}

/// Errors while installing the global subscriber.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid RUST_LOG filter: {0}")]
    Filter(String),
    #[error("a global tracing subscriber is already installed: {0}")]
    AlreadyInstalled(String),
}

/// The filter from `RUST_LOG`, `info` when unset.
pub fn env_filter() -> Result<EnvFilter, TelemetryError> {
    match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => {
            EnvFilter::try_new(&v).map_err(|e| TelemetryError::Filter(format!("{v:?}: {e}")))
        }
        _ => Ok(EnvFilter::new("info")),
    }
}

/// Installs the global subscriber. Call once, early in `main`.
pub fn init(service_name: &str) -> Result<(), TelemetryError> {
    let filter = env_filter()?;
    let registry = tracing_subscriber::registry().with(filter);
    let result = match LogFormat::from_env() {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().with_target(true)).try_init(),
    };
    result.map_err(|e| TelemetryError::AlreadyInstalled(e.to_string()))?;
    tracing::debug!(service = service_name, "telemetry initialised");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_format_is_json_only_when_asked() {
        assert_eq!(LogFormat::parse(Some("json")), LogFormat::Json);
        assert_eq!(LogFormat::parse(Some(" JSON ")), LogFormat::Json);
        assert_eq!(LogFormat::parse(Some("pretty")), LogFormat::Pretty);
        assert_eq!(LogFormat::parse(None), LogFormat::Pretty);
    }
}
