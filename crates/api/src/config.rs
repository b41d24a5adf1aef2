//! Settings, all from the environment (or the matching flag, except the admin token);
//! `cacheme-api --help` lists them.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use cacheme_runtime::Secret;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// How the L2 cache is deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RedisMode {
    Single,
    Cluster,
}

/// CacheMe product service: Redis cache-aside in front of PostgreSQL.
#[derive(Debug, Parser)]
#[command(
    name = "cacheme-api",
    version,
    about,
    long_about = None,
    after_help = "ADMIN_TOKEN (environment only): the bearer token writes and DELETE /cache/clear need."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Create the database if needed, apply the migrations (schema and seed data), then exit.
    Migrate,
}

/// Every setting of the service. Durations are whole milliseconds or seconds, as named.
/// `Debug` shows every field but the secrets (the URLs carry passwords), so a
/// `tracing::debug!(?config)` cannot leak them.
#[derive(Clone, Debug, Args)]
pub struct Config {
    /// PostgreSQL connection URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres:postgres@localhost:5432/cacheme"
    )]
    pub database_url: Secret,

    /// Redis connection URL (the L2 cache); with REDIS_MODE=cluster, a comma-separated
    /// list of seed nodes of the cluster.
    #[arg(long, env = "REDIS_URL", default_value = "redis://localhost:6379")]
    pub redis_url: Secret,

    /// `single` (one Redis) or `cluster` (a Redis Cluster: hash-tagged `v2` keys, sharded
    /// pub/sub, a breaker per master).
    #[arg(long, env = "REDIS_MODE", value_enum, default_value_t = RedisMode::Single)]
    pub redis_mode: RedisMode,

    /// Time to live of a cached product, in seconds.
    #[arg(long, env = "CACHE_TTL_SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub cache_ttl_seconds: u64,

    /// Random spread applied to each TTL, in percent (0 disables it), so keys filled together do not expire together.
    #[arg(long, env = "CACHE_TTL_JITTER_PERCENT", default_value_t = 10, value_parser = clap::value_parser!(u8).range(0..=50))]
    pub cache_ttl_jitter_percent: u8,

    /// Prefix of every Redis key this service owns; `DELETE /cache/clear` removes only keys under it.
    #[arg(long, env = "CACHE_KEY_PREFIX", default_value = "cacheme", value_parser = parse_key_prefix)]
    pub cache_key_prefix: String,

    /// How long an unknown id is remembered as absent, in seconds (0 disables negative caching).
    #[arg(long, env = "NEGATIVE_TTL_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub negative_ttl_seconds: u64,

    /// After its TTL, an entry is still served for this many seconds while one background refresh runs.
    #[arg(long, env = "CACHE_STALE_WHILE_REVALIDATE_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub cache_stale_while_revalidate_seconds: u64,

    /// After its TTL, an entry is still served for this many seconds when PostgreSQL fails.
    #[arg(long, env = "CACHE_STALE_IF_ERROR_SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=604_800))]
    pub cache_stale_if_error_seconds: u64,

    /// Keep an in-process tier (L1) in front of Redis.
    #[arg(long, env = "L1_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub l1_enabled: bool,

    /// Time to live of an L1 entry, in milliseconds.
    #[arg(long, env = "L1_TTL_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub l1_ttl_ms: u64,

    /// Memory bound of L1, in bytes (each entry weighs its text plus 256 bytes).
    #[arg(long, env = "L1_MAX_BYTES", default_value_t = 16 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..))]
    pub l1_max_bytes: u64,

    /// Consecutive Redis failures that open the circuit breaker (reads then skip Redis),
    /// once they have also gone on for REDIS_BREAKER_FAILING_MS.
    #[arg(long, env = "REDIS_BREAKER_FAILURES", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub redis_breaker_failures: u32,

    /// How long Redis calls must keep failing, with no success between, before the breaker
    /// opens, in milliseconds: one slow reply (a fork for an RDB save, another tenant's
    /// slow command) fails every call in flight at once and must not switch the cache off.
    #[arg(long, env = "REDIS_BREAKER_FAILING_MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub redis_breaker_failing_ms: u64,

    /// How long an open breaker skips Redis before one probe call, in milliseconds.
    #[arg(long, env = "REDIS_BREAKER_COOLDOWN_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub redis_breaker_cooldown_ms: u64,

    /// `ADMIN_TOKEN`, from the environment only (a flag would show in `ps` and
    /// `/proc/*/cmdline`): when set, writes and `DELETE /cache/clear` need
    /// `Authorization: Bearer <token>`; reads never do. Without it writes are refused
    /// unless ALLOW_ANONYMOUS_WRITES is set.
    #[arg(skip = std::env::var("ADMIN_TOKEN").ok().map(Secret::from))]
    pub admin_token: Option<Secret>,

    /// Least time between two `DELETE /cache/clear`, in milliseconds (one runs at a time
    /// in any case): a clear empties every replica's L1, so a loop of them would switch
    /// the cache off.
    #[arg(long, env = "CACHE_CLEAR_INTERVAL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub cache_clear_interval_ms: u64,

    /// Let anyone write when no ADMIN_TOKEN is set (a local demo only; logged at start).
    #[arg(long, env = "ALLOW_ANONYMOUS_WRITES", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_anonymous_writes: bool,

    /// Upper bound on one request, in milliseconds; past it the client gets 503 (a write
    /// that already started still completes, with its invalidation).
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub request_timeout_ms: u64,

    /// Longest wait for a request's headers, and for the next request on an idle
    /// keep-alive connection, in milliseconds: a slow or idle client is cut off. Longer
    /// than the idle timeout of the proxies in front (Traefik 90 s, nginx 60 s): a proxy
    /// that reuses a connection the backend has just closed answers 502.
    #[arg(long, env = "HTTP_HEADER_READ_TIMEOUT_MS", default_value_t = 120_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub http_header_read_timeout_ms: u64,

    /// Connections served at once; more wait in the kernel's accept queue until one
    /// closes (keep it under the process's open-file limit).
    #[arg(long, env = "HTTP_MAX_CONNECTIONS", default_value_t = 2048, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub http_max_connections: u64,

    /// JSON array of products (`id`, `name`, `description`, `price`, `category`) upserted at start.
    #[arg(long, env = "SEED_FILE")]
    pub seed_file: Option<PathBuf>,

    /// Upper bound on any single Redis call, in milliseconds; past it the request goes to PostgreSQL.
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub redis_timeout_ms: u64,

    /// Address and port to listen on.
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0:8000")]
    pub bind_addr: SocketAddr,

    /// Threads that run requests; 0 means one per CPU the process may use (its cgroup quota
    /// included).
    #[arg(long, env = "WORKER_THREADS", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=1024))]
    pub worker_threads: u16,

    /// Extra delay added to each database read, in milliseconds, to make the cost of a miss visible.
    #[arg(long, env = "SIMULATED_DB_LATENCY_MS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub simulated_db_latency_ms: u64,

    /// Most connections in the PostgreSQL pool.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_max_connections: u32,

    /// Upper bound on one PostgreSQL statement, in milliseconds (`statement_timeout`, plus
    /// a client-side deadline 1 s later for a server that does not answer at all); past it
    /// a read answers 503 or a stale entry.
    #[arg(long, env = "DB_STATEMENT_TIMEOUT_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub db_statement_timeout_ms: u64,

    /// How often every replica reads the invalidation outbox, in milliseconds: the bound
    /// on how long another replica may serve an entry whose invalidation could not reach Redis.
    #[arg(long, env = "INVALIDATION_POLL_MS", default_value_t = 250, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub invalidation_poll_ms: u64,

    /// Test-only, unsafe: store cache fills without checking that no write happened since
    /// the row was read. Exists so the chaos checker can prove it detects stale reads.
    #[arg(long, env = "UNSAFE_SKIP_FILL_CHECK", default_value_t = false, action = clap::ArgAction::Set, hide = true)]
    pub unsafe_skip_fill_check: bool,

    /// How long a request waits for a PostgreSQL connection before answering 503, in milliseconds.
    #[arg(long, env = "DB_ACQUIRE_TIMEOUT_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub db_acquire_timeout_ms: u64,

    /// How long start-up keeps retrying an unreachable PostgreSQL before giving up, in seconds.
    #[arg(long, env = "DB_STARTUP_TIMEOUT_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub db_startup_timeout_seconds: u64,

    /// Serve the built frontend from this folder on the same port.
    #[arg(long, env = "STATIC_DIR")]
    pub static_dir: Option<PathBuf>,

    /// Origins allowed by CORS, comma-separated, or `*` for any; empty (the default) for
    /// none: only pages served from the API's own origin may call it.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", default_value = "", value_parser = parse_cors_origins)]
    pub cors_allowed_origins: CorsOrigins,

    /// Run database migrations at start-up (safe with several replicas: they take an advisory lock).
    #[arg(long, env = "MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,
}

