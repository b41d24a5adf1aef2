//! Key naming. Pure, so the rules are tested without Redis.

/// Version of the cached value's shape; bump it when `Product` changes so old entries are ignored.
pub const SCHEMA_VERSION: &str = "v1";

/// Names this service's keys and channel.
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

    /// `cacheme:v1:product:42`: the product JSON, or `null` for a known-absent id.
    pub fn product(&self, id: i32) -> String {
        format!("{}:{SCHEMA_VERSION}:product:{id}", self.prefix)
    }

    /// `cacheme:v1:gen:product:42`: bumped by every invalidation, so a fill that read the
    /// database before the invalidation can tell and give up.
    pub fn generation(&self, id: i32) -> String {
        format!("{}:{SCHEMA_VERSION}:gen:product:{id}", self.prefix)
    }

    /// `cacheme:v1:gen:epoch`: a random number stored once per Redis (no TTL); every fill
    /// must still find the value its lookup saw, so a flush or a restart without
    /// persistence, which also resets the counters, refuses every fill in flight. Under
    /// the generation prefix, so `DELETE /cache/clear` keeps it.
    pub fn epoch(&self) -> String {
        format!("{}:{SCHEMA_VERSION}:gen:epoch", self.prefix)
    }

    /// Every generation counter (and the epoch) starts with this.
    pub fn generation_prefix(&self) -> String {
        format!("{}:{SCHEMA_VERSION}:gen:", self.prefix)
    }

    /// Pub/sub channel on which invalidated ids are announced to every replica.
    pub fn invalidation_channel(&self) -> String {
        format!("{}:{SCHEMA_VERSION}:invalidations", self.prefix)
    }

    /// Matches every key this service owns, of every schema version.
    pub fn all_keys_pattern(&self) -> String {
        format!("{}:*", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_namespaced_and_versioned() {
        let keys = KeyScheme::new("cacheme");
        assert_eq!(keys.product(42), "cacheme:v1:product:42");
        assert_eq!(keys.generation(42), "cacheme:v1:gen:product:42");
        assert!(keys.generation(42).starts_with(&keys.generation_prefix()));
        assert!(!keys.product(42).starts_with(&keys.generation_prefix()));
        assert_eq!(keys.invalidation_channel(), "cacheme:v1:invalidations");
        assert_eq!(keys.epoch(), "cacheme:v1:gen:epoch");
        assert!(keys.epoch().starts_with(&keys.generation_prefix()));
        assert_ne!(keys.epoch(), keys.generation(0));
        assert_eq!(keys.all_keys_pattern(), "cacheme:*");
    }
}
