//! `cargo xtask chaos`: a Jepsen/Elle-style consistency check of the API under faults.
//!
//! It starts its own PostgreSQL, Redis (a 3-master Redis Cluster with `--redis-cluster`)
//! and N API replicas, runs one sequential writer per hot product and several readers
//! (some abandoning requests), injects faults on a seeded schedule,
//! records every operation, then checks the history: no value that was never written, no stale
//! read past the coherence bound, convergence once quiet, and availability per fault kind.
//! Output: target/chaos/report.md, report.json, timeline.svg.

mod availability;
mod checker;
mod clients;
mod cluster;
mod converge;
mod faults;
mod flood;
mod history;
mod inject;
mod lifecycle;
mod link_faults;
mod mutations;
mod options;
mod proxy;
mod redis_faults;
mod replica_env;
mod report;
mod rng;
mod run;
mod timeline;
mod verdict;
mod workload;
mod writers;

pub use options::Args;
use options::Options;

fn seed_from_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64 % 1_000_000_000)
        .unwrap_or(1)
}

/// `cargo xtask chaos`; `typed` is what followed it on the command line, for the report.
pub fn chaos(args: Args, typed: &[String]) -> anyhow::Result<()> {
    run_checked(args.options(seed_from_time())?, typed)
}

fn run_checked(opts: Options, typed: &[String]) -> anyhow::Result<()> {
    if opts.mutations {
        return mutations::run(&opts, typed);
    }
    let report = run::run_once(&opts, typed)?;
    verdict::verdict(&opts, &report)
}
