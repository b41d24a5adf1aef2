//! `cargo xtask chaos` options.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub duration_s: u64,
    pub seed: u64,
    pub replicas: usize,
    pub readers: usize,
    pub cold_readers: usize,
    pub products: u32,
    pub coherence_bound_ms: u64,
    pub release: bool,
    pub unsafe_skip_fill_check: bool,
    pub expect_violations: bool,
    pub abandon_percent: f64,
    pub quarantine_ms: u64,
    pub write_think_ms: u64,
    pub api_bin: Option<PathBuf>,
    pub history: bool,
    pub redis_cluster: bool,
    /// Replicas run with this mechanism switched off (`CACHEME_MUTATION`).
    pub mutation: Option<String>,
    /// Run once per mutation and report which the checker catches.
    pub mutations: bool,
    /// Only these fault kinds (`--faults`); empty: the whole deck.
    pub faults: Vec<String>,
    /// The API's shipped defaults instead of the chaos settings.
    pub shipped_defaults: bool,
}

/// The consistency check under faults (Jepsen/Elle style): its own PostgreSQL, Redis and
/// API replicas, writers, readers and seeded faults, then the history checked; report in
/// target/chaos/.
#[derive(Debug, Clone, PartialEq, clap::Parser)]
#[command(name = "chaos", bin_name = "cargo xtask chaos")]
pub struct Args {
    /// Seconds of load and faults (10..=3600).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub duration: u64,
    /// Seed of the workload and the fault schedule [default: from the clock, printed].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// API replicas (2..=8).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub replicas: usize,
    /// Concurrent readers (1..=64).
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub readers: usize,
    /// Readers of the cold products only (0..=64; cold products are the seeded ids after
    /// the hot ones, written every few seconds so their entries age).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub cold_readers: usize,
    /// Hot products, one sequential writer each (1..=15).
    #[arg(long, value_name = "N", default_value_t = 6)]
    pub products: u32,
    /// A read missing a write another replica acknowledged more than this long before
    /// it is stale.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub coherence_bound_ms: u64,
    /// Share of requests abandoned half-way (0..=100).
    #[arg(long, value_name = "P", default_value_t = 5.0)]
    pub abandon_percent: f64,
    /// After a write of unknown outcome, its writer waits this long before the next
    /// [default: 4000; 9000 with --shipped-defaults, past their 2 s pool wait, 5 s
    /// statement timeout and 1 s client-side deadline].
    #[arg(long, value_name = "MS")]
    pub quarantine_ms: Option<u64>,
    /// Run the replicas with the API's shipped defaults (1 h TTL, 10 connections, 5 s
    /// statement timeout…) instead of the chaos settings; writes stay anonymous.
    #[arg(long)]
    pub shipped_defaults: bool,
    /// Writers pause up to this long before half their writes (the rest follow at once).
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub write_think_ms: u64,
    /// Build and run the API in release mode.
    #[arg(long)]
    pub release: bool,
    /// Run this API binary (skip the build).
    #[arg(long, value_name = "PATH")]
    pub api_bin: Option<PathBuf>,
    /// Also write history.jsonl: every operation.
    #[arg(long)]
    pub history: bool,
    /// Run against a Redis Cluster (3 masters, 1 replica each) in cluster mode, with the
    /// cluster's fault kinds (a master killed, CLUSTER FAILOVER, a hot slot migrated)
    /// instead of the single Redis's.
    #[arg(long)]
    pub redis_cluster: bool,
    /// Replicas get UNSAFE_SKIP_FILL_CHECK=true.
    #[arg(long)]
    pub unsafe_skip_fill_check: bool,
    /// Exit 0 only if a violation was found: proves the checker can fail.
    #[arg(long)]
    pub expect_violations: bool,
    /// Replicas run with one consistency mechanism switched off (`CACHEME_MUTATION`,
    /// the API built with its `mutations` feature); see `--mutations` for the names.
    #[arg(long, value_name = "NAME", conflicts_with = "mutations")]
    pub mutation: Option<String>,
    /// One run per mutation (each mechanism switched off in turn, `--duration` each, or
    /// for the few the checker cannot see, the ordinary test that holds their race
    /// open): passes only if every one of them is caught.
    #[arg(long, conflicts_with_all = ["expect_violations", "unsafe_skip_fill_check"])]
    pub mutations: bool,
    /// Inject only these fault kinds (comma-separated names as the report spells them,
    /// e.g. `redis-partition,api-sigstop`) [default: every kind the run's Redis offers].
    /// `--mutations` picks its own per mutation.
    #[arg(
        long,
        value_name = "KINDS",
        value_delimiter = ',',
        conflicts_with = "mutations"
    )]
    pub faults: Vec<String>,
}

