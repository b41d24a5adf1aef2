//! The settings groups of [`super::Config`]. Each flag keeps the name, id and value name it
//! had before the groups (`--database-url <DATABASE_URL>`, ...): the environment variables and
//! the flags are the interface, the field names are not.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use cacheme_runtime::Secret;
use clap::Args;

use super::{CorsOrigins, RedisMode, parse_cors_origins, parse_key_prefix};

/// PostgreSQL: the connection, its pool and its waits, the schema and the seed.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "PostgreSQL")]
pub struct DatabaseConfig {
    /// PostgreSQL connection URL.
    #[arg(
        id = "database_url",
        long = "database-url",
        value_name = "DATABASE_URL",
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://postgres:postgres@localhost:5432/cacheme"
    )]
    pub url: Secret,

    /// Most connections in the PostgreSQL pool.
    #[arg(id = "db_max_connections", long = "db-max-connections", value_name = "DB_MAX_CONNECTIONS", env = "DB_MAX_CONNECTIONS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_connections: u32,

    /// Upper bound on one PostgreSQL statement, in milliseconds (`statement_timeout`, plus
    /// a client-side deadline 1 s later for a server that does not answer at all); past it
    /// a read answers 503 or a stale entry.
    #[arg(id = "db_statement_timeout_ms", long = "db-statement-timeout-ms", value_name = "DB_STATEMENT_TIMEOUT_MS", env = "DB_STATEMENT_TIMEOUT_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub statement_timeout_ms: u64,

    /// How long a request waits for a PostgreSQL connection before answering 503, in milliseconds.
    #[arg(id = "db_acquire_timeout_ms", long = "db-acquire-timeout-ms", value_name = "DB_ACQUIRE_TIMEOUT_MS", env = "DB_ACQUIRE_TIMEOUT_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub acquire_timeout_ms: u64,

    /// Most database loads (one per missed product and cache generation, shared by the
    /// requests that miss it meanwhile; background refreshes of stale entries too, at most
    /// half of them, at least one) running at once, counting those whose requests stopped waiting: past
    /// it a miss answers 503 with `Retry-After` (or a stale entry) instead of queueing
    /// another load.
    #[arg(id = "db_max_loads", long = "db-max-loads", value_name = "DB_MAX_LOADS", env = "DB_MAX_LOADS", default_value_t = 2048, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_loads: u32,

    /// How long start-up keeps retrying an unreachable PostgreSQL before giving up, in seconds.
    #[arg(id = "db_startup_timeout_seconds", long = "db-startup-timeout-seconds", value_name = "DB_STARTUP_TIMEOUT_SECONDS", env = "DB_STARTUP_TIMEOUT_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub startup_timeout_seconds: u64,

    /// Extra delay added to each database read, in milliseconds, to make the cost of a miss visible.
    #[arg(id = "simulated_db_latency_ms", long = "simulated-db-latency-ms", value_name = "SIMULATED_DB_LATENCY_MS", env = "SIMULATED_DB_LATENCY_MS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub simulated_latency_ms: u64,

    /// Run database migrations at start-up (safe with several replicas: they take an advisory lock).
    #[arg(long, env = "MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,

    /// JSON array of products (`id`, `name`, `description`, `price`, `category`) written at
    /// start, once per distinct file: a restart or a new replica with the same file changes
    /// nothing, so it never reverts an edit made since; a changed file is applied again.
    #[arg(long, env = "SEED_FILE")]
    pub seed_file: Option<PathBuf>,
}

/// Redis (L2): the connection, its timeout and the circuit breaker.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Redis")]
pub struct RedisConfig {
    /// Redis connection URL (the L2 cache); with REDIS_MODE=cluster, a comma-separated
    /// list of seed nodes of the cluster.
    #[arg(
        id = "redis_url",
        long = "redis-url",
        value_name = "REDIS_URL",
        env = "REDIS_URL",
        hide_env_values = true,
        default_value = "redis://localhost:6379"
    )]
    pub url: Secret,

    /// `single` (one Redis) or `cluster` (a Redis Cluster: hash-tagged `v2` keys, sharded
    /// pub/sub, a breaker per master).
    #[arg(id = "redis_mode", long = "redis-mode", value_name = "REDIS_MODE", env = "REDIS_MODE", value_enum, default_value_t = RedisMode::Single)]
    pub mode: RedisMode,

    /// Upper bound on any single Redis call, in milliseconds; past it the request goes to PostgreSQL.
    #[arg(id = "redis_timeout_ms", long = "redis-timeout-ms", value_name = "REDIS_TIMEOUT_MS", env = "REDIS_TIMEOUT_MS", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub timeout_ms: u64,

    /// Consecutive Redis failures that open the circuit breaker (reads then skip Redis),
    /// once they have also gone on for REDIS_BREAKER_FAILING_MS.
    #[arg(id = "redis_breaker_failures", long = "redis-breaker-failures", value_name = "REDIS_BREAKER_FAILURES", env = "REDIS_BREAKER_FAILURES", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub breaker_failures: u32,

    /// How long Redis calls must keep failing, with no success between, before the breaker
    /// opens, in milliseconds: one slow reply (a fork for an RDB save, another tenant's
    /// slow command) fails every call in flight at once and must not switch the cache off.
    #[arg(id = "redis_breaker_failing_ms", long = "redis-breaker-failing-ms", value_name = "REDIS_BREAKER_FAILING_MS", env = "REDIS_BREAKER_FAILING_MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub breaker_failing_ms: u64,

    /// How long an open breaker skips Redis before one probe call, in milliseconds.
    #[arg(id = "redis_breaker_cooldown_ms", long = "redis-breaker-cooldown-ms", value_name = "REDIS_BREAKER_COOLDOWN_MS", env = "REDIS_BREAKER_COOLDOWN_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub breaker_cooldown_ms: u64,
}

