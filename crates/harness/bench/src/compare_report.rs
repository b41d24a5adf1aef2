//! What a comparison is (`CompareOptions`) and what `--compare` reports: per scenario,
//! the median rate of each side and the median of the per-round changes with their
//! spread.

use crate::common::CONNECTIONS;

/// The comparison's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareOptions {
    /// The other revision, as given (`main`, `HEAD~3`, a commit).
    pub rev: String,
    pub rounds: u32,
    pub duration_s: u64,
    pub products: u64,
    /// `--traced RATIO`: side B exports spans to a discarding OTLP sink, sampling this
    /// share of requests (`--compare HEAD --traced 0.01` is the cost of tracing at 1 %).
    pub traced: Option<f64>,
}

/// One scenario's comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub scenario: String,
    pub median_a: f64,
    pub median_b: f64,
    /// Median of the per-round changes B/A − 1.
    pub median_change: f64,
    pub min_change: f64,
    pub max_change: f64,
    pub rounds: usize,
}

impl Summary {
    /// From each round's `[A, B]` rates.
    pub fn of(scenario: &str, pairs: &[[f64; 2]]) -> Self {
        let changes: Vec<f64> = pairs
            .iter()
            .filter(|[a, _]| *a > 0.0)
            .map(|[a, b]| b / a - 1.0)
            .collect();
        let a: Vec<f64> = pairs.iter().map(|p| p[0]).collect();
        let b: Vec<f64> = pairs.iter().map(|p| p[1]).collect();
        Self {
            scenario: scenario.to_owned(),
            median_a: median(&a),
            median_b: median(&b),
            median_change: median(&changes),
            min_change: changes.iter().copied().fold(f64::INFINITY, f64::min),
            max_change: changes.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            rounds: changes.len(),
        }
    }

    /// What the rounds say: a change only when every round agrees on its sign.
    pub fn verdict(&self) -> &'static str {
        if self.rounds == 0 {
            "no data"
        } else if self.min_change > 0.0 {
            "faster in every round"
        } else if self.max_change < 0.0 {
            "slower in every round"
        } else {
            "within the noise"
        }
    }
}

pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

pub fn markdown(
    labels: &[String; 2],
    opts: &CompareOptions,
    pinned: bool,
    host: &str,
    rows: &[Summary],
) -> String {
    let mut text = format!(
        "# A/B: {} against {}\n\n{} rounds × {} s per scenario and side, wrk c{CONNECTIONS}, {} products; \
         order alternating per round (A B, B A); {}. Host: {host}.\n\n\
         | scenario | A median req/s | B median req/s | change B/A (median) | spread over rounds | verdict |\n\
         |---|--:|--:|--:|--:|---|\n",
        labels[1],
        labels[0],
        opts.rounds,
        opts.duration_s,
        opts.products,
        if pinned {
            "API processes on core 0; wrk, PostgreSQL and Redis on core 1"
        } else {
            "not pinned to cores"
        },
    );
    for r in rows {
        text.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:+.1} % | {:+.1} … {:+.1} % | {} |\n",
            r.scenario,
            r.median_a,
            r.median_b,
            r.median_change * 100.0,
            r.min_change * 100.0,
            r.max_change * 100.0,
            r.verdict()
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_change_is_taken_per_round_and_summarised_by_its_median() {
        // The machine slows down over the rounds; B is 10 % faster in each.
        let pairs = [[100.0, 110.0], [80.0, 88.0], [60.0, 66.0]];
        let s = Summary::of("L1 hits", &pairs);
        assert!((s.median_change - 0.10).abs() < 1e-9, "{s:?}");
        assert!((s.min_change - 0.10).abs() < 1e-9);
        assert_eq!(s.median_a, 80.0);
        assert_eq!(s.verdict(), "faster in every round");

        let mixed = Summary::of("x", &[[100.0, 95.0], [100.0, 104.0], [100.0, 99.0]]);
        assert!((mixed.median_change + 0.01).abs() < 1e-9);
        assert_eq!(mixed.verdict(), "within the noise");
        assert_eq!(
            Summary::of("x", &[[100.0, 80.0], [100.0, 90.0]]).verdict(),
            "slower in every round"
        );
        assert_eq!(Summary::of("x", &[]).verdict(), "no data");
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn the_report_names_both_sides_and_every_scenario() {
        let opts = CompareOptions {
            rev: "main".into(),
            rounds: 4,
            duration_s: 5,
            products: 2000,
            traced: None,
        };
        let rows = [Summary::of("L1 hits", &[[100.0, 150.0]])];
        let text = markdown(
            &["A = main (abc)".into(), "B = this tree".into()],
            &opts,
            true,
            "Test CPU, 2 cores",
            &rows,
        );
        assert!(
            text.contains("B = this tree against A = main (abc)"),
            "{text}"
        );
        assert!(text.contains("| L1 hits | 100 | 150 | +50.0 % |"), "{text}");
        assert!(text.contains("core 0"));
        assert!(text.contains("Host: Test CPU, 2 cores."), "{text}");
    }
}
