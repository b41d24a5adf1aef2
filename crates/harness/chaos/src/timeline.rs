//! target/chaos/timeline.svg: the run on one time axis.

use std::fmt::Write as _;

use super::{
    checker::Violation,
    history::{FaultWindow, Op, OpKind},
};

const COLORS: [&str; 9] = [
    "#e57373", "#ba68c8", "#7986cb", "#4fc3f7", "#4db6ac", "#aed581", "#ffd54f", "#ff8a65",
    "#a1887f",
];

/// Time axis, fault windows shaded by kind, read/write rates per second, violations in red.
pub fn timeline_svg(
    history: &[Op],
    faults: &[FaultWindow],
    violations: &[Violation],
    run_us: u64,
) -> String {
    let (w, h, left, top, plot_h) = (1200.0, 380.0, 60.0, 40.0, 240.0);
    let plot_w = w - left - 70.0;
    let seconds = (run_us / 1_000_000).max(1) as usize;
    let x = |us: u64| left + plot_w * us as f64 / (seconds as f64 * 1e6);
    let mut rates = vec![[0u64; 3]; seconds];
    for op in history {
        let b = ((op.invoke_us / 1_000_000) as usize).min(seconds - 1);
        let series = match (op.kind, op.answered()) {
            (OpKind::Read, true) => 0,
            (OpKind::Read, false) => 1,
            (OpKind::Write, _) => 2,
        };
        rates[b][series] += 1;
    }
    // Reads on the left axis, writes (far fewer) on their own right axis.
    let max = rates
        .iter()
        .map(|r| r[0].max(r[1]))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let max_w = rates.iter().map(|r| r[2]).max().unwrap_or(1).max(1) as f64;
    let y = |v: u64, series: usize| {
        let scale = if series == 2 { max_w } else { max };
        top + plot_h - plot_h * v as f64 / scale
    };
    let mut kinds: Vec<&str> = faults.iter().map(|f| f.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let color =
        |kind: &str| COLORS[kinds.iter().position(|k| *k == kind).unwrap_or(0) % COLORS.len()];
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="20" font-size="14" font-weight="bold">Chaos timeline: reads/s (blue: 200, orange: not 200, abandoned included; left axis), writes/s (green, right axis); faults shaded; violations in red</text>
"#
    );
    for f in faults {
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{top}" width="{:.1}" height="{plot_h}" fill="{}" fill-opacity="0.45"><title>{} {}</title></rect>"#,
            x(f.start_us),
            (x(f.end_us) - x(f.start_us)).max(1.0),
            color(&f.kind),
            f.kind,
            f.detail.replace('&', "&amp;").replace('<', "&lt;")
        );
    }
    for (series, stroke) in [(0, "#1e88e5"), (1, "#fb8c00"), (2, "#43a047")] {
        let points: Vec<String> = rates
            .iter()
            .enumerate()
            .map(|(i, r)| {
                format!(
                    "{:.1},{:.1}",
                    x(i as u64 * 1_000_000 + 500_000),
                    y(r[series], series)
                )
            })
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{stroke}" stroke-width="1.5" points="{}"/>"#,
            points.join(" ")
        );
    }
    let axis_y = top + plot_h;
    let _ = writeln!(
        s,
        r##"<line x1="{left}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="black"/><text x="4" y="{}">{max:.0}/s</text><text x="{}" y="{}" fill="#43a047">{max_w:.0}/s</text>"##,
        left + plot_w,
        top + 8.0,
        left + plot_w + 6.0,
        top + 8.0
    );
    let step = (seconds / 12).max(1);
    for sec in (0..=seconds).step_by(step) {
        let px = x(sec as u64 * 1_000_000);
        let _ = writeln!(
            s,
            r#"<text x="{px:.1}" y="{}" text-anchor="middle">{sec}s</text>"#,
            axis_y + 14.0
        );
    }
    for v in violations {
        let px = x(history[v.read].invoke_us);
        let _ = writeln!(
            s,
            r#"<line x1="{px:.1}" y1="{}" x2="{px:.1}" y2="{}" stroke="red" stroke-width="1"/>"#,
            axis_y + 18.0,
            axis_y + 32.0
        );
    }
    for (i, kind) in kinds.iter().enumerate() {
        let (lx, ly) = (
            left + (i % 5) as f64 * 220.0,
            axis_y + 50.0 + (i / 5) as f64 * 16.0,
        );
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="{}" width="10" height="10" fill="{}" fill-opacity="0.6"/><text x="{}" y="{ly}">{kind}</text>"#,
            ly - 9.0,
            color(kind),
            lx + 14.0
        );
    }
    s.push_str("</svg>\n");
    s
}
