//! The report: rows and targets, rendered as Markdown, hand-written SVG and JSON.
//!
//! Over 400 lines because the SVG charts are drawn by hand (no plotting crate).

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

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn label(r: &Row) -> String {
    if r.kind == "sweep" || r.connections != 50 {
        format!("{} (c={})", r.scenario, r.connections)
    } else {
        r.scenario.clone()
    }
}

fn colour(kind: &str) -> &'static str {
    match kind {
        "baseline" => "#9e9e9e",
        "sweep" => "#26a69a",
        _ => "#1e88e5",
    }
}

const LEFT: f64 = 250.0;
const PLOT: f64 = 560.0;

/// Horizontal bars of requests/s, one per row.
pub fn throughput_svg(rows: &[Row]) -> String {
    let rows: Vec<&Row> = rows.iter().filter(|r| r.load.rps > 0.0).collect();
    let bar = 18.0;
    let gap = 6.0;
    let top = 40.0;
    let height = top + rows.len() as f64 * (bar + gap) + 20.0;
    let width = LEFT + PLOT + 110.0;
    let max = rows.iter().map(|r| r.load.rps).fold(0.0, f64::max).max(1.0);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="22" font-size="15" font-weight="bold">Requests per second (grey: baselines, blue: scenarios, green: concurrency sweep)</text>
"#
    );
    for (i, r) in rows.iter().enumerate() {
        let y = top + i as f64 * (bar + gap);
        let w = (r.load.rps / max * PLOT).max(1.0);
        let _ = writeln!(
            s,
            r#"<text x="{tx}" y="{ty}" text-anchor="end">{name}</text><rect x="{LEFT}" y="{y}" width="{w:.1}" height="{bar}" fill="{c}"/><text x="{vx:.1}" y="{ty}">{v}</text>"#,
            tx = LEFT - 8.0,
            ty = y + bar - 5.0,
            name = xml_escape(&label(r)),
            c = colour(r.kind),
            vx = LEFT + w + 6.0,
            v = group_thousands(r.load.rps),
        );
    }
    s.push_str("</svg>\n");
    s
}

/// p50, p99 and p99.9 per row on a logarithmic millisecond axis.
pub fn latency_svg(rows: &[Row]) -> String {
    let rows: Vec<&Row> = rows.iter().filter(|r| r.load.p50_ms.is_some()).collect();
    let band = 24.0;
    let top = 60.0;
    let height = top + rows.len() as f64 * band + 40.0;
    let width = LEFT + PLOT + 40.0;
    let values = rows
        .iter()
        .flat_map(|r| [r.load.p50_ms, r.load.p99_ms, r.load.p999_ms])
        .flatten()
        .filter(|v| *v > 0.0);
    let (lo, hi) = values.fold((f64::INFINITY, 0.0_f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let lo_exp = if lo.is_finite() {
        lo.log10().floor()
    } else {
        -2.0
    };
    let hi_exp = if hi > 0.0 { hi.log10().ceil() } else { 0.0 }.max(lo_exp + 1.0);
    let x =
        |ms: f64| LEFT + (ms.max(10f64.powf(lo_exp)).log10() - lo_exp) / (hi_exp - lo_exp) * PLOT;
    let mut s = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="22" font-size="15" font-weight="bold">Latency percentiles, ms (log scale)</text>
<rect x="{LEFT}" y="32" width="10" height="10" fill="#43a047"/><text x="{l1}" y="41">p50</text>
<rect x="{l2}" y="32" width="10" height="10" fill="#fb8c00"/><text x="{l3}" y="41">p99</text>
<rect x="{l4}" y="32" width="10" height="10" fill="#e53935"/><text x="{l5}" y="41">p99.9</text>
"##,
        l1 = LEFT + 14.0,
        l2 = LEFT + 60.0,
        l3 = LEFT + 74.0,
        l4 = LEFT + 120.0,
        l5 = LEFT + 134.0,
    );
    let bottom = top + rows.len() as f64 * band;
    let mut e = lo_exp;
    while e <= hi_exp + 1e-9 {
        let gx = x(10f64.powf(e));
        let _ = writeln!(
            s,
            r##"<line x1="{gx:.1}" y1="{top}" x2="{gx:.1}" y2="{bottom}" stroke="#ddd"/><text x="{gx:.1}" y="{ly}" text-anchor="middle">{v}</text>"##,
            ly = bottom + 16.0,
            v = 10f64.powf(e),
        );
        e += 1.0;
    }
    for (i, r) in rows.iter().enumerate() {
        let y = top + i as f64 * band;
        let _ = writeln!(
            s,
            r#"<text x="{tx}" y="{ty}" text-anchor="end">{name}</text>"#,
            tx = LEFT - 8.0,
            ty = y + 16.0,
            name = xml_escape(&label(r)),
        );
        for (j, (v, c)) in [
            (r.load.p50_ms, "#43a047"),
            (r.load.p99_ms, "#fb8c00"),
            (r.load.p999_ms, "#e53935"),
        ]
        .into_iter()
        .enumerate()
        {
            if let Some(v) = v {
                let _ = writeln!(
                    s,
                    r#"<rect x="{LEFT}" y="{by:.1}" width="{w:.1}" height="6" fill="{c}"><title>{v:.3} ms</title></rect>"#,
                    by = y + 3.0 + j as f64 * 6.5,
                    w = (x(v) - LEFT).max(1.0),
                );
            }
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, kind: &'static str, rps: f64, p50: Option<f64>) -> Row {
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
    fn svgs_are_well_formed_and_escaped() {
        let rows = vec![
            row("nginx <static>", "baseline", 50_000.0, Some(0.5)),
            row("L1 hits", "scenario", 25_000.0, Some(1.0)),
            row("sweep & hits", "sweep", 0.0, None),
        ];
        for svg in [throughput_svg(&rows), latency_svg(&rows)] {
            assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
            assert!(svg.trim_end().ends_with("</svg>"));
            assert!(svg.contains("nginx &lt;static&gt;"));
            assert!(!svg.contains("<static>"));
            assert_eq!(svg.matches("<svg").count(), 1);
            assert!(!svg.contains("NaN") && !svg.contains("inf"));
        }
        let t = throughput_svg(&rows);
        // The largest bar spans the plot; the zero-rate row is left out.
        assert!(t.contains(r#"width="560.0""#));
        assert!(!t.contains("sweep &amp; hits"));
        let l = latency_svg(&rows);
        assert!(l.contains("<title>5.000 ms</title>"));
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
