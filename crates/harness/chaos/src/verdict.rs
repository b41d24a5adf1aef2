//! Whether a run passes: no violation, convergence, a working cache, entries that aged,
//! reads answered outside fault windows; and its summary on stderr.

use std::path::Path;

use crate::{availability, checker::ViolationKind, options::Options, report, workload};

/// Below this share of 200 reads answered by a cache tier, the run fails: a build that
/// never caches, or leaves every written id pending for ever, is consistent but broken
/// (runs here answer about 85 % from a cache).
pub const MIN_CACHE_SHARE: f64 = 0.5;

/// Reads outside fault windows that must be answered, 200 or 404 (runs here: 99.99 %).
const MIN_QUIET_READS_OK: f64 = 0.99;

/// Whether the run's entries pass their TTL: with the chaos settings' short TTL (2–6 s)
/// and cold products to age, read by readers of their own (issue #22, C3).
fn entries_age(opts: &Options) -> bool {
    !opts.shipped_defaults && workload::cold_products(opts.products) > 0 && opts.cold_readers > 0
}

pub fn verdict(opts: &Options, report: &report::Report) -> anyhow::Result<()> {
    verdict_checking(opts, report, true)
}

/// The verdict, with or without the check that entries aged (a mutation run is judged
/// by what the mutation breaks: a run that merely failed to age its entries has not
/// caught it).
pub fn verdict_checking(
    opts: &Options,
    report: &report::Report,
    check_aging: bool,
) -> anyhow::Result<()> {
    let n = report.violations_total;
    if opts.expect_violations {
        // Stale reads, what the disabled mechanism lets through; a value never written
        // or a 404 would be another bug.
        let stale: usize = report
            .violations_by_kind
            .iter()
            .filter(|(kind, _)| {
                matches!(
                    kind,
                    ViolationKind::StaleSameReplica | ViolationKind::StaleCrossReplica
                )
            })
            .map(|(_, n)| n)
            .sum();
        anyhow::ensure!(
            stale > 0,
            "--expect-violations: the checker found no stale read ({n} violations of other kinds)"
        );
        return Ok(());
    }
    anyhow::ensure!(
        n == 0,
        "{n} consistency violations (see target/chaos/report.md)"
    );
    anyhow::ensure!(
        report.convergence.ok,
        "the replicas did not converge (see target/chaos/report.md)"
    );
    anyhow::ensure!(
        report.cache_share >= MIN_CACHE_SHARE,
        "only {:.1} % of reads were answered by a cache (at least {:.0} % expected): \
         consistent, but the cache is not working (see target/chaos/report.md)",
        report.cache_share * 100.0,
        MIN_CACHE_SHARE * 100.0
    );
    // After the cache share: a build that never caches has nothing to age either.
    // Waived only when no replica's counters could be read.
    anyhow::ensure!(
        !check_aging
            || !entries_age(opts)
            || report.aging.unread >= opts.replicas
            || report.aging.stale_served + report.aging.stale_if_error_served > 0,
        "no entry was served past its TTL: the cold products' entries did not age, so \
         the stale windows never ran under the checker (see target/chaos/report.md)"
    );
    if let Some(quiet) = report
        .availability
        .iter()
        .find(|a| a.fault == availability::NO_FAULT)
        && let Some(share) = quiet.read_ok_share
    {
        anyhow::ensure!(
            share >= MIN_QUIET_READS_OK,
            "only {:.2} % of reads outside fault windows were answered (at least {:.0} % \
             expected; see target/chaos/report.md)",
            share * 100.0,
            MIN_QUIET_READS_OK * 100.0
        );
    }
    Ok(())
}

pub fn summarize(r: &report::Report, out: &Path) {
    eprintln!("==> availability of reads by fault:");
    for a in &r.availability {
        eprintln!(
            "    {:<28} reads {:>8}  200: {:>8}  p99 {:>8} ms",
            a.fault,
            a.reads,
            a.read_ok_share
                .map_or("–".into(), |s| format!("{:.2}%", s * 100.0)),
            a.read_p99_ms.map_or("–".into(), |v| format!("{v:.1}")),
        );
    }
    for (kind, n) in &r.violations_by_kind {
        eprintln!("==> {kind:?}: {n}");
    }
    if !r.convergence.ok {
        for p in r.convergence.problems.iter().chain(&r.convergence.burst) {
            eprintln!("==> convergence: {p}");
        }
    }
    eprintln!("==> report: {}", out.join("report.md").display());
}