impl Config {
    pub fn cache_ttl(&self) -> Duration {
        Duration::from_secs(self.cache_ttl_seconds)
    }
    pub fn expiry(&self) -> crate::cache::expiry::ExpiryPolicy {
        crate::cache::expiry::ExpiryPolicy {
            ttl: self.cache_ttl(),
            jitter_percent: self.cache_ttl_jitter_percent,
            stale_while_revalidate: Duration::from_secs(self.cache_stale_while_revalidate_seconds),
            stale_if_error: Duration::from_secs(self.cache_stale_if_error_seconds),
            negative_ttl: Duration::from_secs(self.negative_ttl_seconds),
        }
    }
    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
    }
    pub fn simulated_db_latency(&self) -> Duration {
        Duration::from_millis(self.simulated_db_latency_ms)
    }
    pub fn db_acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.db_acquire_timeout_ms)
    }
    pub fn db_settings(&self) -> crate::store::DatabaseSettings {
        crate::store::DatabaseSettings {
            max_connections: self.db_max_connections,
            acquire_timeout: self.db_acquire_timeout(),
            statement_timeout: Duration::from_millis(self.db_statement_timeout_ms),
            simulated_latency: self.simulated_db_latency(),
        }
    }
    pub fn invalidation_poll(&self) -> Duration {
        Duration::from_millis(self.invalidation_poll_ms)
    }

    /// How long one outbox read vouches for which invalidations are owed: four polls,
    /// at least a second (docs/architecture.md, "What is guaranteed").
    /// How the accept loop bounds clients; a shutdown waits for requests in flight
    /// (each bounded by `REQUEST_TIMEOUT_MS`) and a little more.
    pub fn serve_limits(&self) -> crate::http::serve::ServeLimits {
        crate::http::serve::ServeLimits {
            header_read_timeout: Duration::from_millis(self.http_header_read_timeout_ms),
            max_connections: usize::try_from(self.http_max_connections).unwrap_or(usize::MAX),
            shutdown_patience: Duration::from_millis(self.request_timeout_ms)
                + Duration::from_secs(2),
        }
    }

    pub fn outbox_lease(&self) -> Duration {
        (self.invalidation_poll() * 4).max(Duration::from_secs(1))
    }

    /// The defaults, as `cacheme-api` with an empty environment would use them.
    pub fn defaults() -> Self {
        Cli::parse_from(["cacheme-api"]).config
    }
}

