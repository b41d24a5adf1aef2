//! What the replicas are started with: the settings of a run (tuned, or the API's
//! shipped defaults) and every variable a replica gets, named in one place and held to
//! the ones the API reads by the tests below.

/// The replicas' keys in Redis.
pub const KEY_PREFIX: &str = "chaos";

/// Settings every replica gets beyond DATABASE_URL, REDIS_URL and BIND_ADDR.
pub const API_ENV: &[(&str, &str)] = &[
    ("CACHE_KEY_PREFIX", KEY_PREFIX),
    ("L1_ENABLED", "true"),
    ("SIMULATED_DB_LATENCY_MS", "2"),
    ("REDIS_TIMEOUT_MS", "50"),
    ("DB_MAX_CONNECTIONS", "4"),
    // Entries age within a run (issue #22, C3). A fill is fresh for 2–6 s (4 s ± 50 %),
    // then served for 1 s while one refresh runs, then only when PostgreSQL fails (until
    // 30 s). A replica looks an entry up in Redis when its L1 copy (5 s) expires: by the
    // jitter, a quarter of the entries are still fresh then, a quarter in the refresh
    // window and half past it, so both stale paths run, and a PostgreSQL fault meets
    // entries that only stale-if-error may serve. (A longer refresh window would answer
    // most reads during a short fault itself.)
    ("CACHE_TTL_SECONDS", "4"),
    ("CACHE_TTL_JITTER_PERCENT", "50"),
    ("CACHE_STALE_WHILE_REVALIDATE_SECONDS", "1"),
    ("CACHE_STALE_IF_ERROR_SECONDS", "30"),
    // An indeterminate write must commit or fail within the writers' quarantine (4 s):
    // at most 1 s waiting for a connection, then a statement bounded at 1.5 s (plus the
    // API's 1 s client-side deadline).
    ("DB_ACQUIRE_TIMEOUT_MS", "1000"),
    ("DB_STATEMENT_TIMEOUT_MS", "1500"),
    ("MIGRATE_ON_START", "true"),
    ("RUST_LOG", "warn"),
    // The writers carry no token: a throwaway cluster on loopback.
    ("ALLOW_ANONYMOUS_WRITES", "true"),
];

/// `--shipped-defaults`: only what the harness needs; every cache, pool and timeout
/// setting as the API ships it.
pub const SHIPPED_ENV: &[(&str, &str)] = &[
    ("CACHE_KEY_PREFIX", KEY_PREFIX),
    ("MIGRATE_ON_START", "true"),
    ("RUST_LOG", "warn"),
    ("ALLOW_ANONYMOUS_WRITES", "true"),
];

/// Where a replica listens: its own port, set when it starts.
pub const BIND_ADDR: &str = "BIND_ADDR";

/// What a replica's variables depend on.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaEnv<'a> {
    pub shipped_defaults: bool,
    pub database_url: &'a str,
    /// One Redis's URL, or a cluster's nodes joined by commas.
    pub redis_url: &'a str,
    pub redis_cluster: bool,
    pub mutation: Option<&'a str>,
    pub unsafe_skip_fill_check: bool,
}

impl ReplicaEnv<'_> {
    /// Every variable a replica gets but [`BIND_ADDR`]; the one place that names them
    /// (the tests hold each against the ones the API reads).
    pub fn vars(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = api_env(self.shipped_defaults)
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        env.push(("DATABASE_URL".into(), self.database_url.to_owned()));
        env.push(("REDIS_URL".into(), self.redis_url.to_owned()));
        if self.redis_cluster {
            env.push(("REDIS_MODE".into(), "cluster".into()));
        }
        if let Some(mutation) = self.mutation {
            env.push(("CACHEME_MUTATION".into(), mutation.into()));
        }
        if self.unsafe_skip_fill_check {
            env.push(("UNSAFE_SKIP_FILL_CHECK".into(), "true".into()));
        }
        env
    }
}

/// The settings replicas run with (beyond the stores' URLs and BIND_ADDR).
pub fn api_env(shipped_defaults: bool) -> &'static [(&'static str, &'static str)] {
    if shipped_defaults {
        SHIPPED_ENV
    } else {
        API_ENV
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cacheme_harness::api_env::unknown_names;

    /// A misspelt name would run the replicas on the API's default for it, unnoticed.
    #[test]
    fn every_variable_a_replica_gets_is_one_the_api_reads() {
        let known = cacheme_api::env_names();
        for shipped_defaults in [false, true] {
            for redis_cluster in [false, true] {
                let env = ReplicaEnv {
                    shipped_defaults,
                    database_url: "postgres://x",
                    redis_url: "redis://x",
                    redis_cluster,
                    mutation: Some("listener-ignores-messages"),
                    unsafe_skip_fill_check: true,
                }
                .vars();
                let names = env.iter().map(|(name, _)| name.as_str()).chain([BIND_ADDR]);
                assert_eq!(unknown_names(names, &known), [""; 0]);
            }
        }
    }
}
