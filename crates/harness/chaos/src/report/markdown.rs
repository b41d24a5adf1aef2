//! target/chaos/report.md, one function per section.

use std::fmt::Write as _;

use super::{Report, source_label};
use crate::history::{Op, OpKind, Outcome};

fn secs(us: u64) -> String {
    format!("{:.3}", us as f64 / 1e6)
}

pub(super) fn op_line(op: &Op, mark: &str) -> String {
    let outcome = match &op.outcome {
        Outcome::Ok => "ok".to_owned(),
        Outcome::NotFound => "404 (absent)".to_owned(),
        Outcome::Status { code } => format!("HTTP {code}"),
        Outcome::Abandoned => "abandoned".to_owned(),
        Outcome::Io { error } => format!("io: {error}"),
    };
    let value = match (op.seq, &op.raw) {
        (_, Some(raw)) => format!("{raw:?}"),
        (Some(s), None) => s.to_string(),
        (None, None) => "-".to_owned(),
    };
    let kind = if op.kind == OpKind::Read {
        "read"
    } else {
        "write"
    };
    format!(
        "| {mark} | {}–{} | {kind} | r{} | {value} | {outcome} | {} |",
        secs(op.invoke_us),
        secs(op.complete_us),
        op.replica,
        if op.kind == OpKind::Read {
            source_label(op)
        } else {
            String::new()
        }
    )
}

fn pct(share: Option<f64>) -> String {
    share.map_or("–".into(), |s| format!("{:.2} %", s * 100.0))
}

/// The whole report: header, verdict, operations, availability, faults, violations.
pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# CacheMe chaos report\n");
    let _ = writeln!(
        s,
        "`{}` (seed {}; rerun with `--seed {}`)\n",
        r.command, r.seed, r.seed
    );
    let _ = writeln!(
        s,
        "{:.1} s, {} replicas, coherence bound {} ms. Replica settings: `{}`.\n",
        r.run_seconds,
        r.replicas,
        r.coherence_bound_ms,
        r.api_settings.join(" ")
    );
    verdict(&mut s, r);
    operations(&mut s, r);
    availability(&mut s, r);
    faults(&mut s, r);
    violations(&mut s, r);
    s
}

