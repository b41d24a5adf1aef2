//! CacheMe product service: Redis cache-aside in front of PostgreSQL.
//!
//! Layers, each using only those below it:
//! - `http`: routes, extractors, problem+json errors, the OpenAPI document;
//! - `domain`: the product catalog, reads through the cache tiers and writes that
//!   invalidate them;
//! - `cache` (L1, L2 and what keeps them correct) and `store` (PostgreSQL);
//! - `model` (the product and its validated inputs) and `observability` (metrics,
//!   `Server-Timing`, request tracing).
//!
//! `app` wires them from the `config`; `main.rs` only parses settings and runs [`App`].

mod app;
mod cache;
mod config;
mod domain;
mod env_names;
mod http;
mod model;
mod mutation;
mod observability;
mod seed;
mod store;

// The unit tests' allocator: the system's, counting, so a test can weigh what a structure
// really holds (`cache::memory`'s entry weight). Counts are process-wide: such a test
// measures a change much larger than what the tests beside it hold.
#[cfg(test)]
#[global_allocator]
static COUNTING: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

pub use app::App;
pub use cache::KeyScheme;
pub use config::{Cli, Command, Config, CorsOrigins, RedisMode};
#[cfg(feature = "test-hooks")]
pub use domain::{Hook, Hooks};
pub use env_names::{env_names, settings_table};
pub use http::serve::HTTP2_MAX_CONCURRENT_STREAMS;
pub use mutation::install_from_env as install_mutation_from_env;
pub use store::{MIGRATOR, migrate, migrate_with_retry};
