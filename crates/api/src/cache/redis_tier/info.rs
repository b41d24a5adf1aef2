//! `INFO` as text and as numbers: parsing, a cluster's masters added up, and which
//! eviction policies CacheMe's consistency holds under. Pure.

use std::collections::BTreeMap;

/// INFO fields summed over a cluster's masters; the rest are taken from the first master.
const SUMMED_INFO_FIELDS: &[&str] = &[
    "keyspace_hits",
    "keyspace_misses",
    "used_memory",
    "connected_clients",
    "total_commands_processed",
    "total_connections_received",
    "expired_keys",
    "evicted_keys",
];

/// Adds up the masters' `INFO`: counters summed, `used_memory_human` recomputed, the
/// shortest uptime, an unsupported eviction policy if any master has one. Pure.
pub fn aggregate_info(nodes: &[BTreeMap<String, String>]) -> BTreeMap<String, String> {
    let mut out = nodes.first().cloned().unwrap_or_default();
    for &field in SUMMED_INFO_FIELDS {
        let values: Vec<u64> = nodes
            .iter()
            .filter_map(|n| n.get(field)?.parse().ok())
            .collect();
        if !values.is_empty() {
            out.insert(field.to_owned(), values.iter().sum::<u64>().to_string());
        }
    }
    if let Some(bytes) = out.get("used_memory").and_then(|v| v.parse::<u64>().ok()) {
        #[allow(clippy::cast_precision_loss)] // a display figure
        let mib = bytes as f64 / (1024.0 * 1024.0);
        out.insert("used_memory_human".to_owned(), format!("{mib:.2}M"));
    }
    if let Some(uptime) = nodes
        .iter()
        .filter_map(|n| n.get("uptime_in_seconds")?.parse::<u64>().ok())
        .min()
    {
        out.insert("uptime_in_seconds".to_owned(), uptime.to_string());
    }
    if let Some(policy) = nodes
        .iter()
        .filter_map(|n| n.get("maxmemory_policy"))
        .find(|p| !eviction_policy_supported(p))
    {
        out.insert("maxmemory_policy".to_owned(), policy.clone());
    }
    out.insert("cluster_masters".to_owned(), nodes.len().to_string());
    out
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
