//! Calls for people rather than requests: clearing, `INFO`, health pings and the view of
//! one entry. Bounded by a longer timeout, never by the breaker.

use std::{collections::BTreeMap, time::Duration};

use redis::AsyncCommands;

use super::{ABSENT, ADMIN_TIMEOUT_FLOOR, CacheError, RedisTier};

/// Keys per SCAN page and per UNLINK batch when clearing.
const CLEAR_BATCH: usize = 500;

/// What `GET /cache/entries/{id}` shows.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryInfo {
    pub key: String,
    pub cached: bool,
    pub absent_marker: bool,
    pub ttl: Option<Duration>,
    pub generation: u64,
}

impl RedisTier {
    fn admin_timeout(&self) -> Duration {
        self.timeout.max(ADMIN_TIMEOUT_FLOOR)
    }

    /// Removes every entry under this service's prefix (SCAN + UNLINK; never KEYS or FLUSHALL).
    pub async fn clear(&self) -> Result<u64, CacheError> {
        let pattern = self.keys.all_keys_pattern();
        let generation_prefix = self.keys.generation_prefix();
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
                // Generation counters stay, so a fill that was in flight still compares
                // against the right number; only entries are cleared and counted.
                let values: Vec<&String> = keys
                    .iter()
                    .filter(|k| !k.starts_with(&generation_prefix))
                    .collect();
                for batch in values.chunks(CLEAR_BATCH) {
                    let removed: u64 = conn.unlink(batch).await?;
                    cleared += removed;
                }
                if next == 0 {
                    return Ok(cleared);
                }
                cursor = next;
            }
        };
        Self::bounded(self.admin_timeout(), work).await
    }

    /// The server's `INFO` fields, name → value.
    pub async fn info(&self) -> Result<BTreeMap<String, String>, CacheError> {
        let mut conn = self.conn.clone();
        let text: String = Self::bounded(
            self.admin_timeout(),
            redis::cmd("INFO").query_async(&mut conn),
        )
        .await?;
        Ok(parse_info(&text))
    }

    pub async fn ping(&self) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        let _: String = Self::bounded(
            self.timeout.max(Duration::from_millis(500)),
            redis::cmd("PING").query_async(&mut conn),
        )
        .await?;
        Ok(())
    }

    /// What Redis holds for a product right now.
    pub async fn entry(&self, id: i32) -> Result<EntryInfo, CacheError> {
        let key = self.keys.product(id);
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.get(&key).pttl(&key).get(self.keys.generation(id));
        let (raw, pttl, generation): (Option<String>, i64, Option<u64>) =
            Self::bounded(self.admin_timeout(), pipe.query_async(&mut conn)).await?;
        Ok(EntryInfo {
            cached: raw.is_some(),
            absent_marker: raw.as_deref() == Some(ABSENT),
            ttl: u64::try_from(pttl).ok().map(Duration::from_millis),
            generation: generation.unwrap_or(0),
            key,
        })
    }
}

/// Whether CacheMe's consistency holds under this `maxmemory-policy`: eviction may only
/// pick keys with a TTL (entries), never the generation counters or the epoch, which
/// have none.
pub fn eviction_policy_supported(policy: &str) -> bool {
    !policy.starts_with("allkeys")
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
    fn info_parsing_skips_sections_and_keeps_values_with_colons() {
        let info = parse_info(
            "# Stats\r\nkeyspace_hits:42\r\n\r\nrole:master\r\nexecutable:/usr/bin/redis-server\r\n",
        );
        assert_eq!(info["keyspace_hits"], "42");
        assert_eq!(info["executable"], "/usr/bin/redis-server");
        assert!(!info.contains_key("# Stats"));
    }

    #[test]
    fn only_policies_that_spare_keys_without_ttl_are_supported() {
        for ok in [
            "noeviction",
            "volatile-lru",
            "volatile-lfu",
            "volatile-ttl",
            "volatile-random",
        ] {
            assert!(eviction_policy_supported(ok), "{ok}");
        }
        for bad in ["allkeys-lru", "allkeys-lfu", "allkeys-random"] {
            assert!(!eviction_policy_supported(bad), "{bad}");
        }
    }
}