/// What is cached, for how long, and how invalidations travel.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Cache")]
pub struct CacheConfig {
    /// Time to live of a cached product, in seconds.
    #[arg(id = "cache_ttl_seconds", long = "cache-ttl-seconds", value_name = "CACHE_TTL_SECONDS", env = "CACHE_TTL_SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub ttl_seconds: u64,

    /// Random spread applied to each TTL, in percent (0 disables it), so keys filled together do not expire together.
    #[arg(id = "cache_ttl_jitter_percent", long = "cache-ttl-jitter-percent", value_name = "CACHE_TTL_JITTER_PERCENT", env = "CACHE_TTL_JITTER_PERCENT", default_value_t = 10, value_parser = clap::value_parser!(u8).range(0..=50))]
    pub ttl_jitter_percent: u8,

    /// Prefix of every Redis key this service owns; `DELETE /cache/clear` removes only keys under it.
    #[arg(id = "cache_key_prefix", long = "cache-key-prefix", value_name = "CACHE_KEY_PREFIX", env = "CACHE_KEY_PREFIX", default_value = "cacheme", value_parser = parse_key_prefix)]
    pub key_prefix: String,

    /// How long an unknown id is remembered as absent, in seconds (0 disables negative caching).
    #[arg(long, env = "NEGATIVE_TTL_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub negative_ttl_seconds: u64,

    /// After its TTL, an entry is still served for this many seconds while one background refresh runs (none while half of `DB_MAX_LOADS` are refreshes).
    #[arg(id = "cache_stale_while_revalidate_seconds", long = "cache-stale-while-revalidate-seconds", value_name = "CACHE_STALE_WHILE_REVALIDATE_SECONDS", env = "CACHE_STALE_WHILE_REVALIDATE_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub stale_while_revalidate_seconds: u64,

    /// After its TTL, an entry is still served for this many seconds when PostgreSQL fails.
    #[arg(id = "cache_stale_if_error_seconds", long = "cache-stale-if-error-seconds", value_name = "CACHE_STALE_IF_ERROR_SECONDS", env = "CACHE_STALE_IF_ERROR_SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=604_800))]
    pub stale_if_error_seconds: u64,

    /// Least time between two `DELETE /cache/clear`, in milliseconds (one runs at a time
    /// in any case): a clear empties every replica's L1, so a loop of them would switch
    /// the cache off.
    #[arg(id = "cache_clear_interval_ms", long = "cache-clear-interval-ms", value_name = "CACHE_CLEAR_INTERVAL_MS", env = "CACHE_CLEAR_INTERVAL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub clear_interval_ms: u64,

    /// How often every replica reads the invalidation outbox, in milliseconds: the bound
    /// on how long another replica may serve an entry whose invalidation could not reach Redis.
    #[arg(long, env = "INVALIDATION_POLL_MS", default_value_t = 250, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub invalidation_poll_ms: u64,

    /// Test-only, unsafe: store cache fills without checking that no write happened since
    /// the row was read. Exists so the chaos checker can prove it detects stale reads.
    #[arg(long, env = "UNSAFE_SKIP_FILL_CHECK", default_value_t = false, action = clap::ArgAction::Set, hide = true)]
    pub unsafe_skip_fill_check: bool,
}

/// The in-process tier (L1) in front of Redis.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "In-process tier (L1)")]
pub struct MemoryTierConfig {
    /// Keep an in-process tier (L1) in front of Redis.
    #[arg(id = "l1_enabled", long = "l1-enabled", value_name = "L1_ENABLED", env = "L1_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub enabled: bool,

    /// Time to live of an L1 entry, in milliseconds.
    #[arg(id = "l1_ttl_ms", long = "l1-ttl-ms", value_name = "L1_TTL_MS", env = "L1_TTL_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub ttl_ms: u64,