/// Which origins CORS lets in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// Same origin only: no CORS headers at all.
    None,
    Any,
    List(Vec<axum::http::HeaderValue>),
}

fn parse_cors_origins(raw: &str) -> Result<CorsOrigins, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(CorsOrigins::None);
    }
    if raw == "*" {
        return Ok(CorsOrigins::Any);
    }
    let mut origins = Vec::new();
    for origin in raw.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let valid_scheme = origin.starts_with("http://") || origin.starts_with("https://");
        if !valid_scheme || origin.ends_with('/') {
            return Err(format!(
                "{origin:?} is not an origin: expected scheme://host[:port] with no path, e.g. http://localhost:3000"
            ));
        }
        let value = axum::http::HeaderValue::from_str(origin)
            .map_err(|_| format!("{origin:?} contains characters not allowed in a header"))?;
        origins.push(value);
    }
    if origins.is_empty() {
        return Err("expected `*` or a comma-separated list of origins".into());
    }
    Ok(CorsOrigins::List(origins))
}

fn parse_key_prefix(raw: &str) -> Result<String, String> {
    let ok = !raw.is_empty()
        && raw.len() <= 64
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err("expected 1 to 64 characters from A-Z, a-z, 0-9, '-', '_', '.'".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("cacheme-api").chain(args.iter().copied()))
    }

    /// S7 of the second consistency review: `Config` derived `Debug` with the token and
    /// the passwords in it, and the token could be given on the command line.
    #[test]
    fn secrets_stay_out_of_debug_and_off_the_command_line() {
        let mut config = Config::defaults();
        config.database_url = "postgres://app:pg-s3cret@db/cacheme".into();
        config.redis_url = "redis://:redis-s3cret@cache:6379".into();
        config.admin_token = Some("tok-s3cret".into());
        // The secrets are of the shared type that redacts itself.
        let _: &Secret = &config.database_url;
        let shown = format!("{config:?} {:#?}", Cli::parse_from(["cacheme-api"]));
        for secret in ["pg-s3cret", "redis-s3cret", "tok-s3cret"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(format!("{config:?}").contains("admin_token: Some([redacted])"));
        assert!(format!("{config:?}").contains("cache_key_prefix: \"cacheme\""));
        assert!(parse(&["--admin-token", "x"]).is_err());
    }

    #[test]
    fn cors_accepts_star_and_lists_and_rejects_paths() {
        assert_eq!(parse_cors_origins("*"), Ok(CorsOrigins::Any));
        let list = parse_cors_origins("http://localhost:3000, https://a.example").expect("valid");
        assert!(matches!(list, CorsOrigins::List(ref v) if v.len() == 2));
        assert!(parse_cors_origins("localhost:3000").is_err());
        assert!(parse_cors_origins("http://a.example/").is_err());
        assert!(parse_cors_origins(" , ").is_err());
        assert_eq!(parse_cors_origins(""), Ok(CorsOrigins::None));
        assert_eq!(Config::defaults().cors_allowed_origins, CorsOrigins::None);
        assert!(!Config::defaults().allow_anonymous_writes);
    }

    #[test]
    fn key_prefix_rejects_glob_characters() {
        assert!(parse_key_prefix("cacheme").is_ok());
        assert!(parse_key_prefix("cache*").is_err());
        assert!(parse_key_prefix("").is_err());
    }

    #[test]
    fn out_of_range_settings_are_rejected_by_name() {
        let err = parse(&["--cache-ttl-seconds", "0"]).expect_err("0 is out of range");
        assert!(err.to_string().contains("cache-ttl-seconds"), "{err}");
        let err = parse(&["--bind-addr", "nope"]).expect_err("not an address");
        assert!(err.to_string().contains("bind-addr"), "{err}");
        let err = parse(&["--worker-threads", "2000"]).expect_err("too many");
        assert!(err.to_string().contains("worker-threads"), "{err}");
        assert_eq!(
            Config::defaults().worker_threads,
            0,
            "one per CPU by default"
        );
        assert!(parse(&["migrate"]).is_ok());
    }
}
