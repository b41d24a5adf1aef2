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
mod client;
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
mod report;
mod rng;
mod timeline;
mod workload;
mod writers;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Duration, Instant},
};

use anyhow::Context as _;

use cacheme_harness::{cargo, run, workspace_root};
use checker::ViolationKind;
pub use options::Args;
use options::Options;
use workload::{Progress, Workload};

/// The run's clock: microseconds since it started, shared by every thread.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    pub fn us(&self) -> u64 {
        self.0.elapsed().as_micros() as u64
    }
}

fn seed_from_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64 % 1_000_000_000)
        .unwrap_or(1)
}

/// Stops the clients when the run ends, however it ends.
struct StopOnDrop(Arc<Progress>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Relaxed);
    }
}

/// `cargo xtask chaos`; `typed` is what followed it on the command line, for the report.
pub fn chaos(args: Args, typed: &[String]) -> anyhow::Result<()> {
    run_checked(args.options(seed_from_time())?, typed)
}

fn run_checked(opts: Options, typed: &[String]) -> anyhow::Result<()> {
    if opts.mutations {
        return mutations::run(&opts, typed);
    }
    let report = run_once(&opts, typed)?;
    verdict(&opts, &report)
}

/// One run: starts the stores and the replicas, runs the workload and the faults, checks
/// the history and writes the report.
pub(crate) fn run_once(opts: &Options, typed: &[String]) -> anyhow::Result<report::Report> {
    let opts = opts.clone();
    let command = format!("cargo xtask chaos {}", typed.join(" "));
    eprintln!(
        "==> chaos: seed {} (rerun with --seed {})",
        opts.seed, opts.seed
    );
    let root = workspace_root();
    cacheme_harness::prereqs::check(&root, "chaos", cacheme_harness::prereqs::CHAOS)?;
    let out = root.join("target").join("chaos");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let bin = api_binary(&root, &opts)?;

    eprintln!(
        "==> starting PostgreSQL, Redis and {} replicas",
        opts.replicas
    );
    let mut cluster = cluster::Cluster::start(
        &bin,
        opts.replicas,
        opts.unsafe_skip_fill_check,
        opts.mutation.as_deref(),
        opts.redis_cluster,
        opts.shipped_defaults,
        &out,
    )?;
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let clock = Clock(Instant::now());
    let w = Workload {
        ports: cluster.ports(),
        products: opts.products,
        // Entries age only with the chaos settings' short TTL; the shipped 1 h never passes.
        cold: if opts.shipped_defaults {
            0
        } else {
            workload::cold_products(opts.products)
        },
        readers: opts.readers,
        cold_readers: opts.cold_readers,
        abandon_percent: opts.abandon_percent,
        quarantine: Duration::from_millis(opts.quarantine_ms),
        write_think_ms: opts.write_think_ms,
        seed: opts.seed,
    };
    let mut history = workload::initial_writes(&w, clock)?;
    eprintln!(
        "==> seq 0 written to products 1..={} ({} hot, {} cold); running for {} s",
        w.written_products(),
        w.products,
        w.cold,
        opts.duration_s
    );

    let run_start = Instant::now();
    let run_end = run_start + Duration::from_secs(opts.duration_s);
    let progress = Arc::new(Progress::default());
    let stopper = StopOnDrop(Arc::clone(&progress));
    let current = Arc::new(Mutex::new("none".to_owned()));
    let clients = workload::spawn(&w, clock, &progress)?;
    let printer = spawn_progress(Arc::clone(&progress), Arc::clone(&current), run_start);
    let deck = faults::deck(opts.redis_cluster, &opts.faults)?;
    let plan = faults::plan_from(
        &deck,
        opts.seed,
        opts.duration_s * 1000,
        opts.replicas,
        opts.products,
    );
    // Faults stop 3 s before the end, so the run ends quiet.
    let faults = inject::run(
        &mut cluster,
        &plan,
        clock,
        run_end - Duration::from_secs(3),
        &current,
    )?;
    std::thread::sleep(run_end.saturating_duration_since(Instant::now()));
    drop(stopper);
    for handle in clients {
        history.extend(
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("a client thread panicked"))?,
        );
    }
    let _ = printer.join();
    let run_us = clock.us();
    history.sort_by_key(|op| (op.invoke_us, op.complete_us));

    eprintln!("==> clients stopped; checking convergence");
    let mut convergence = converge::converge(&cluster, &history, w.written_products());
    let aging = converge::aging(&cluster);
    let (burst, burst_ok) = converge::burst(&cluster);
    convergence.burst = burst;
    convergence.ok &= burst_ok;
    convergence.last_fault_end_s = faults.last().map(|f| f.end_us as f64 / 1e6);
    let restarts: u32 = cluster
        .replicas
        .iter()
        .map(|r| r.starts.saturating_sub(1))
        .sum();
    drop(cluster);

    eprintln!("==> checking {} operations", history.len());
    let checked = checker::check(&history, opts.coherence_bound_ms * 1000);
    let stale = checked
        .violations
        .iter()
        .filter(|v| {
            matches!(
                v.kind,
                ViolationKind::StaleSameReplica | ViolationKind::StaleCrossReplica
            )
        })
        .count();
    let totals = report::totals(&history);
    let chances = totals.writes_acknowledged * opts.replicas as u64;
    let (stale_read_rate, upper_bound) = availability::stale_rate(stale as u64, chances);
    let cached: u64 = totals
        .reads_by_source
        .iter()
        .filter(|(source, _)| source.starts_with("cache"))
        .map(|(_, n)| n)
        .sum();
    let cache_share = cached as f64 / totals.reads_ok.max(1) as f64;
    let mut by_kind: Vec<(ViolationKind, usize)> = Vec::new();
    for kind in [
        ViolationKind::NeverWritten,
        ViolationKind::StaleSameReplica,
        ViolationKind::StaleCrossReplica,
        ViolationKind::Missing,
    ] {
        let n = checked.count(kind);
        if n > 0 {
            by_kind.push((kind, n));
        }
    }
    let mut notes = vec![format!("API replica restarts by faults: {restarts}")];
    if opts.history {
        notes.push("every operation: history.jsonl".into());
    }
    if opts.unsafe_skip_fill_check {
        notes.push("UNSAFE_SKIP_FILL_CHECK=true on every replica: violations are expected".into());
    }
    let report = report::Report {
        seed: opts.seed,
        command,
        started_unix,
        run_seconds: run_us as f64 / 1e6,
        replicas: opts.replicas,
        api_settings: api_settings(&opts),
        coherence_bound_ms: opts.coherence_bound_ms,
        totals,
        reads_checked: checked.reads_checked,
        violations_total: checked.violations.len(),
        violations_by_kind: by_kind,
        chances,
        stale_read_rate,
        stale_read_rate_is_upper_bound: upper_bound,
        cache_share,
        aging,
        availability: availability::availability(&history, &faults, run_us),
        convergence,
        violations: report::detail(&history, &faults, &checked.violations),
        faults,
        notes,
    };
    write(&out.join("report.md"), &report::markdown(&report))?;
    write(
        &out.join("report.json"),
        &serde_json::to_string_pretty(&report)?,
    )?;
    write(
        &out.join("timeline.svg"),
        &timeline::timeline_svg(&history, &report.faults, &checked.violations, run_us),
    )?;
    if opts.history {
        write_history(&out.join("history.jsonl"), &history)?;
    }
    summarize(&report, &out);
    println!(
        "chaos: {} reads checked, {} violations",
        report.reads_checked, report.violations_total
    );
    Ok(report)
}

