//! What every handler shares.

use std::{path::PathBuf, sync::Arc};

use crate::{catalog::Catalog, metrics::Metrics};

#[derive(Debug, Clone)]
pub struct AppState {
    pub catalog: Catalog,
    pub metrics: Arc<Metrics>,
    pub static_dir: Option<Arc<PathBuf>>,
    /// When set, writes need this bearer token.
    pub admin_token: Option<Arc<str>>,
}
