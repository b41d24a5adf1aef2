//! Building the service and running it until a shutdown signal.

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::Context as _;
use axum::Router;
use cacheme_runtime::Background;
use tokio::net::TcpListener;

use crate::{
    cache::{
        breaker::Thresholds,
        memory::MemoryTier,
        redis_tier::{RedisTier, RedisTierSettings},
    },
    config::Config,
    domain::{Catalog, Hooks},
    http::{
        self,
        access::{ClearGate, WritePolicy},
        state::{AppState, SharedState},
    },
    observability::metrics::Metrics,
    seed,
    store::{self, Database},
};

/// A bound, ready-to-run service.
#[derive(Debug)]
pub struct App {
    listener: TcpListener,
    router: Router,
    limits: http::serve::ServeLimits,
    state: AppState,
    background: Background,
}

impl App {
    /// Migrates (when configured), seeds, connects lazily to both stores, starts the
    /// background tasks and binds the listener.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        Self::build_inner(config, Hooks::default()).await
    }

    /// [`App::build`] with test hooks in the read path (the `test-hooks` feature).
    #[cfg(feature = "test-hooks")]
    pub async fn build_with_hooks(config: &Config, hooks: Hooks) -> anyhow::Result<Self> {
        Self::build_inner(config, hooks).await
    }

    async fn build_inner(config: &Config, hooks: Hooks) -> anyhow::Result<Self> {
        // Read the seed first: a broken file should stop start-up before anything changes.
        let seed = config
            .database
            .seed_file
            .as_deref()
            .map(seed::read_seed_file)
            .transpose()?;
        if config.database.migrate_on_start {
            let patience = config.database.startup_timeout();
            store::migrate_with_retry(config.database.url.expose(), patience)
                .await
                .context("database migration at start-up failed")?;
        }
        let state = state_from_config(config, hooks)?;
        if let Some(products) = seed {
            match state
                .catalog
                .apply_seed(&products)
                .await
                .context("cannot apply the SEED_FILE products")?
            {
                Some(changed) => tracing::info!(
                    products = products.len(),
                    changed,
                    "seed applied (a seed not applied before)"
                ),
                None => tracing::info!(
                    products = products.len(),
                    "seed already applied: nothing changed (edits made since are kept)"
                ),
            }
        }
        // Learn which invalidations are still owed (a crash or a stop may have left some)
        // before serving the first read.
        state.catalog.relay_once().await;
        let background = Background::new();
        background.spawn(state.catalog.clone().follow_invalidations());
        background.spawn(state.catalog.clone().keep_checking_incarnation());
        background.spawn(
            state
                .catalog
                .clone()
                .expire_outbox_knowledge(config.outbox_lease()),
        );
        background.spawn(
            state
                .catalog
                .clone()
                .relay_invalidations(config.cache.invalidation_poll()),
        );
        let listener = TcpListener::bind(config.http.bind_addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.http.bind_addr))?;
        let router = http::router(state.clone(), &config.http.cors_allowed_origins);
        Ok(Self {
            listener,
            router,
            limits: serve_limits(config),
            state,
            background,
        })
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// The app's own pool, for tests that change rows behind its back (the `test-hooks`
    /// feature).
    #[cfg(feature = "test-hooks")]
    pub fn db_pool(&self) -> sqlx::PgPool {
        self.state.catalog.db_pool()
    }

    /// The whole HTTP surface, for in-process tests that drive it with `oneshot`, no
    /// socket involved (the `test-hooks` feature).
    #[cfg(feature = "test-hooks")]
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        http::serve::serve(self.listener, self.router, self.limits, shutdown).await;
        self.background.stop().await;
        self.state.catalog.close().await;
        Ok(())
    }
}

/// Connections (lazy) and settings the handlers need.
fn state_from_config(config: &Config, hooks: Hooks) -> anyhow::Result<AppState> {
    let (metrics, counters) = Metrics::new();
    let metrics = Arc::new(metrics);
    let db = Database::connect_lazy(
        config.database.url.expose(),
        &config.db_settings(),
        metrics.clone(),
    )
    .context("invalid DATABASE_URL")?;
    let redis = RedisTier::new(RedisTierSettings {
        url: config.redis.url.clone(),
        mode: config.redis.mode,
        key_prefix: config.cache.key_prefix.clone(),
        expiry: config.expiry(),
        timeout: config.redis.timeout(),
        breaker: Thresholds {
            failures: config.redis.breaker_failures,
            failing_for: config.redis.breaker_failing_for(),
        },
        breaker_cooldown: config.redis.breaker_cooldown(),
        unsafe_skip_fill_check: config.cache.unsafe_skip_fill_check,
    })
    .context("invalid REDIS_URL")?;
    let memory = MemoryTier::new(config.l1.enabled, config.l1.max_bytes, config.l1.ttl());
    let static_dir = match &config.http.static_dir {
        Some(dir) => Some(Arc::new(check_static_dir(dir)?)),
        None => None,
    };
    warn_about_unsafe_settings(config);
    Ok(AppState::new(SharedState {
        catalog: Catalog::new(
            db,
            redis,
            memory,
            hooks,
            Arc::new(counters),
            config.database.max_loads as usize,
        ),
        metrics,
        static_dir,
        write_policy: write_policy(config),
        clear_gate: ClearGate::new(config.cache.clear_interval()),
        request_timeout: config.http.request_timeout(),
        // What `cacheme_telemetry::init_for_requests` installed; nothing in tests.
        sampler: cacheme_telemetry::installed_sampler(),
    }))
}

/// Says so loudly when the chaos checker's self-test switch is on in this process.
fn warn_about_unsafe_settings(config: &Config) {
    if config.cache.unsafe_skip_fill_check {
        tracing::warn!(
            "UNSAFE_SKIP_FILL_CHECK is on: fills are stored without checking generation and \
             epoch, so a stale row can be cached after a write. It exists only to prove the \
             chaos checker can fail; never set it anywhere else"
        );
    }
}

fn write_policy(config: &Config) -> WritePolicy {
    let policy = WritePolicy::from_settings(
        config.writes.admin_token.as_ref(),
        config.writes.allow_anonymous,
    );
    match policy {
        WritePolicy::Token(_) => tracing::info!("writes need the ADMIN_TOKEN bearer token"),
        WritePolicy::Anonymous => tracing::warn!(
            "ALLOW_ANONYMOUS_WRITES is on and no ADMIN_TOKEN is set: anyone who reaches this \
             service can change products and clear the cache (a local demo only)"
        ),
        WritePolicy::Closed => tracing::warn!(
            "no ADMIN_TOKEN is set: writes and cache clears are refused (403); set ADMIN_TOKEN, \
             or ALLOW_ANONYMOUS_WRITES=true for a local demo"
        ),
    }
    policy
}

fn check_static_dir(dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    let meta = std::fs::metadata(dir)
        .with_context(|| format!("STATIC_DIR {} cannot be read", dir.display()))?;
    anyhow::ensure!(
        meta.is_dir(),
        "STATIC_DIR {} is not a folder",
        dir.display()
    );
    Ok(dir.to_path_buf())
}

/// How the accept loop bounds clients; a shutdown waits for requests in flight (each
/// bounded by `REQUEST_TIMEOUT_MS`) and a little more.
fn serve_limits(config: &Config) -> crate::http::serve::ServeLimits {
    crate::http::serve::ServeLimits {
        header_read_timeout: config.http.header_read_timeout(),
        max_connections: usize::try_from(config.http.max_connections).unwrap_or(usize::MAX),
        shutdown_patience: config.http.request_timeout() + std::time::Duration::from_secs(2),
    }
}