    /// Memory bound of L1, in bytes (each entry weighs its text plus 360 bytes).
    #[arg(id = "l1_max_bytes", long = "l1-max-bytes", value_name = "L1_MAX_BYTES", env = "L1_MAX_BYTES", default_value_t = 16 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..))]
    pub max_bytes: u64,
}

/// The HTTP server: where it listens, its limits, what else it serves.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "HTTP")]
pub struct HttpConfig {
    /// Address and port to listen on.
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0:8000")]
    pub bind_addr: SocketAddr,

    /// Upper bound on one request, in milliseconds; past it the client gets 503 (a write
    /// that already started still completes, with its invalidation).
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub request_timeout_ms: u64,

    /// Longest wait for a request's headers, and for the next request on an idle
    /// keep-alive connection, in milliseconds: a slow or idle client is cut off. Longer
    /// than the idle timeout of the proxies in front (Traefik 90 s, nginx 60 s): a proxy
    /// that reuses a connection the backend has just closed answers 502.
    #[arg(id = "http_header_read_timeout_ms", long = "http-header-read-timeout-ms", value_name = "HTTP_HEADER_READ_TIMEOUT_MS", env = "HTTP_HEADER_READ_TIMEOUT_MS", default_value_t = 120_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub header_read_timeout_ms: u64,

    /// Connections served at once; more wait in the kernel's accept queue until one
    /// closes (keep it under the process's open-file limit).
    #[arg(id = "http_max_connections", long = "http-max-connections", value_name = "HTTP_MAX_CONNECTIONS", env = "HTTP_MAX_CONNECTIONS", default_value_t = 2048, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,

    /// Threads that run requests; 0 means one per CPU the process may use (its cgroup quota
    /// included).
    #[arg(long, env = "WORKER_THREADS", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=1024))]
    pub worker_threads: u16,

    /// Serve the built frontend from this folder on the same port.
    #[arg(long, env = "STATIC_DIR")]
    pub static_dir: Option<PathBuf>,

    /// Origins allowed by CORS, comma-separated, or `*` for any; empty (the default) for
    /// none: only pages served from the API's own origin may call it.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", default_value = "", value_parser = parse_cors_origins)]
    pub cors_allowed_origins: CorsOrigins,
}

/// Who may write.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Writes")]
pub struct WriteConfig {
    /// `ADMIN_TOKEN`, from the environment only (a flag would show in `ps` and
    /// `/proc/*/cmdline`): when set, writes and `DELETE /cache/clear` need
    /// `Authorization: Bearer <token>`; reads never do. Without it writes are refused
    /// unless ALLOW_ANONYMOUS_WRITES is set.
    #[arg(skip = std::env::var("ADMIN_TOKEN").ok().map(Secret::from))]
    pub admin_token: Option<Secret>,

    /// Let anyone write when no ADMIN_TOKEN is set (a local demo only; logged at start).
    #[arg(id = "allow_anonymous_writes", long = "allow-anonymous-writes", value_name = "ALLOW_ANONYMOUS_WRITES", env = "ALLOW_ANONYMOUS_WRITES", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_anonymous: bool,
}

// The fields keep the unit in their name, as the environment variables spell it; the
// rest of the service reads the times as `Duration`s, from here only.

impl DatabaseConfig {
    pub fn statement_timeout(&self) -> Duration {
        Duration::from_millis(self.statement_timeout_ms)
    }
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.acquire_timeout_ms)
    }
    pub fn startup_timeout(&self) -> Duration {
        Duration::from_secs(self.startup_timeout_seconds)
    }
    pub fn simulated_latency(&self) -> Duration {
        Duration::from_millis(self.simulated_latency_ms)
    }
}

impl RedisConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
    pub fn breaker_failing_for(&self) -> Duration {
        Duration::from_millis(self.breaker_failing_ms)
    }
    pub fn breaker_cooldown(&self) -> Duration {
        Duration::from_millis(self.breaker_cooldown_ms)
    }
}

impl CacheConfig {
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_seconds)
    }
    pub fn negative_ttl(&self) -> Duration {
        Duration::from_secs(self.negative_ttl_seconds)
    }
    pub fn stale_while_revalidate(&self) -> Duration {
        Duration::from_secs(self.stale_while_revalidate_seconds)
    }
    pub fn stale_if_error(&self) -> Duration {
        Duration::from_secs(self.stale_if_error_seconds)
    }
    pub fn clear_interval(&self) -> Duration {
        Duration::from_millis(self.clear_interval_ms)
    }
    pub fn invalidation_poll(&self) -> Duration {
        Duration::from_millis(self.invalidation_poll_ms)
    }
}

impl MemoryTierConfig {
    pub fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms)
    }
}

impl HttpConfig {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }
}
