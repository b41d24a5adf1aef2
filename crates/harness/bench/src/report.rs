//! The report: rows and targets, rendered as Markdown and JSON (the charts are in `svg`).

use std::fmt::Write as _;

use super::wrk::LoadResult;

/// One measured line of the table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub scenario: String,
    /// `baseline`, `scenario` or `sweep`.
    pub kind: &'static str,
    pub tool: &'static str,
    pub connections: u32,
    #[serde(flatten)]
    pub load: LoadResult,
    pub db_queries: Option<u64>,
    pub peak_rss_kib: Option<u64>,
    pub baseline: Option<String>,
    pub ratio: Option<f64>,
    /// The path's composite limit (what its parts alone allow, measured in the same run)
    /// and the ratio to it: a Redis hit cannot beat HTTP plus one Redis round trip.
    pub composite: Option<String>,
    pub composite_ratio: Option<f64>,
    pub note: String,
    /// The machine's 1-minute load average just before the run: other work on a shared machine shows here.
    pub loadavg_before: Option<f64>,
}

impl Row {
    pub fn new(scenario: impl Into<String>, kind: &'static str, tool: &'static str) -> Self {
        Self {
            scenario: scenario.into(),
            kind,
            tool,
            connections: 0,
            load: LoadResult::default(),
            db_queries: None,
            peak_rss_kib: None,
            baseline: None,
            ratio: None,
            composite: None,
            composite_ratio: None,
            note: String::new(),
            loadavg_before: loadavg_1m(),
        }
    }
}

/// One of the benchmark's targets (BENCHMARKS.md), judged.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Target {
    pub name: String,
    pub goal: String,
    pub measured: String,
    pub ratio: Option<f64>,
    pub met: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub commit: String,
    pub started_unix: u64,
    pub smoke: bool,
    pub duration_s: u64,
    pub products: u64,
    pub cores: usize,
    pub cpu: String,
    pub api_settings: Vec<String>,
    pub ready_ms: Vec<(String, f64)>,
    pub rows: Vec<Row>,
    pub targets: Vec<Target>,
}

/// The 1-minute load average from `/proc/loadavg`.
pub fn loadavg_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// One line per row: its note and the load average the run started under.
pub fn notes(rows: &[Row]) -> String {
    let mut s = String::new();
    for r in rows {
        let mut parts = Vec::new();
        if !r.note.is_empty() {
            parts.push(r.note.clone());
        }
        if let Some(l) = r.loadavg_before {
            parts.push(format!("load average before: {l:.2}"));
        }
        if !parts.is_empty() {
            let _ = writeln!(s, "- {}: {}", label(r), parts.join("; "));
        }
    }
    s
}

/// `rate / baseline` when both are known and the baseline is not zero.
pub fn ratio(rate: f64, baseline: f64) -> Option<f64> {
    (baseline > 0.0 && rate.is_finite()).then(|| rate / baseline)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".to_owned(), |x| format!("{x:.digits$}"))
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "–".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0))
}

/// Thousands separated by a thin space, for request rates.
pub fn group_thousands(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// The results table (shared by report.md and BENCHMARKS.md).
pub fn markdown_table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| scenario | tool | conns | requests/s | p50 ms | p99 ms | p99.9 ms | errors | DB queries | peak RSS MiB | baseline | ratio | composite limit | ratio to it |\n\
         |---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|---|--:|\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.tool,
            r.connections,
            group_thousands(r.load.rps),
            opt(r.load.p50_ms, 2),
            opt(r.load.p99_ms, 2),
            opt(r.load.p999_ms, 2),
            r.load.errors.total(),
            r.db_queries
                .map_or_else(|| "–".to_owned(), |q| q.to_string()),
            mib(r.peak_rss_kib),
            r.baseline.as_deref().unwrap_or("–"),
            opt(r.ratio, 2),
            r.composite.as_deref().unwrap_or("–"),
            opt(r.composite_ratio, 2),
        );
    }
    s
}

pub fn targets_table(targets: &[Target]) -> String {
    let mut s =
        String::from("| target | goal | measured | ratio | status |\n|---|---|---|--:|---|\n");
    for t in targets {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            t.name,
            t.goal,
            t.measured,
            opt(t.ratio, 2),
            if t.met { "met" } else { "**missed**" }
        );
    }
    s
}

