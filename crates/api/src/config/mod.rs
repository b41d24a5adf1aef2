//! Settings, all from the environment (or the matching flag, except the admin token);
//! `cacheme-api --help` lists them.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

mod groups;
pub use groups::{
    CacheConfig, DatabaseConfig, HttpConfig, MemoryTierConfig, RedisConfig, WriteConfig,
};

pub use crate::cache::keys::RedisMode;

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

/// Every setting of the service, in groups (each a heading of `--help` and a table of
/// `docs/settings.md`). Durations are whole milliseconds or seconds, as named. The
/// secrets (the URLs carry passwords) are [`Secret`](cacheme_runtime::Secret)s, whose `Debug` is `[redacted]`, so
/// a `tracing::debug!(?config)` cannot leak them.
#[derive(Clone, Debug, Args)]
pub struct Config {
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub redis: RedisConfig,
    #[command(flatten)]
    pub cache: CacheConfig,
    #[command(flatten)]
    pub l1: MemoryTierConfig,
    #[command(flatten)]
    pub http: HttpConfig,
    #[command(flatten)]
    pub writes: WriteConfig,
}

impl Config {
    pub fn expiry(&self) -> crate::cache::expiry::ExpiryPolicy {
        crate::cache::expiry::ExpiryPolicy {
            ttl: self.cache.ttl(),
            jitter_percent: self.cache.ttl_jitter_percent,
            stale_while_revalidate: self.cache.stale_while_revalidate(),
            stale_if_error: self.cache.stale_if_error(),
            negative_ttl: self.cache.negative_ttl(),
        }
    }
    pub fn db_settings(&self) -> crate::store::DatabaseSettings {
        crate::store::DatabaseSettings {
            max_connections: self.database.max_connections,
            acquire_timeout: self.database.acquire_timeout(),
            statement_timeout: self.database.statement_timeout(),
            simulated_latency: self.database.simulated_latency(),
        }
    }

    /// How long one outbox read vouches for which invalidations are owed: four polls,
    /// at least a second (docs/architecture.md, "What is guaranteed").
    pub fn outbox_lease(&self) -> Duration {
        (self.cache.invalidation_poll() * 4).max(Duration::from_secs(1))
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
        config.database.url = "postgres://app:pg-s3cret@db/cacheme".into();
        config.redis.url = "redis://:redis-s3cret@cache:6379".into();
        config.writes.admin_token = Some("tok-s3cret".into());
        // The secrets are of the shared type that redacts itself.
        let _: &cacheme_runtime::Secret = &config.database.url;
        let shown = format!("{config:?} {:#?}", Cli::parse_from(["cacheme-api"]));
        for secret in ["pg-s3cret", "redis-s3cret", "tok-s3cret"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(format!("{config:?}").contains("admin_token: Some([redacted])"));
        assert!(format!("{config:?}").contains("key_prefix: \"cacheme\""));
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
        assert_eq!(
            Config::defaults().http.cors_allowed_origins,
            CorsOrigins::None
        );
        assert!(!Config::defaults().writes.allow_anonymous);
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
            Config::defaults().http.worker_threads,
            0,
            "one per CPU by default"
        );
        assert!(parse(&["migrate"]).is_ok());
    }
}
