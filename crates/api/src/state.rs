//! What every handler shares.

use std::{path::PathBuf, sync::Arc};

use crate::{cache::RedisCache, db::Database};

#[derive(Debug, Clone)]
pub struct AppState {
    pub db: Database,
    pub cache: RedisCache,
    pub static_dir: Option<Arc<PathBuf>>,
}
