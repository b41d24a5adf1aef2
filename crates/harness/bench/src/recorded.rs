//! The recorded run: the ratios of the last full run someone chose to keep
//! (`cargo xtask bench --record`, committed as `docs/benchmarks/recorded.json`), and the
//! check every run makes against it: a ratio more than 10 % below its recorded value is
//! flagged with its scenario named.
//!
//! Ratios, not rates, because each is measured against a baseline in the same run, so a
//! slower machine moves both. A flag is a prompt to run `--compare`, not a verdict: the
//! ratios still move a little with the machine, which is why they are not asserted.

use std::{collections::BTreeMap, path::Path};

use anyhow::Context as _;

use super::report::Row;

/// Where the recorded run lives, relative to the workspace root.
pub const RECORDED: &str = "docs/benchmarks/recorded.json";
/// A drop beyond this share of the recorded ratio is flagged.
pub const FLAG_DROP: f64 = 0.10;

/// One recorded run's ratios, by scenario.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Recorded {
    pub commit: String,
    pub started_unix: u64,
    pub ratios: BTreeMap<String, f64>,
}

/// One scenario's ratio now against the recorded one.
#[derive(Debug, Clone, PartialEq)]
pub struct Drift {
    pub key: String,
    pub recorded: f64,
    pub now: f64,
    pub flagged: bool,
}

impl Drift {
    pub fn change(&self) -> f64 {
        self.now / self.recorded - 1.0
    }
}

/// The ratios a run is judged by: each scenario's ratio to its baseline and, where it
/// has one, to its composite limit.
pub fn ratios(rows: &[Row]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for row in rows.iter().filter(|r| r.kind == "scenario") {
        if let Some(r) = row.ratio {
            out.insert(
                format!(
                    "{} / {}",
                    row.scenario,
                    row.baseline.as_deref().unwrap_or("baseline")
                ),
                r,
            );
        }
        // An L1 hit's composite limit is its baseline: one key is enough.
        if let (Some(r), Some(limit)) = (row.composite_ratio, &row.composite)
            && row.composite_ratio != row.ratio
        {
            out.insert(format!("{} / {limit}", row.scenario), r);
        }
    }
    out
}

/// Each ratio present in both runs, flagged when it dropped more than [`FLAG_DROP`].
pub fn drifts(recorded: &Recorded, now: &BTreeMap<String, f64>) -> Vec<Drift> {
    recorded
        .ratios
        .iter()
        .filter(|(_, r)| **r > 0.0)
        .filter_map(|(key, &was)| {
            now.get(key).map(|&is| Drift {
                key: key.clone(),
                recorded: was,
                now: is,
                flagged: is < was * (1.0 - FLAG_DROP),
            })
        })
        .collect()
}

pub fn load(root: &Path) -> anyhow::Result<Option<Recorded>> {
    let path = root.join(RECORDED);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("{} is not a recorded run", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

pub fn save(root: &Path, recorded: &Recorded) -> anyhow::Result<()> {
    let path = root.join(RECORDED);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_string_pretty(recorded)? + "\n";
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The report's section on the recorded run.
pub fn markdown(recorded: &Recorded, drifts: &[Drift]) -> String {
    let mut s = format!(
        "## Against the recorded run\n\nRecorded run: commit `{}` ({}). A ratio more than {:.0} % \
         below its recorded value is flagged; run `cargo xtask bench --compare <that commit>` \
         to tell the code from the machine.\n\n\
         | ratio | recorded | now | change | |\n|---|--:|--:|--:|---|\n",
        recorded.commit,
        recorded.started_unix,
        FLAG_DROP * 100.0
    );
    for d in drifts {
        s.push_str(&format!(
            "| {} | {:.3} | {:.3} | {:+.1} % | {} |\n",
            d.key,
            d.recorded,
            d.now,
            d.change() * 100.0,
            if d.flagged { "**dropped**" } else { "" }
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(scenario: &str, ratio: f64, composite: Option<f64>) -> Row {
        let mut r = Row::new(scenario, "scenario", "wrk");
        r.baseline = Some("nginx static 200 B".into());
        r.ratio = Some(ratio);
        r.composite_ratio = composite;
        r.composite = composite.map(|_| "1/(1/nginx + 1/redis)".to_owned());
        r
    }

    #[test]
    fn a_drop_of_more_than_a_tenth_is_flagged_with_its_scenario() {
        let before = ratios(&[
            row("L1 hits", 0.50, None),
            row("Redis hits", 0.20, Some(0.8)),
        ]);
        assert_eq!(before.len(), 3, "{before:?}");
        let recorded = Recorded {
            commit: "abc".into(),
            started_unix: 1,
            ratios: before,
        };
        let now = ratios(&[
            row("L1 hits", 0.44, None),
            row("Redis hits", 0.19, Some(0.8)),
        ]);
        let drifts = drifts(&recorded, &now);
        let flagged: Vec<&str> = drifts
            .iter()
            .filter(|d| d.flagged)
            .map(|d| d.key.as_str())
            .collect();
        assert_eq!(flagged, ["L1 hits / nginx static 200 B"]);
        let text = markdown(&recorded, &drifts);
        assert!(
            text.contains(
                "| L1 hits / nginx static 200 B | 0.500 | 0.440 | -12.0 % | **dropped** |"
            ),
            "{text}"
        );
        assert!(
            text.contains("| Redis hits / 1/(1/nginx + 1/redis) | 0.800 | 0.800 | +0.0 % |  |"),
            "{text}"
        );
    }

    #[test]
    fn a_recorded_run_round_trips_through_its_file() {
        let dir = std::env::temp_dir().join(format!("cacheme-recorded-{}", std::process::id()));
        let recorded = Recorded {
            commit: "abc".into(),
            started_unix: 7,
            ratios: BTreeMap::from([("L1 hits / nginx".to_owned(), 0.5)]),
        };
        assert_eq!(load(&dir).expect("no file is no run"), None);
        save(&dir, &recorded).expect("saved");
        assert_eq!(load(&dir).expect("read"), Some(recorded));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