fn verdict(s: &mut String, r: &Report) {
    let _ = writeln!(s, "## Verdict\n");
    let _ = writeln!(
        s,
        "- **{} reads checked, {} violations**",
        r.reads_checked, r.violations_total
    );
    for (kind, n) in &r.violations_by_kind {
        let _ = writeln!(s, "  - {kind:?}: {n}");
    }
    let bound = if r.stale_read_rate_is_upper_bound {
        "≤ "
    } else {
        ""
    };
    let _ = writeln!(
        s,
        "- stale reads per acknowledged write and replica: {bound}{:.1e} over {} chances{}",
        r.stale_read_rate,
        r.chances,
        if r.stale_read_rate_is_upper_bound {
            " (95 % upper bound, rule of three: reads are correlated, writes × replicas are the chances)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "- reads answered by a cache tier: {:.1} %",
        r.cache_share * 100.0
    );
    let _ = writeln!(
        s,
        "- entries past their TTL served (at least): {} while refreshed, {} because PostgreSQL failed{}",
        r.aging.stale_served,
        r.aging.stale_if_error_served,
        if r.aging.unread > 0 {
            format!(" ({} replicas did not answer /cache/stats)", r.aging.unread)
        } else {
            String::new()
        }
    );
    let c = &r.convergence;
    let _ = writeln!(
        s,
        "- convergence: {}{}",
        if c.ok { "ok" } else { "**FAILED**" },
        c.settled_after_ms.map_or(String::new(), |ms| format!(
            ", settled {ms:.0} ms after the workload stopped"
        ))
    );
    for p in &c.problems {
        let _ = writeln!(s, "  - {p}");
    }
    for b in &c.burst {
        let _ = writeln!(s, "  - {b}");
    }
    for n in &r.notes {
        let _ = writeln!(s, "- {n}");
    }
}

fn operations(s: &mut String, r: &Report) {
    let t = &r.totals;
    let _ = writeln!(s, "\n## Operations\n");
    let _ = writeln!(
        s,
        "reads {} (200: {}), writes {} (acknowledged {}, indeterminate {}), abandoned {}, I/O errors {}, other statuses {:?}\n\nreads answered 200 by source: {:?}\n",
        t.reads,
        t.reads_ok,
        t.writes,
        t.writes_acknowledged,
        t.writes_indeterminate,
        t.abandoned,
        t.io_errors,
        t.statuses,
        t.reads_by_source
    );
}

fn availability(s: &mut String, r: &Report) {
    let _ = writeln!(s, "## Availability by fault\n");
    let _ = writeln!(
        s,
        "| fault | windows | seconds | reads | read 200 | read p99 ms | writes | write 200 |\n|---|--:|--:|--:|--:|--:|--:|--:|"
    );
    for a in &r.availability {
        let _ = writeln!(
            s,
            "| {} | {} | {:.1} | {} | {} | {} | {} | {} |",
            a.fault,
            a.windows,
            a.seconds,
            a.reads,
            pct(a.read_ok_share),
            a.read_p99_ms.map_or("–".into(), |v| format!("{v:.1}")),
            a.writes,
            pct((a.writes > 0).then(|| a.writes_ok as f64 / a.writes as f64)),
        );
    }
}

fn faults(s: &mut String, r: &Report) {
    let _ = writeln!(s, "\n![timeline](timeline.svg)\n\n## Faults\n");
    let _ = writeln!(s, "| start s | end s | fault | detail |\n|--:|--:|---|---|");
    for f in &r.faults {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            secs(f.start_us),
            secs(f.end_us),
            f.kind,
            f.detail
        );
    }
}

fn violations(s: &mut String, r: &Report) {
    if !r.violations.is_empty() {
        let _ = writeln!(
            s,
            "\n## Violations (first {} of {}; report.json has up to 200 ops on the product within ±2 s of each)\n",
            r.violations.len(),
            r.violations_total
        );
    }
    for (i, v) in r.violations.iter().enumerate() {
        let _ = writeln!(
            s,
            "### {}. {:?}: product {}, read on replica {}\n",
            i + 1,
            v.kind,
            v.read.product,
            v.read.replica
        );
        if let (Some(w), Some(ms)) = (&v.newer_write, v.missed_by_ms) {
            let _ = writeln!(
                s,
                "The read (marked >>) returned seq {}; write seq {} (marked w) via replica {} had been acknowledged {ms:.1} ms before the read began.\n",
                v.read.seq.map_or("-".into(), |s| s.to_string()),
                w.seq.map_or("-".into(), |s| s.to_string()),
                w.replica
            );
        }
        for f in &v.faults {
            let _ = writeln!(
                s,
                "- fault {} {}–{} s: {}",
                f.kind,
                secs(f.start_us),
                secs(f.end_us),
                f.detail
            );
        }
        let _ = writeln!(
            s,
            "\n| | time s | op | replica | seq | outcome | source |\n|---|---|---|---|---|---|---|"
        );
        // The table keeps to writes within 300 ms and reads within 50 ms of the violating read.
        for op in v.interleaving.iter().filter(|op| {
            let limit = if op.kind == OpKind::Write {
                300_000
            } else {
                50_000
            };
            op.invoke_us.abs_diff(v.read.invoke_us) <= limit
        }) {
            let mark = if *op == v.read {
                "**>>**"
            } else if Some(op) == v.newer_write.as_ref() {
                "**w**"
            } else {
                ""
            };
            let _ = writeln!(s, "{}", op_line(op, mark));
        }
        let _ = writeln!(s);
    }
}
