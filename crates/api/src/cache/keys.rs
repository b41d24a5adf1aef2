//! Key naming. Pure, so the rules are tested without Redis.
//!
//! Two layouts. A single Redis keeps `v1` (`cacheme:v1:product:42`) with one epoch for
//! the server, so upgrading does not empty a warm cache. A Redis Cluster uses `v2`, where
//! every key of a product carries the hash tag of its *bucket* (`cacheme:v2:{b42}:product:42`):
//! Lua scripts may only touch keys of one slot, so a product's entry, its generation
//! counter, the epoch the fill checks and the sharded channel its invalidation is
//! announced on must share one. Buckets rather than one tag per product keep the number
//! of epochs and channels fixed ([`BUCKETS`]), so every replica can subscribe to all of
//! them. No `v2` key is ever read in single mode, nor a `v1` key in cluster mode.

/// Version of the cached value's shape; bump it when `Product` changes so old entries are ignored.
pub const SCHEMA_VERSION: &str = "v1";

/// Version of the cluster layout (hash-tagged keys, per-bucket epochs and channels).
pub const CLUSTER_SCHEMA_VERSION: &str = "v2";

/// Hash-tag buckets in cluster mode: products are spread over this many slots, each with
/// its own epoch and invalidation channel. 256 spreads evenly over up to ~50 masters.
pub const BUCKETS: u16 = 256;

/// Redis Cluster's slot count.
pub const SLOTS: u16 = 16_384;

/// How the L2 cache is deployed, one Redis or a Redis Cluster (`REDIS_MODE`), and so how
/// its keys are laid out: the one type for the mode, from the setting to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RedisMode {
    Single,
    Cluster,
}

/// Names this service's keys and channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyScheme {
    prefix: String,
    mode: RedisMode,
}

impl KeyScheme {
    /// `prefix` must already be validated (no glob characters): see `CACHE_KEY_PREFIX`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self::with_mode(prefix, RedisMode::Single)
    }

    pub fn with_mode(prefix: impl Into<String>, mode: RedisMode) -> Self {
        Self {
            prefix: prefix.into(),
            mode,
        }
    }

    pub fn mode(&self) -> RedisMode {
        self.mode
    }

    /// The bucket of a product in cluster mode.
    pub fn bucket(id: i32) -> u16 {
        // `rem_euclid` of a positive modulus is in 0..BUCKETS, so it fits.
        u16::try_from(id.rem_euclid(i32::from(BUCKETS))).unwrap_or(0)
    }

    /// What every key of `id` starts with: `cacheme:v1` or `cacheme:v2:{b42}`.
    fn base(&self, id: i32) -> String {
        match self.mode {
            RedisMode::Single => format!("{}:{SCHEMA_VERSION}", self.prefix),
            RedisMode::Cluster => self.bucket_base(Self::bucket(id)),
        }
    }

    fn bucket_base(&self, bucket: u16) -> String {
        format!("{}:{CLUSTER_SCHEMA_VERSION}:{{b{bucket}}}", self.prefix)
    }

    /// `cacheme:v1:product:42`: the product JSON, or `null` for a known-absent id.
    pub fn product(&self, id: i32) -> String {
        format!("{}:product:{id}", self.base(id))
    }

    /// `cacheme:v1:gen:product:42`: bumped by every invalidation, so a fill that read the
    /// database before the invalidation can tell and give up.
    pub fn generation(&self, id: i32) -> String {
        format!("{}:gen:product:{id}", self.base(id))
    }

    /// `cacheme:v1:gen:epoch` (one per server; per bucket in cluster mode): a random number
    /// stored once (no TTL); every fill must still find the value its lookup saw, so a
    /// flush, a restart without persistence or a failover to an empty replica, which also
    /// resets the counters, refuses every fill in flight. A counter (`:gen:`), so
    /// `DELETE /cache/clear` keeps it.
    pub fn epoch(&self, id: i32) -> String {
        format!("{}:gen:epoch", self.base(id))
    }

    /// `cacheme:v1:gen:filled:product:42`: the epoch the entry was filled under, with
    /// the entry's TTL. A lookup serves the entry only while it equals the epoch, so
    /// entries a restarted Redis brings back from its persistence, filled before the epoch
    /// was rotated for the new process, are never served (the entry itself stays the
    /// product's plain JSON). Bookkeeping like the counters: a clear leaves it to expire.
    pub fn filled_epoch(&self, id: i32) -> String {
        format!("{}:gen:filled:product:{id}", self.base(id))
    }

    /// `cacheme:v1:gen:incarnation` (per bucket in cluster mode): the `run_id` of the
    /// Redis process the epoch was last checked against. Another process (a restart, a
    /// restore, a failover) rotates the epoch. A counter, so a clear keeps it.
    pub fn incarnation(&self, id: i32) -> String {
        format!("{}:gen:incarnation", self.base(id))
    }

    /// `cacheme:v1:gen:clear` (bucket 0's slot in cluster mode): set for the clear interval
    /// by the replica that clears, so the interval holds for the whole fleet. Bookkeeping
    /// (`:gen:`), so the clear it guards does not remove it.
    pub fn clear_reservation(&self) -> String {
        format!("{}:gen:clear", self.base(0))
    }

    /// Whether `key` is a generation counter or an epoch, which a clear must keep.
    pub fn is_counter(&self, key: &str) -> bool {
        key.strip_prefix(self.prefix.as_str())
            .is_some_and(|rest| rest.contains(":gen:"))
    }

    /// Channel on which an invalidation of `id` is announced to every replica (a sharded
    /// channel of the product's bucket in cluster mode).
    pub fn invalidation_channel(&self, id: i32) -> String {
        format!("{}:invalidations", self.base(id))
    }

    /// Every channel a replica listens on, with its slot in cluster mode.
    pub fn invalidation_channels(&self) -> Vec<(String, u16)> {
        match self.mode {
            RedisMode::Single => vec![(self.invalidation_channel(0), 0)],
            RedisMode::Cluster => (0..BUCKETS)
                .map(|bucket| {
                    (
                        format!("{}:invalidations", self.bucket_base(bucket)),
                        bucket_slot(bucket),
                    )
                })
                .collect(),
        }
    }

    /// Matches every key this service owns, of every schema version.
    pub fn all_keys_pattern(&self) -> String {
        format!("{}:*", self.prefix)
    }
}

