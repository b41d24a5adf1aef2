//! The Redis tier (L2) of the product cache: key naming, TTLs, bounded calls.
//!
//! Every Redis call is bounded by `REDIS_TIMEOUT_MS`: a slow or dead Redis
//! costs a request at most that long, after which it is served from
//! PostgreSQL. The connection manager reconnects by itself.

use std::{
    collections::BTreeMap,
    hash::{BuildHasher, Hasher},
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use redis::{
    AsyncCommands, Client,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::Product;

/// Version of the cached value's shape; bump it when `Product` changes so old entries are ignored.
pub const SCHEMA_VERSION: &str = "v1";

/// Keys per SCAN page and per UNLINK batch when clearing.
const CLEAR_BATCH: usize = 500;

/// Administrative calls (clear, INFO) may scan many keys, so they get more time than a lookup.
const ADMIN_TIMEOUT_FLOOR: Duration = Duration::from_secs(5);

/// Names this service's keys. Pure, so the naming is tested without Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyScheme {
    prefix: String,
}

impl KeyScheme {
    /// `prefix` must already be validated (no glob characters): see `CACHE_KEY_PREFIX`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// `cacheme:v1:product:42`
    pub fn product(&self, id: i32) -> String {
        format!("{}:{SCHEMA_VERSION}:product:{id}", self.prefix)
    }

    /// Matches every key this service owns, of every schema version.
    pub fn all_keys_pattern(&self) -> String {
        format!("{}:*", self.prefix)
    }
}

/// `base` spread uniformly by ± `percent`, picked by `unit` in [0, 1). Never below 1 s.
pub fn jittered_ttl(base: Duration, percent: u8, unit: f64) -> Duration {
    let base_secs = base.as_secs_f64();
    let spread = base_secs * f64::from(percent) / 100.0;
    let unit = unit.clamp(0.0, 1.0);
    let secs = base_secs - spread + 2.0 * spread * unit;
    Duration::from_secs(secs.round().max(1.0) as u64)
}

/// A uniform value in [0, 1) from the standard library's per-process random keys.
fn random_unit() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default(),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Why a cache call did not complete.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("redis call timed out after {0:?}")]
    Timeout(Duration),
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Counters kept by this process (Redis's own counters are server-wide).
#[derive(Debug, Default)]
pub struct CacheCounters {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
}

/// A snapshot of [`CacheCounters`] for `GET /cache/stats`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct TierStats {
    pub hits: u64,
    pub misses: u64,
    /// Calls that failed or timed out (counted as misses too: the request went to PostgreSQL).
    pub errors: u64,
    /// hits / (hits + misses) × 100, rounded to two decimals; 0 before any lookup.
    pub hit_rate: f64,
}

/// hits / (hits + misses) as a percentage with two decimals.
pub fn hit_rate_percent(hits: u64, misses: u64) -> f64 {
    let total = hits + misses;
    if total == 0 {
        return 0.0;
    }
    (hits as f64 * 10_000.0 / total as f64).round() / 100.0
}

impl CacheCounters {
    pub fn snapshot(&self) -> TierStats {
        let hits = self.hits.load(Ordering::Relaxed);
        let misses = self.misses.load(Ordering::Relaxed);
        TierStats {
            hits,
            misses,
            errors: self.errors.load(Ordering::Relaxed),
            hit_rate: hit_rate_percent(hits, misses),
        }
    }
}

/// The Redis product cache.
#[derive(Debug, Clone)]
pub struct RedisCache {
    conn: ConnectionManager,
    keys: KeyScheme,
    ttl: Duration,
    jitter_percent: u8,
    timeout: Duration,
    counters: std::sync::Arc<CacheCounters>,
}

/// How the Redis cache is set up.
#[derive(Debug, Clone)]
pub struct RedisCacheSettings {
    pub url: String,
    pub key_prefix: String,
    pub ttl: Duration,
    pub jitter_percent: u8,
    pub timeout: Duration,
}

