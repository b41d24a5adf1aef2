//! The product catalog: what a request asks for, in terms of products rather than HTTP,
//! answered through the cache tiers and the store below.

mod catalog;
mod error;
mod id_bound;
mod loaded;
mod observe;
mod owed;
mod read;
mod reports;
mod writes;

#[cfg(feature = "test-hooks")]
pub use catalog::Hook;
pub use catalog::{Catalog, Hooks, Served, Tier};
pub use error::CatalogError;
pub use reports::{BreakerState, NodeHealth, NodeStatus};
