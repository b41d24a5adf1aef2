//! The product catalog: what a request asks for, in terms of products rather than HTTP,
//! answered through the cache tiers and the store below.

mod catalog;
mod error;
mod hooks;
mod id_bound;
mod loaded;
mod observe;
mod owed;
mod read;
mod reports;
mod writes;

pub use catalog::{Catalog, Served, Tier};
pub use error::CatalogError;
#[cfg(feature = "test-hooks")]
pub use hooks::Hook;
pub use hooks::Hooks;
pub use reports::{BreakerState, NodeHealth, NodeStatus};
