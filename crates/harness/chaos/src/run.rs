//! One run: the stores and the replicas started, the workload and the faults driven,
//! then the history checked and the report written.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use cacheme_harness::{cargo, run, workspace_root};

use crate::{
    availability, checker,
    checker::ViolationKind,
    clients, cluster, converge, faults,
    history::{self, Clock},
    inject,
    options::Options,
    replica_env, report, timeline,
    verdict::summarize,
    workload::{self, Progress, Workload},
};

/// Stops the clients when the run ends, however it ends.
struct StopOnDrop(Arc<Progress>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Relaxed);
    }
}

/// One run: starts the stores and the replicas, runs the workload and the faults, checks
/// the history and writes the report.
pub fn run_once(opts: &Options, typed: &[String]) -> anyhow::Result<report::Report> {
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
    let clock = Clock::start();
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
    let mut history = clients::initial_writes(&w, clock)?;
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
    let clients = clients::spawn(&w, clock, &progress)?;
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

    let outcome = Outcome {
        history,
        faults,
        convergence,
        aging,
        restarts,
        run_us,
        started_unix,
    };
    check_and_report(&opts, command, outcome, &out)
}

/// What a run leaves to check: every operation, the faults as they happened, and what
/// the replicas said once quiet.
struct Outcome {
    history: Vec<history::Op>,
    faults: Vec<history::FaultWindow>,
    convergence: report::Convergence,
    aging: report::Aging,
    restarts: u32,
    run_us: u64,
    started_unix: u64,
}

/// Checks the history and writes the report (markdown, JSON, the timeline).
fn check_and_report(
    opts: &Options,
    command: String,
    outcome: Outcome,
    out: &Path,
) -> anyhow::Result<report::Report> {
    let Outcome {
        history,
        faults,
        convergence,
        aging,
        restarts,
        run_us,
        started_unix,
    } = outcome;

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
        api_settings: api_settings(opts),
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
    summarize(&report, out);
    println!(
        "chaos: {} reads checked, {} violations",
        report.reads_checked, report.violations_total
    );
    Ok(report)
}

fn api_settings(opts: &Options) -> Vec<String> {
    let mut s: Vec<String> = replica_env::api_env(opts.shipped_defaults)
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
