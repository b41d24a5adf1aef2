//! What a database load leaves for the requests that joined it.

use std::sync::Arc;

use super::CatalogError;
use crate::cache::value::EncodedProduct;

/// What a load read, and whether Redis took it (only such results answer late joiners).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub(super) product: Option<Arc<EncodedProduct>>,
    pub(super) cached: bool,
}

pub(super) type LoadResult = Result<Loaded, CatalogError>;

/// Which finished loads may answer late joiners: only what Redis also took. A refused
/// fill may be old, and with negative caching off an unknown id must be asked again.
pub(super) fn lingers(result: &LoadResult) -> bool {
    matches!(result, Ok(Loaded { cached: true, .. }))
}
