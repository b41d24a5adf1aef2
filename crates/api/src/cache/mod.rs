//! The two cache tiers and the machinery that keeps them correct: what they hold
//! (`value`), key names (`keys`) and expiry (`expiry`), L1 (`memory`), L2 (`redis_tier`,
//! behind a circuit `breaker`), one load per key (`singleflight`), ids whose invalidation
//! is owed (`pending`); the pub/sub subscription that keeps every replica's L1 in step is
//! the Redis tier's (`redis_tier::subscription`).

pub mod breaker;
pub mod expiry;
pub mod keys;
pub mod memory;
pub mod pending;
pub mod redis_tier;
pub mod singleflight;
pub mod value;

pub use keys::KeyScheme;
