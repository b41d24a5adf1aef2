//! What every part of the run uses: the connection counts, the programs, progress lines
//! and file writes.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use cacheme_testsupport::require_binary;

/// Connections of the main scenarios and of the Redis baseline.
pub const CONNECTIONS: u32 = 50;
/// Simultaneous GETs of one cold product in the stampede.
pub const STAMPEDE: usize = 500;
/// Each API process's pool, and pgbench's clients.
pub const DB_MAX_CONNECTIONS: u32 = 10;

pub fn step(what: &str) {
    eprintln!("==> {what}");
}

pub fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The load generator and the baselines' programs.
#[derive(Debug)]
pub struct Programs {
    pub wrk: PathBuf,
    pub nginx: PathBuf,
    pub redis_benchmark: PathBuf,
    pub pgbench: PathBuf,
    pub psql: PathBuf,
}

impl Programs {
    pub fn find() -> anyhow::Result<Self> {
        Ok(Self {
            wrk: require_binary("wrk", "wrk")?,
            // Debian puts nginx in /usr/sbin, which a non-root PATH may lack.
            nginx: require_binary("nginx", "nginx").or_else(|e| {
                let sbin = PathBuf::from("/usr/sbin/nginx");
                if sbin.is_file() { Ok(sbin) } else { Err(e) }
            })?,
            redis_benchmark: require_binary("redis-benchmark", "redis-tools")?,
            pgbench: require_binary("pgbench", "postgresql")?,
            psql: require_binary("psql", "postgresql-client")?,
        })
    }
}