impl RedisCache {
    /// Does not connect: the first call does, so the service starts while Redis is down.
    pub fn new(settings: RedisCacheSettings) -> Result<Self, redis::RedisError> {
        let client = Client::open(settings.url.as_str())?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout.max(Duration::from_millis(250))))
            .set_response_timeout(Some(settings.timeout.max(ADMIN_TIMEOUT_FLOOR)))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client, manager_config)?;
        Ok(Self {
            conn,
            keys: KeyScheme::new(settings.key_prefix),
            ttl: settings.ttl,
            jitter_percent: settings.jitter_percent,
            timeout: settings.timeout,
            counters: Default::default(),
        })
    }

    pub fn keys(&self) -> &KeyScheme {
        &self.keys
    }

    pub fn stats(&self) -> TierStats {
        self.counters.snapshot()
    }

    async fn bounded<T>(
        &self,
        limit: Duration,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, CacheError> {
        match tokio::time::timeout(limit, call).await {
            Ok(result) => result.map_err(CacheError::from),
            Err(_) => Err(CacheError::Timeout(limit)),
        }
    }

    fn admin_timeout(&self) -> Duration {
        self.timeout.max(ADMIN_TIMEOUT_FLOOR)
    }

    /// Looks a product up. A value that no longer decodes is dropped and counts as a miss.
    #[tracing::instrument(name = "cache.redis.get", skip(self), fields(cache.tier = "redis", cache.hit))]
    pub async fn get_product(&self, id: i32) -> Result<Option<Product>, CacheError> {
        let key = self.keys.product(id);
        let mut conn = self.conn.clone();
        let raw: Result<Option<String>, _> = self.bounded(self.timeout, conn.get(&key)).await;
        let product = match raw {
            Ok(Some(json)) => match serde_json::from_str::<Product>(&json) {
                Ok(product) => Some(product),
                Err(e) => {
                    tracing::warn!(%key, error = %e, "dropping undecodable cache entry");
                    let _: Result<(), _> = self.bounded(self.timeout, conn.unlink(&key)).await;
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                self.counters.misses.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        let counter = if product.is_some() {
            &self.counters.hits
        } else {
            &self.counters.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::Span::current().record("cache.hit", product.is_some());
        Ok(product)
    }

    /// Stores a product with the configured TTL, jittered.
    #[tracing::instrument(name = "cache.redis.set", skip(self, product), fields(cache.tier = "redis", product.id = product.id))]
    pub async fn put_product(&self, product: &Product) -> Result<(), CacheError> {
        let key = self.keys.product(product.id);
        let json = serde_json::to_string(product).map_err(|e| {
            CacheError::Redis(redis::RedisError::from((
                redis::ErrorKind::Client,
                "cannot encode product",
                e.to_string(),
            )))
        })?;
        let ttl = jittered_ttl(self.ttl, self.jitter_percent, random_unit());
        let mut conn = self.conn.clone();
        let result = self
            .bounded(
                self.timeout,
                conn.set_ex::<_, _, ()>(&key, json, ttl.as_secs()),
            )
            .await;
        if result.is_err() {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Removes every key under this service's prefix (SCAN + UNLINK; never KEYS or FLUSHALL).
    pub async fn clear(&self) -> Result<u64, CacheError> {
        let pattern = self.keys.all_keys_pattern();
        let mut conn = self.conn.clone();
        let work = async move {
            let mut cursor: u64 = 0;
            let mut cleared: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(CLEAR_BATCH)
                    .query_async(&mut conn)
                    .await?;
                for batch in keys.chunks(CLEAR_BATCH) {
                    let removed: u64 = conn.unlink(batch).await?;
                    cleared += removed;
                }
                if next == 0 {
                    return Ok(cleared);
                }
                cursor = next;
            }
        };
        self.bounded(self.admin_timeout(), work).await
    }

    /// The server's `INFO` fields, name → value.
    pub async fn info(&self) -> Result<BTreeMap<String, String>, CacheError> {
        let mut conn = self.conn.clone();
        let text: String = self
            .bounded(
                self.admin_timeout(),
                redis::cmd("INFO").query_async(&mut conn),
            )
            .await?;
        Ok(parse_info(&text))
    }

    pub async fn ping(&self) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        let _: String = self
            .bounded(
                self.timeout.max(Duration::from_millis(500)),
                redis::cmd("PING").query_async(&mut conn),
            )
            .await?;
        Ok(())
    }
}

/// Parses `INFO` output (`# Section` headers and `name:value` lines).
pub fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_namespaced_and_versioned() {
        let keys = KeyScheme::new("cacheme");
        assert_eq!(keys.product(42), "cacheme:v1:product:42");
        assert_eq!(keys.all_keys_pattern(), "cacheme:*");
    }

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

    #[test]
    fn hit_rate_is_a_rounded_percentage() {
        assert_eq!(hit_rate_percent(0, 0), 0.0);
        assert_eq!(hit_rate_percent(1, 2), 33.33);
        assert_eq!(hit_rate_percent(3, 1), 75.0);
    }

    #[test]
    fn info_parsing_skips_sections_and_keeps_values_with_colons() {
        let info = parse_info(
            "# Stats\r\nkeyspace_hits:42\r\n\r\nrole:master\r\nexecutable:/usr/bin/redis-server\r\n",
        );
        assert_eq!(info["keyspace_hits"], "42");
        assert_eq!(info["executable"], "/usr/bin/redis-server");
        assert!(!info.contains_key("# Stats"));
    }
}
