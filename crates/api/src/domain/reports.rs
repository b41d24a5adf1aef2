//! What the operations endpoints ask of the catalog (health, readiness, statistics, one
//! entry, the metrics' gauges), answered as plain structs: the routes only serialise
//! them, and reach no tier themselves (issue #23, step 2).

use super::Catalog;
pub use crate::cache::{
    breaker::BreakerState,
    redis_tier::admin::{EntryInfo, Info, NodeHealth, NodeStatus},
};
use crate::{
    cache::redis_tier::CacheError,
    observability::{metrics::Gauges, stats::AppStats},
};

/// `/health`: both stores checked now.
#[derive(Debug)]
pub struct HealthReport {
    pub database_ok: bool,
    /// The single Redis answers, or every master of a cluster does.
    pub redis_ok: bool,
    pub redis_breaker: BreakerState,
    /// A cluster's masters, each up or down (`None` for a single Redis).
    pub redis_nodes: Option<Vec<NodeHealth>>,
    pub memory_tier_active: bool,
}

/// `/readyz`: which store answers.
#[derive(Debug)]
pub struct ReadinessReport {
    pub database: Result<(), sqlx::Error>,
    pub redis_ok: bool,
}

/// `/cache/stats`.
#[derive(Debug)]
pub struct StatsReport {
    /// Redis `INFO` (shared by the callers of one second).
    pub info: Result<Info, CacheError>,
    /// A cluster's masters (`None` for a single Redis, or when they could not be asked).
    pub redis_nodes: Option<Vec<NodeHealth>>,
    pub counters: AppStats,
    pub memory: MemoryReport,
    pub breaker: BreakerState,
    pub pending_invalidations: usize,
    pub loads_in_flight: usize,
    pub loads_running: usize,
    pub refreshes_running: usize,
}

/// The in-process tier.
#[derive(Debug, Clone, Copy)]
pub struct MemoryReport {
    pub enabled: bool,
    /// Enabled, and its invalidation channel up and vouched for.
    pub active: bool,
    pub entries: u64,
}

impl Catalog {
    /// Checks PostgreSQL and Redis now (logging what fails).
    pub async fn health(&self) -> HealthReport {
        let (db, nodes) = tokio::join!(self.db.ping(), self.redis.node_health());
        if let Err(e) = &db {
            tracing::warn!(error = %e, "health: PostgreSQL check failed");
        }
        let redis_ok = match &nodes {
            Ok(None) => true,
            Ok(Some(nodes)) => {
                for down in nodes.iter().filter(|n| n.status != NodeStatus::Up) {
                    tracing::warn!(node = %down.node, error = ?down.error, "health: Redis Cluster master down");
                }
                !nodes.is_empty() && nodes.iter().all(|n| n.status == NodeStatus::Up)
            }
            Err(e) => {
                tracing::warn!(error = %e, "health: Redis check failed");
                false
            }
        };
        HealthReport {
            database_ok: db.is_ok(),
            redis_ok,
            redis_breaker: self.redis.breaker_state(),
            redis_nodes: nodes.ok().flatten(),
            memory_tier_active: self.memory.active(),
        }
    }

    /// Pings both stores.
    pub async fn readiness(&self) -> ReadinessReport {
        let (database, redis) = tokio::join!(self.db.ping(), self.redis.ping());
        ReadinessReport {
            database,
            redis_ok: redis.is_ok(),
        }
    }

    pub async fn stats(&self) -> StatsReport {
        let (info, nodes) = tokio::join!(self.redis.info(), self.redis.node_health());
        StatsReport {
            info,
            redis_nodes: nodes.ok().flatten(),
            counters: self.counters.snapshot(),
            memory: self.memory_report().await,
            breaker: self.redis.breaker_state(),
            pending_invalidations: self.pending_invalidations(),
            loads_in_flight: self.flights_in_progress(),
            loads_running: self.loads_running(),
            refreshes_running: self.refreshes_running(),
        }
    }

    async fn memory_report(&self) -> MemoryReport {
        MemoryReport {
            enabled: self.memory.enabled(),
            active: self.memory.active(),
            entries: self.memory.entry_count().await,
        }
    }

    /// What Redis holds for one product.
    pub async fn entry(&self, id: i32) -> Result<EntryInfo, CacheError> {
        self.redis.entry(id).await
    }

    /// The gauges `/metrics` reports beside its counters.
    pub async fn gauges(&self) -> Gauges {
        Gauges {
            memory_entries: self.memory.entry_count().await,
            breaker_open: self.redis.breaker_state() == BreakerState::Open,
            pending_invalidations: u64::try_from(self.pending_invalidations()).unwrap_or(u64::MAX),
        }
    }
}
