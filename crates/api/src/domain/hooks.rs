//! Pause points the tests put in the read and write paths to force an interleaving (a
//! fill after a write's invalidation, say). They exist only with the `test-hooks`
//! feature: a shipped build's `Hooks` is empty and each pause point an empty call.

#[cfg(feature = "test-hooks")]
use std::sync::Arc;

#[cfg(feature = "test-hooks")]
use futures::future::BoxFuture;

/// A pause point for tests: called with the product id.
#[cfg(feature = "test-hooks")]
pub type Hook = Arc<dyn Fn(i32) -> BoxFuture<'static, ()> + Send + Sync>;

/// Where tests can pause the read and write paths.
#[cfg(feature = "test-hooks")]
#[derive(Clone, Default)]
pub struct Hooks {
    /// Between a miss's database read and its cache fill.
    pub before_fill: Option<Hook>,
    /// Between a write's L1 drop and its Redis invalidation.
    pub before_redis_invalidate: Option<Hook>,
    /// Before an invalidation announced on the channel (this process's own included) is applied.
    pub before_remote_invalidation: Option<Hook>,
}

/// No pause point in a shipped build (a field, so the same `Hooks::default()` builds
/// it in both).
#[cfg(not(feature = "test-hooks"))]
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    _none: (),
}

#[cfg(feature = "test-hooks")]
impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("before_fill", &self.before_fill.is_some())
            .field(
                "before_redis_invalidate",
                &self.before_redis_invalidate.is_some(),
            )
            .field(
                "before_remote_invalidation",
                &self.before_remote_invalidation.is_some(),
            )
            .finish()
    }
}

/// A pause point: with the feature, awaits the hook set for it (if any); without, nothing.
macro_rules! pause_point {
    ($(#[$doc:meta])* $method:ident => $field:ident) => {
        $(#[$doc])*
        #[inline]
        pub(super) async fn $method(&self, id: i32) {
            #[cfg(feature = "test-hooks")]
            if let Some(hook) = &self.$field {
                hook(id).await;
            }
            #[cfg(not(feature = "test-hooks"))]
            let _ = id;
        }
    };
}

impl Hooks {
    pause_point!(
        /// Between a miss's database read and its cache fill.
        pause_before_fill => before_fill
    );
    pause_point!(
        /// Between a write's L1 drop and its Redis invalidation.
        pause_before_redis_invalidate => before_redis_invalidate
    );
    pause_point!(
        /// Before an announced invalidation is applied.
        pause_before_remote_invalidation => before_remote_invalidation
    );
}
