//! Why a cache call did not complete, and which failures count as Redis being out.

use std::time::Duration;

/// Server errors that mean Redis cannot serve now (loading its data, blocked by a script,
/// out of memory, a read-only replica after a failover, ...): outages for the breaker.
/// Not `TRYAGAIN`: a cluster answers it while a slot migrates, for that slot only, and
/// counting it would switch off the whole master for the migration.
const OUTAGE_CODES: &[&str] = &[
    "LOADING",
    "BUSY",
    "OOM",
    "READONLY",
    "MASTERDOWN",
    "CLUSTERDOWN",
    "NOREPLICAS",
];

/// Whether `e` says Redis is unreachable or cannot serve now (as opposed to, say, a
/// script error, which retrying elsewhere would not fix).
pub(super) fn is_outage(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.code().is_some_and(|code| OUTAGE_CODES.contains(&code))
}

/// Why a cache call did not complete.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("redis call timed out after {0:?}")]
    Timeout(Duration),
    #[error("redis skipped: circuit breaker open")]
    BreakerOpen,
    #[error("redis skipped: the connection changed while the lookup was in flight")]
    Unverified,
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis cluster node {node} is down: {error}")]
    NodeDown { node: String, error: String },
    #[error("no replica acknowledged the invalidation in time")]
    NotReplicated,
    #[error("unexpected redis reply: {0}")]
    Reply(#[from] redis::ParsingError),
    /// A shared read failed a moment ago (see `admin::RecentInfo`); its cause.
    #[error("{0} (a moment ago)")]
    Recent(String),
}

impl CacheError {
    /// What kind of failure this is, without its cause (for public answers).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::BreakerOpen | Self::Unverified => "breaker open",
            Self::Redis(e) if e.is_io_error() || e.is_connection_dropped() => "unreachable",
            Self::NodeDown { .. } => "unreachable",
            Self::Redis(_) | Self::NotReplicated | Self::Reply(_) | Self::Recent(_) => {
                "server error"
            }
        }
    }
}

/// `call` within `limit`: a call that takes longer fails as a timeout.
pub async fn bounded<T>(
    limit: Duration,
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, CacheError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result.map_err(CacheError::from),
        Err(_) => Err(CacheError::Timeout(limit)),
    }
}

/// Like [`bounded`], for a call made of several steps.
pub async fn within<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, CacheError>>,
) -> Result<T, CacheError> {
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or(Err(CacheError::Timeout(limit)))
}
