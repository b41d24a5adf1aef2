//! The report's two charts, throughput and latency, as hand-written SVG (no plotting
//! crate).

use std::fmt::Write as _;

use crate::report::{Row, group_thousands, label};

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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
    use crate::report::tests::row;

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
}