impl Args {
    /// The options, checked; `default_seed` when no `--seed` was given.
    pub fn options(self, default_seed: u64) -> anyhow::Result<Options> {
        let o = Options {
            duration_s: self.duration,
            seed: self.seed.unwrap_or(default_seed),
            replicas: self.replicas,
            readers: self.readers,
            cold_readers: self.cold_readers,
            products: self.products,
            coherence_bound_ms: self.coherence_bound_ms,
            release: self.release,
            unsafe_skip_fill_check: self.unsafe_skip_fill_check,
            expect_violations: self.expect_violations,
            abandon_percent: self.abandon_percent,
            quarantine_ms: self.quarantine_ms.unwrap_or(if self.shipped_defaults {
                9000
            } else {
                4000
            }),
            write_think_ms: self.write_think_ms,
            api_bin: self.api_bin,
            history: self.history,
            redis_cluster: self.redis_cluster,
            mutation: self.mutation,
            mutations: self.mutations,
            faults: self.faults,
            shipped_defaults: self.shipped_defaults,
        };
        super::faults::deck(o.redis_cluster, &o.faults)?;
        anyhow::ensure!(
            (10..=3600).contains(&o.duration_s),
            "--duration must be 10..=3600 seconds"
        );
        anyhow::ensure!((2..=8).contains(&o.replicas), "--replicas must be 2..=8");
        anyhow::ensure!((1..=64).contains(&o.readers), "--readers must be 1..=64");
        anyhow::ensure!(o.cold_readers <= 64, "--cold-readers must be 0..=64");
        // The 15 seed products are the hot set's candidates.
        anyhow::ensure!((1..=15).contains(&o.products), "--products must be 1..=15");
        anyhow::ensure!(
            (0.0..=100.0).contains(&o.abandon_percent),
            "--abandon-percent must be 0..=100"
        );
        Ok(o)
    }
}

/// Parses `args` (what follows `cargo xtask chaos`) into checked options.
#[cfg(test)]
pub fn parse_options(args: &[String], default_seed: u64) -> anyhow::Result<Options> {
    let parsed = <Args as clap::Parser>::try_parse_from(
        std::iter::once("chaos").chain(args.iter().map(String::as_str)),
    )?;
    parsed.options(default_seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn options_have_defaults_and_are_checked() -> anyhow::Result<()> {
        let o = parse_options(&[], 9)?;
        assert_eq!(
            (o.duration_s, o.seed, o.replicas, o.readers, o.products),
            (60, 9, 2, 8, 6)
        );
        assert_eq!(
            (o.coherence_bound_ms, o.quarantine_ms, o.write_think_ms),
            (1000, 4000, 100)
        );
        assert!(!o.release && !o.unsafe_skip_fill_check && !o.expect_violations);
        let o = parse_options(
            &args(
                "--duration 30 --seed 5 --replicas 3 --readers 2 --products 4 --coherence-bound-ms 500 --release --unsafe-skip-fill-check --expect-violations",
            ),
            9,
        )?;
        assert_eq!(
            (o.duration_s, o.seed, o.replicas, o.readers, o.products),
            (30, 5, 3, 2, 4)
        );
        assert!(o.release && o.unsafe_skip_fill_check && o.expect_violations);
        assert_eq!(o.coherence_bound_ms, 500);
        let o = parse_options(&args("--mutation nothing-pending"), 9)?;
        assert_eq!(o.mutation.as_deref(), Some("nothing-pending"));
        assert!(parse_options(&args("--mutations"), 9)?.mutations);
        let o = parse_options(&args("--shipped-defaults"), 9)?;
        assert!(o.shipped_defaults);
        assert_eq!(o.quarantine_ms, 9000);
        let o = parse_options(&args("--shipped-defaults --quarantine-ms 12000"), 9)?;
        assert_eq!(o.quarantine_ms, 12000);
        let o = parse_options(&args("--faults redis-partition,api-sigstop"), 9)?;
        assert_eq!(o.faults, ["redis-partition", "api-sigstop"]);
        for bad in [
            "--mutations --expect-violations",
            "--mutations --mutation nothing-pending",
            "--faults redis-what",
            "--redis-cluster --faults redis-partition",
            "--mutations --faults pg-latency",
            "--replicas 1",
            "--products 16",
            "--duration x",
            "--seed",
            "--what",
        ] {
            assert!(parse_options(&args(bad), 9).is_err(), "{bad}");
        }
        Ok(())
    }
}
