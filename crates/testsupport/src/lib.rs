//! Finds or starts the PostgreSQL and Redis servers that CacheMe's tests and
//! `cargo xtask dev` need, using only the standard library and the servers'
//! own binaries (Debian packages `postgresql` and `redis-server`).
//!
//! Order of preference: the URL in the environment (`DATABASE_URL`,
//! `REDIS_URL`), then a server on the standard local port, then a throwaway
//! server on a free port. Throwaway servers stop when their handle is dropped,
//! and a watchdog stops them if this process dies without dropping them.
//!

use anyhow::Context as _;

pub mod generated_docs;
mod postgres_server;
mod process;
mod redis_cluster;
mod redis_server;

pub use postgres_server::{PostgresServer, drop_database, with_database};
pub use process::{
    find_binary, free_port, port_open, require_binary, signal, stop_with_this_process, terminate,
};
pub use redis_cluster::RedisCluster;
pub use redis_server::RedisServer;

/// Standard local addresses tried before starting a throwaway server.
pub const DEFAULT_POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// What the API's integration tests print when `CACHEME_MUTATION` switched a mechanism
/// off in their process; `cargo xtask chaos --mutations` requires it in the output of a
/// test it expects to fail, so a failure for another reason cannot pass for a catch.
pub const MUTATION_ON_MARKER: &str = "cacheme test process: mutation switched on: ";

/// Where the stores are, and the throwaway servers (if any) that must live as long as this value.
#[derive(Debug)]
pub struct Stores {
    /// A URL to a database with the right to create databases (the `postgres` database).
    pub postgres_admin_url: String,
    pub redis_url: String,
    pub started_postgres: Option<PostgresServer>,
    pub started_redis: Option<RedisServer>,
}

impl Stores {
    /// Environment first, then standard local ports, then throwaway servers.
    ///
    /// `DATABASE_URL`, when set, names the server: the database in it is replaced by
    /// `postgres` for administration, since tests create a database each.
    pub fn find_or_start() -> anyhow::Result<Self> {
        let (postgres_admin_url, started_postgres) = match std::env::var("DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => (with_database(&url, "postgres"), None),
            _ if port_open(5432) => (DEFAULT_POSTGRES_ADMIN_URL.to_owned(), None),
            _ => {
                let server = PostgresServer::start()
                    .context("no PostgreSQL on 127.0.0.1:5432 and none could be started")?;
                (server.admin_url(), Some(server))
            }
        };
        let (redis_url, started_redis) = match std::env::var("REDIS_URL") {
            Ok(url) if !url.trim().is_empty() => (url, None),
            _ if port_open(6379) => (DEFAULT_REDIS_URL.to_owned(), None),
            _ => {
                let server = RedisServer::start()
                    .context("no Redis on 127.0.0.1:6379 and none could be started")?;
                (server.url(), Some(server))
            }
        };
        Ok(Self {
            postgres_admin_url,
            redis_url,
            started_postgres,
            started_redis,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_swapped_in_urls() {
        assert_eq!(
            with_database("postgres://u:p@h:1/app", "postgres"),
            "postgres://u:p@h:1/postgres"
        );
        assert_eq!(
            with_database("postgres://h/app?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:5", "x"), "postgres://h:5/x");
    }

    #[test]
    fn own_redis_can_be_killed_and_restarted() -> anyhow::Result<()> {
        let mut server = RedisServer::start()?;
        assert!(port_open(server.port()));
        server.kill()?;
        assert!(!port_open(server.port()));
        server.restart()?;
        assert!(port_open(server.port()));
        Ok(())
    }

    #[test]
    fn throwaway_postgres_starts_and_stops() -> anyhow::Result<()> {
        let server = PostgresServer::start()?;
        let port = server.port();
        assert!(port_open(port));
        assert!(server.admin_url().ends_with(&format!(":{port}/postgres")));
        drop(server);
        assert!(!port_open(port), "postgres still listens after drop");
        Ok(())
    }

    #[test]
    fn throwaway_postgres_restarts_on_the_same_port() -> anyhow::Result<()> {
        let mut server = PostgresServer::start()?;
        let port = server.port();
        let first = server.pid()?;
        server.stop()?;
        assert!(!port_open(port), "postgres still listens after stop");
        server.start_again()?;
        assert!(port_open(port));
        assert_ne!(server.pid()?, first);
        server.restart()?;
        assert!(port_open(port));
        Ok(())
    }

    #[test]
    fn missing_binaries_name_their_debian_package() {
        let err = require_binary("surely-not-a-real-binary", "some-package").expect_err("missing");
        assert!(err.to_string().contains("apt-get install some-package"));
    }
}
