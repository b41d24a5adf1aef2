//! Why a catalog operation failed, in terms a caller can act on. `Clone`, because one
//! database load answers every request that waited for it; the causes are shared, not
//! flattened into text, so the log still shows the whole chain.

use std::{sync::Arc, time::Duration};

use crate::{cache::redis_tier::CacheError, store};

type SharedError = Arc<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum CatalogError {
    /// No product has this id (or the id is remembered as absent).
    #[error("no product has this id")]
    NotFound,
    /// PostgreSQL cannot answer now but may shortly (see [`store::unavailable`]).
    #[error(transparent)]
    DatabaseUnavailable(Arc<sqlx::Error>),
    /// A database load did not finish within its deadline.
    #[error("no answer from PostgreSQL within {0:?}")]
    LoadTimedOut(Duration),
    /// As many loads as `DB_MAX_LOADS` allows are running: this miss starts none.
    #[error("{0} database loads are already running")]
    TooManyLoads(usize),
    /// Redis cannot answer now.
    #[error(transparent)]
    CacheUnavailable(Arc<CacheError>),
    /// A fleet-wide limit (the cache clear's interval) allows the call again after this.
    #[error("allowed again in {0:?}")]
    TooSoon(Duration),
    /// Neither: a fault of ours, or a statement PostgreSQL refused.
    #[error(transparent)]
    Internal(SharedError),
}

impl CatalogError {
    /// Sorts a database error into "not now" and "a fault".
    pub fn from_db(error: sqlx::Error) -> Self {
        if store::unavailable(&error) {
            Self::DatabaseUnavailable(Arc::new(error))
        } else {
            Self::internal(anyhow::Error::new(error).context("database query failed"))
        }
    }

    pub fn internal(error: anyhow::Error) -> Self {
        Self::Internal(SharedError::from(
            Box::<dyn std::error::Error + Send + Sync>::from(error),
        ))
    }

    /// PostgreSQL could not answer in time, or could not be asked: a stale entry may stand in.
    pub fn database_unavailable(&self) -> bool {
        matches!(
            self,
            Self::DatabaseUnavailable(_) | Self::LoadTimedOut(_) | Self::TooManyLoads(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_unavailable_and_others_internal() {
        assert!(CatalogError::from_db(sqlx::Error::PoolTimedOut).database_unavailable());
        assert!(matches!(
            CatalogError::from_db(sqlx::Error::RowNotFound),
            CatalogError::Internal(_)
        ));
    }

    #[test]
    fn the_cause_survives_sharing() {
        let error = CatalogError::from_db(sqlx::Error::RowNotFound);
        let shared = error.clone();
        let chain: Vec<String> =
            std::iter::successors(Some(&shared as &(dyn std::error::Error + 'static)), |e| {
                e.source()
            })
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            chain.first().map(String::as_str),
            Some("database query failed")
        );
        assert!(chain.len() >= 2, "{chain:?}");
    }
}
