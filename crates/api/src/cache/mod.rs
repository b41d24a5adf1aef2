//! The two cache tiers and the machinery that keeps them correct.

pub mod breaker;
pub mod keys;
pub mod listener;
pub mod memory;
pub mod pending;
pub mod redis_tier;
pub mod singleflight;

pub use keys::KeyScheme;