/// Below this share of 200 reads answered by a cache tier, the run fails: a build that
/// never caches, or leaves every written id pending for ever, is consistent but broken
/// (runs here answer about 85 % from a cache).
pub(crate) const MIN_CACHE_SHARE: f64 = 0.5;

/// Reads outside fault windows that must be answered, 200 or 404 (runs here: 99.99 %).
const MIN_QUIET_READS_OK: f64 = 0.99;

/// Whether the run's entries pass their TTL: with the chaos settings' short TTL (2–6 s)
/// and cold products to age, read by readers of their own (issue #22, C3).
fn entries_age(opts: &Options) -> bool {
    !opts.shipped_defaults && workload::cold_products(opts.products) > 0 && opts.cold_readers > 0
}

pub(crate) fn verdict(opts: &Options, report: &report::Report) -> anyhow::Result<()> {
    verdict_checking(opts, report, true)
}

/// The verdict, with or without the check that entries aged (a mutation run is judged
/// by what the mutation breaks: a run that merely failed to age its entries has not
/// caught it).
pub(crate) fn verdict_checking(
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

fn summarize(r: &report::Report, out: &Path) {
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

fn api_settings(opts: &Options) -> Vec<String> {
    let mut s: Vec<String> = cluster::api_env(opts.shipped_defaults)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if opts.unsafe_skip_fill_check {
        s.push("UNSAFE_SKIP_FILL_CHECK=true".into());
    }
    if let Some(mutation) = &opts.mutation {
        s.push(format!("CACHEME_MUTATION={mutation}"));
    }
    s
}

fn api_binary(root: &Path, opts: &Options) -> anyhow::Result<PathBuf> {
    if let Some(bin) = &opts.api_bin {
        anyhow::ensure!(bin.is_file(), "--api-bin {} is not a file", bin.display());
        return Ok(bin.clone());
    }
    let mut build = cargo();
    build.args(["build", "--package", "cacheme-api"]);
    if opts.mutation.is_some() || opts.mutations {
        // The package's own feature: since the API's tests depend on the API itself (for
        // `test-hooks`), `cacheme-api/mutations` names that dev-dependency's feature,
        // and the binary was built without it (every mutation run silently unmutated).
        build.args(["--features", "mutations"]);
    }
    if opts.release {
        build.arg("--release");
    }
    run("cargo build --package cacheme-api", build)?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target_dir
        .join(if opts.release { "release" } else { "debug" })
        .join("cacheme-api"))
}

fn spawn_progress(
    progress: Arc<Progress>,
    current: Arc<Mutex<String>>,
    start: Instant,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut next = start + Duration::from_secs(5);
        while !progress.stop.load(Ordering::Relaxed) {
            if Instant::now() >= next {
                next += Duration::from_secs(5);
                let fault = current.lock().map(|c| c.clone()).unwrap_or_default();
                eprintln!(
                    "    {:>5.1} s  reads {:>8}  writes {:>6}  not 200 {:>6}  fault: {fault}",
                    start.elapsed().as_secs_f64(),
                    progress.reads.load(Ordering::Relaxed),
                    progress.writes.load(Ordering::Relaxed),
                    progress.failed.load(Ordering::Relaxed),
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

/// Every operation, one JSON object a line (`--history`).
fn write_history(path: &Path, history: &[history::Op]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for op in history {
        serde_json::to_writer(&mut out, op)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
