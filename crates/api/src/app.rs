//! Building the service and running it until a shutdown signal.

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::Context as _;
use axum::{
    Router,
    extract::DefaultBodyLimit,
    handler::HandlerWithoutStateExt,
    http::{Method, header},
    middleware,
};
use tokio::net::TcpListener;
use tower_http::{
    cors::{AllowOrigin, Any, CorsLayer},
    services::ServeDir,
};
use utoipa_swagger_ui::SwaggerUi;

use crate::{
    access::WritePolicy,
    cache::{
        listener::listen_for_invalidations,
        memory::MemoryTier,
        redis_tier::{RedisTier, RedisTierSettings},
    },
    catalog::{Catalog, Hooks},
    config::{Config, CorsOrigins},
    db::{self, Database},
    error::ApiError,
    http_trace::trace_requests,
    metrics::Metrics,
    openapi, routes, seed,
    state::{AppState, SharedState},
};

async fn not_found() -> ApiError {
    ApiError::RouteNotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// `None` for same-origin only. Credentials (cookies) are never allowed, so `*` never
/// meets them; the bearer token is a header the page sends itself.
fn cors_layer(origins: &CorsOrigins) -> Option<CorsLayer> {
    let allow_origin = match origins {
        CorsOrigins::None => return None,
        CorsOrigins::Any => AllowOrigin::from(Any),
        CorsOrigins::List(list) => AllowOrigin::list(list.iter().cloned()),
    };
    let layer = CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
        .expose_headers([
            header::RETRY_AFTER,
            header::LOCATION,
            header::HeaderName::from_static("server-timing"),
            header::HeaderName::from_static("traceparent"),
        ]);
    Some(layer)
}

/// The whole HTTP surface for `state`; no socket, so tests can drive it with `oneshot`.
pub fn router(state: AppState, cors: &CorsOrigins) -> Router {
    let static_dir = state.static_dir.clone();
    let metrics = state.metrics.clone();
    let mut app = routes::router()
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi::document()))
        .method_not_allowed_fallback(method_not_allowed);
    app = match static_dir {
        Some(dir) => {
            app.fallback_service(ServeDir::new(dir.as_ref()).fallback(not_found.into_service()))
        }
        None => app.fallback(not_found),
    };
    let request_timeout = state.request_timeout;
    // Added with `layer` on the router, so the middleware sees the matched route.
    app.layer(middleware::from_fn(move |request, next| {
        crate::http_trace::deadline(request_timeout, request, next)
    }))
    .layer(DefaultBodyLimit::max(crate::input::BODY_LIMIT_BYTES))
    .layer(middleware::from_fn_with_state(metrics, trace_requests))
    .with_state(state)
    .layer(tower::util::option_layer(cors_layer(cors)))
}

/// A bound, ready-to-run service.
#[derive(Debug)]
pub struct App {
    listener: TcpListener,
    router: Router,
    state: AppState,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl App {
    /// Migrates (when configured), seeds, connects lazily to both stores, starts the
    /// background tasks and binds the listener.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        Self::build_with_hooks(config, Hooks::default()).await
    }

    /// [`App::build`] with test hooks in the read path.
    pub async fn build_with_hooks(config: &Config, hooks: Hooks) -> anyhow::Result<Self> {
        // Read the seed first: a broken file should stop start-up before anything changes.
        let seed = config
            .seed_file
            .as_deref()
            .map(seed::read_seed_file)
            .transpose()?;
        if config.migrate_on_start {
            let patience = std::time::Duration::from_secs(config.db_startup_timeout_seconds);
            db::migrate_with_retry(&config.database_url, patience)
                .await
                .context("database migration at start-up failed")?;
        }
        let state = state_from_config(config, hooks)?;
        if let Some(products) = seed {
            state
                .catalog
                .db()
                .upsert_products(&products)
                .await
                .context("cannot upsert the SEED_FILE products")?;
            let ids: Vec<i32> = products.iter().map(|(id, _)| *id).collect();
            state
                .catalog
                .invalidate_changed(&ids)
                .await
                .context("cannot record the seed products' invalidations")?;
            tracing::info!(products = products.len(), "seed products upserted");
        }
        // Learn which invalidations are still owed (a crash or a stop may have left some)
        // before serving the first read.
        state.catalog.relay_once().await;
        let background = vec![
            tokio::spawn(listen_for_invalidations(state.catalog.clone())),
            tokio::spawn(
                state
                    .catalog
                    .clone()
                    .relay_invalidations(config.invalidation_poll()),
            ),
        ];
        let listener = TcpListener::bind(config.bind_addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.bind_addr))?;
        let router = router(state.clone(), &config.cors_allowed_origins);
        Ok(Self {
            listener,
            router,
            state,
            background,
        })
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("HTTP server failed")?;
        for task in &self.background {
            task.abort();
        }
        self.state.catalog.db().close().await;
        Ok(())
    }
}

/// Connections (lazy) and settings the handlers need.
pub fn state_from_config(config: &Config, hooks: Hooks) -> anyhow::Result<AppState> {
    let metrics = Arc::new(Metrics::default());
    let db = Database::connect_lazy(&config.database_url, &config.db_settings(), metrics.clone())
        .context("invalid DATABASE_URL")?;
    let redis = RedisTier::new(RedisTierSettings {
        url: config.redis_url.clone(),
        key_prefix: config.cache_key_prefix.clone(),
        expiry: config.expiry(),
        timeout: config.redis_timeout(),
        breaker_failures: config.redis_breaker_failures,
        breaker_cooldown: std::time::Duration::from_millis(config.redis_breaker_cooldown_ms),
        unsafe_skip_fill_check: config.unsafe_skip_fill_check,
    })
    .context("invalid REDIS_URL")?;
    let memory = MemoryTier::new(
        config.l1_enabled,
        config.l1_max_bytes,
        std::time::Duration::from_millis(config.l1_ttl_ms),
    );
    let static_dir = match &config.static_dir {
        Some(dir) => Some(Arc::new(check_static_dir(dir)?)),
        None => None,
    };
    Ok(AppState::new(SharedState {
        catalog: Catalog::new(db, redis, memory, hooks),
        metrics,
        static_dir,
        write_policy: write_policy(config),
        clear_gate: crate::access::ClearGate::new(std::time::Duration::from_millis(
            config.cache_clear_interval_ms,
        )),
        request_timeout: std::time::Duration::from_millis(config.request_timeout_ms),
    }))
}

fn write_policy(config: &Config) -> WritePolicy {
    let policy =
        WritePolicy::from_settings(config.admin_token.as_deref(), config.allow_anonymous_writes);
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

/// Completes on SIGTERM (Kubernetes) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; draining in-flight requests");
}