/// The slot of every key of `bucket` (its hash tag is `b<bucket>`).
pub fn bucket_slot(bucket: u16) -> u16 {
    key_slot(format!("b{bucket}").as_bytes())
}

/// Redis Cluster's slot of a key: CRC16 (XMODEM) of its hash tag, or of the whole key
/// when it has none, modulo 16384.
pub fn key_slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter()
                .position(|&b| b == b'}')
                .filter(|&close| close > 0)
                .map(|close| &rest[..close])
        })
        .unwrap_or(key);
    crc16_xmodem(tagged) % SLOTS
}

fn crc16_xmodem(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_namespaced_and_versioned() {
        let keys = KeyScheme::new("cacheme");
        assert_eq!(keys.product(42), "cacheme:v1:product:42");
        assert_eq!(keys.generation(42), "cacheme:v1:gen:product:42");
        assert!(keys.is_counter(&keys.generation(42)));
        assert!(!keys.is_counter(&keys.product(42)));
        assert_eq!(keys.invalidation_channel(42), "cacheme:v1:invalidations");
        assert_eq!(keys.epoch(42), "cacheme:v1:gen:epoch");
        assert_eq!(keys.epoch(7), keys.epoch(42), "one epoch per server");
        assert_eq!(keys.filled_epoch(42), "cacheme:v1:gen:filled:product:42");
        assert!(
            keys.is_counter(&keys.filled_epoch(42)),
            "not counted by a clear"
        );
        assert_eq!(keys.incarnation(42), "cacheme:v1:gen:incarnation");
        assert!(keys.is_counter(&keys.incarnation(42)), "a clear keeps it");
        assert!(keys.is_counter(&keys.epoch(1)));
        assert_ne!(keys.epoch(0), keys.generation(0));
        assert_eq!(keys.all_keys_pattern(), "cacheme:*");
        assert_eq!(keys.invalidation_channels().len(), 1);
    }

    #[test]
    fn cluster_keys_of_a_product_share_one_slot_and_a_new_version() {
        let keys = KeyScheme::with_mode("cacheme", RedisMode::Cluster);
        assert_eq!(keys.product(42), "cacheme:v2:{b42}:product:42");
        assert_eq!(keys.generation(298), "cacheme:v2:{b42}:gen:product:298");
        assert_eq!(keys.epoch(42), "cacheme:v2:{b42}:gen:epoch");
        assert_eq!(
            keys.invalidation_channel(42),
            "cacheme:v2:{b42}:invalidations"
        );
        assert_eq!(KeyScheme::bucket(-1), BUCKETS - 1);
        for id in [0, 1, 42, 255, 256, 99_999, -7, i32::MAX, i32::MIN] {
            let slot = key_slot(keys.product(id).as_bytes());
            for other in [
                keys.generation(id),
                keys.epoch(id),
                keys.filled_epoch(id),
                keys.incarnation(id),
                keys.invalidation_channel(id),
            ] {
                assert_eq!(key_slot(other.as_bytes()), slot, "{other}");
            }
            assert_eq!(bucket_slot(KeyScheme::bucket(id)), slot);
            assert!(keys.is_counter(&keys.epoch(id)) && keys.is_counter(&keys.generation(id)));
            assert!(!keys.is_counter(&keys.product(id)));
        }
        let channels = keys.invalidation_channels();
        assert_eq!(channels.len(), usize::from(BUCKETS));
        // The buckets land on many slots, so they spread over the masters.
        let distinct: std::collections::HashSet<u16> = channels.iter().map(|c| c.1).collect();
        assert_eq!(distinct.len(), usize::from(BUCKETS));
    }

    #[test]
    fn slots_match_redis() {
        // Values from `CLUSTER KEYSLOT` (Redis 7.0) and the cluster specification.
        assert_eq!(key_slot(b"123456789"), 12_739);
        assert_eq!(key_slot(b"foo"), 12_182);
        assert_eq!(bucket_slot(0), 6_939);
        assert_eq!(bucket_slot(42), 10_827);
        assert_eq!(bucket_slot(255), 1_001);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
    }
}