pub fn markdown(report: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# CacheMe benchmark report\n");
    let _ = writeln!(
        s,
        "Commit `{}`, {} product(s), {} s per scenario{}, on {} core(s) ({}). \
         Load generator, API, PostgreSQL and Redis share the machine: read the ratios, not the absolute numbers.\n",
        report.commit,
        report.products,
        report.duration_s,
        if report.smoke {
            " (**smoke run: targets not asserted**)"
        } else {
            ""
        },
        report.cores,
        report.cpu
    );
    let _ = writeln!(s, "API settings: `{}`\n", report.api_settings.join(" "));
    let ready: Vec<String> = report
        .ready_ms
        .iter()
        .map(|(what, ms)| format!("{what}: {ms:.0} ms"))
        .collect();
    let _ = writeln!(
        s,
        "Time to ready (spawn → `/readyz` 200): {}\n",
        ready.join("; ")
    );
    let _ = writeln!(s, "## Results\n\n{}", markdown_table(&report.rows));
    let _ = writeln!(
        s,
        "Notes. The 1-minute load average lags and includes the previous run's own load; well above 3 on 2 cores means other work shared the machine.\n\n{}",
        notes(&report.rows)
    );
    let _ = writeln!(s, "## Targets\n\n{}", targets_table(&report.targets));
    let _ = writeln!(
        s,
        "## Charts\n\n![requests per second](throughput.svg)\n\n![latency percentiles](latency.svg)\n"
    );
    s
}

/// A row as charts and notes name it: the scenario, and its connections when not the usual 50.
pub fn label(r: &Row) -> String {
    if r.kind == "sweep" || r.connections != 50 {
        format!("{} (c={})", r.scenario, r.connections)
    } else {
        r.scenario.clone()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn row(name: &str, kind: &'static str, rps: f64, p50: Option<f64>) -> Row {
        let mut r = Row::new(name, kind, "wrk");
        r.connections = 50;
        r.load.rps = rps;
        r.load.p50_ms = p50;
        r.load.p99_ms = p50.map(|v| v * 4.0);
        r.load.p999_ms = p50.map(|v| v * 10.0);
        r
    }

    #[test]
    fn ratios_and_numbers() {
        assert_eq!(ratio(30.0, 60.0), Some(0.5));
        assert_eq!(ratio(30.0, 0.0), None);
        assert_eq!(group_thousands(1_234_567.4), "1 234 567");
        assert_eq!(group_thousands(999.0), "999");
        assert_eq!(group_thousands(0.0), "0");
    }

    #[test]
    fn table_has_a_line_per_row_and_dashes_for_unknowns() {
        let mut a = row("L1 hits", "scenario", 25_000.0, Some(1.5));
        a.db_queries = Some(0);
        a.peak_rss_kib = Some(20 * 1024);
        a.baseline = Some("nginx static".into());
        a.ratio = Some(0.61);
        let b = row("pgbench", "baseline", 9_000.0, None);
        let t = markdown_table(&[a, b]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[2].starts_with("| L1 hits | wrk | 50 | 25 000 | 1.50 | 6.00 | 15.00 | 0 | 0 | 20.0 | nginx static | 0.61 |"));
        assert!(lines[3].contains("| – | – | – |"));
    }

    #[test]
    fn targets_show_missed_in_bold() {
        let t = targets_table(&[
            Target {
                name: "a".into(),
                goal: "≥ 0.6×".into(),
                measured: "0.5×".into(),
                ratio: Some(0.5),
                met: false,
            },
            Target {
                name: "b".into(),
                goal: "= 1".into(),
                measured: "1".into(),
                ratio: None,
                met: true,
            },
        ]);
        assert!(t.contains("| a | ≥ 0.6× | 0.5× | 0.50 | **missed** |"));
        assert!(t.contains("| b | = 1 | 1 | – | met |"));
    }

    #[test]
    fn markdown_report_links_charts_and_flags_smoke() {
        let report = Report {
            commit: "abc1234".into(),
            started_unix: 0,
            smoke: true,
            duration_s: 2,
            products: 100,
            cores: 2,
            cpu: "test cpu".into(),
            api_settings: vec!["RUST_LOG=warn".into()],
            ready_ms: vec![("api".into(), 120.0)],
            rows: vec![row("L1 hits", "scenario", 1.0, Some(1.0))],
            targets: vec![],
        };
        let md = markdown(&report);
        assert!(md.contains("- L1 hits: "));
        assert!(md.contains("smoke run"));
        assert!(md.contains("![requests per second](throughput.svg)"));
        assert!(md.contains("api: 120 ms"));
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["rows"][0]["rps"], 1.0);
        assert_eq!(json["rows"][0]["errors"]["status"], 0);
    }
}
