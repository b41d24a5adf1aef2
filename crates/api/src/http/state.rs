//! What every handler shares.

use std::{ops::Deref, path::PathBuf, sync::Arc};

use super::access::{ClearGate, HasWritePolicy, WritePolicy};
use crate::{domain::Catalog, observability::metrics::Metrics};

/// The shared state behind one `Arc`: axum clones the state for every request, and
/// cloning the parts (pool, caches, clients: a score of `Arc`s) showed up in profiles.
#[derive(Debug, Clone)]
pub struct AppState(Arc<SharedState>);

#[derive(Debug)]
pub struct SharedState {
    pub catalog: Catalog,
    pub metrics: Arc<Metrics>,
    pub static_dir: Option<Arc<PathBuf>>,
    /// Who may write.
    pub write_policy: WritePolicy,
    /// Spaces out `DELETE /cache/clear`.
    pub clear_gate: ClearGate,
    /// Upper bound on one request.
    pub request_timeout: std::time::Duration,
    /// Which requests are traced (decided before any span is built).
    pub sampler: cacheme_telemetry::HeadSampler,
}

impl AppState {
    pub fn new(shared: SharedState) -> Self {
        Self(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

impl HasWritePolicy for AppState {
    fn write_policy(&self) -> &WritePolicy {
        &self.write_policy
    }
}
