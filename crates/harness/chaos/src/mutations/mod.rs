//! `cargo xtask chaos --mutations`: the API built with one consistency mechanism switched
//! off at a time (its test-only `mutations` feature), each run with the faults meant to
//! expose it; the matrix proves the checker notices each removal (issue #22, C10). Where
//! the checker cannot (a race microseconds wide, or a mechanism that only shortens a
//! window inside the bound), an ordinary test of the API holds the interleaving open,
//! and the matrix runs that test with the mutation on and requires it to fail: every
//! mechanism is needed by some check, none kept on faith.

mod rows;
mod test_rows;

use rows::{CaughtBy, MUTATIONS, Mutation};
use test_rows::run_test;

use super::{options::Options, run::run_once, verdict::verdict_checking};
/// One run per mutation, each with the faults meant to expose it, or its ordinary test;
/// fails unless every mutation was caught.
///
/// A mutation the checker did not catch gets one more run, on the next seed: what the
/// matrix asks is whether the checker *can* see the removal, and the races some
/// mechanisms close are met a handful of times in 30 s (3 stale reads on one seed, 51
/// and 163 on others), so a single unlucky seed would make a red CI of a sound checker.
/// Both runs are reported; the unmutated runs get no second chance, and neither does a
/// test (it holds its interleaving open: it fails every time or never).
pub fn run(opts: &Options, typed: &[String]) -> anyhow::Result<()> {
    let rows = judge(MUTATIONS.iter(), opts.seed, |m, seed| {
        run_one(m, opts, typed, seed)
    })?;
    eprintln!("==> mutations (each mechanism switched off in turn):");
    for row in &rows {
        let (time, how) = match row.mutation.caught_by {
            CaughtBy::Test { test, .. } => ("  -".to_owned(), format!("test {test}")),
            _ => (
                format!("{:>3} s", duration_of(row.mutation, opts)),
                faults_text(row.mutation.faults),
            ),
        };
        eprintln!(
            "    {:<28} {:<22} {time}  {how}",
            row.mutation.name,
            row.verdict(),
        );
    }
    let wrong: Vec<String> = rows
        .iter()
        .filter(|r| r.failed())
        .map(|r| match r.mutation.caught_by {
            CaughtBy::Test { test, .. } => {
                format!("{}: `{test}` passes with it switched off", r.mutation.name)
            }
            _ => format!("{} was not caught on two seeds", r.mutation.name),
        })
        .collect();
    anyhow::ensure!(
        wrong.is_empty(),
        "the mutation matrix: {}",
        wrong.join("; ")
    );
    Ok(())
}

/// One mutation's outcome: why its check failed (`None`: it passed, the mutation slipped
/// through), and on how many seeds it was tried.
struct Row {
    mutation: &'static Mutation,
    caught: Option<String>,
    tries: u32,
}

impl Row {
    fn failed(&self) -> bool {
        self.caught.is_none()
    }

    fn verdict(&self) -> &'static str {
        match (&self.caught, self.mutation.caught_by) {
            (None, _) => "NOT CAUGHT",
            (Some(_), CaughtBy::Test { .. }) => "caught by its test",
            (Some(_), _) if self.tries > 1 => "caught (second seed)",
            (Some(_), _) => "caught",
        }
    }
}

/// Runs each mutation on `seed` (`run` answers why its check failed, if it did), and
/// one the checker did not catch once more on the next seed.
fn judge(
    mutations: impl Iterator<Item = &'static Mutation>,
    seed: u64,
    mut run: impl FnMut(&Mutation, u64) -> anyhow::Result<Option<String>>,
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for m in mutations {
        let mut row = Row {
            mutation: m,
            caught: run(m, seed)?,
            tries: 1,
        };
        if row.failed() && !matches!(m.caught_by, CaughtBy::Test { .. }) {
            let next = seed.wrapping_add(1);
            eprintln!(
                "    {}: not caught on seed {seed}; once more on seed {next}",
                m.name
            );
            row.caught = run(m, next)?;
            row.tries = 2;
        }
        rows.push(row);
    }
    Ok(rows)
}

/// How long `m` runs: `--duration`, or its row's when that is longer.
fn duration_of(m: &Mutation, opts: &Options) -> u64 {
    m.duration_s
        .map_or(opts.duration_s, |d| d.max(opts.duration_s))
}

/// One run of `m` on `seed`: `Some(why)` when its check failed.
fn run_one(
    m: &Mutation,
    opts: &Options,
    typed: &[String],
    seed: u64,
) -> anyhow::Result<Option<String>> {
    if let CaughtBy::Test {
        test,
        expect,
        why_not_the_checker,
    } = m.caught_by
    {
        eprintln!("==> mutation {} (its test: {test})", m.name);
        eprintln!("    not the checker: {why_not_the_checker}");
        let caught = run_test(m.name, test, expect)?;
        eprintln!(
            "    {}: {}",
            m.name,
            caught
                .as_ref()
                .map_or("NOT CAUGHT: its test passes".to_owned(), |e| format!(
                    "caught ({e})"
                ))
        );
        return Ok(caught);
    }
    eprintln!(
        "==> mutation {} (faults: {}, seed {seed})",
        m.name,
        faults_text(m.faults)
    );
    let mut one = opts.clone();
    one.seed = seed;
    one.mutations = false;
    one.faults = m.faults.iter().map(|f| (*f).to_owned()).collect();
    if let Some(bound) = m.coherence_bound_ms {
        one.coherence_bound_ms = bound;
    }
    if let Some(readers) = m.readers {
        one.readers = readers;
    }
    if let Some(cold_readers) = m.cold_readers {
        one.cold_readers = cold_readers;
    }
    one.duration_s = duration_of(m, opts);
    if m.name == "skip-fill-check" {
        one.unsafe_skip_fill_check = true;
    } else {
        one.mutation = Some(m.name.to_owned());
    }
    let mut typed = typed.to_vec();
    typed.push(format!(
        "(mutation {}, faults {}, seed {seed})",
        m.name,
        faults_text(m.faults)
    ));
    let report = run_once(&one, &typed)?;
    let caught = m
        .caught_by
        .judge(report.violations_total, report.cache_share);
    // Any other failing check is reported, not counted: the unmutated runs answer for
    // those.
    if caught.is_none()
        && let Err(other) = verdict_checking(&one, &report, false)
    {
        eprintln!(
            "    {}: not caught, but the run failed otherwise: {other}",
            m.name
        );
    }
    eprintln!(
        "    {}: {}",
        m.name,
        caught
            .as_ref()
            .map_or("NOT CAUGHT".to_owned(), |e| format!("caught ({e})"))
    );
    Ok(caught)
}
fn faults_text(faults: &[&str]) -> String {
    if faults.is_empty() {
        "every kind".into()
    } else {
        faults.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str) -> &'static Mutation {
        MUTATIONS
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no mutation {name}"))
    }

    #[test]
    fn only_what_the_mechanism_lets_through_counts_as_a_catch() {
        assert_eq!(
            CaughtBy::Violations.judge(0, 0.1),
            None,
            "a low cache share"
        );
        assert!(CaughtBy::Violations.judge(3, 0.9).is_some());
        assert_eq!(CaughtBy::CacheShare.judge(5, 0.9), None, "violations");
        assert!(CaughtBy::CacheShare.judge(0, 0.1).is_some());
        assert_eq!(
            named("outbox-never-deleted").caught_by,
            CaughtBy::CacheShare
        );
        assert_eq!(named("skip-fill-check").caught_by, CaughtBy::Violations);
    }

    #[test]
    fn a_miss_gets_one_more_seed_and_two_misses_fail() -> anyhow::Result<()> {
        let caught = || Some("1 consistency violation".to_owned());
        let mut seen = Vec::new();
        let rows = judge(
            [
                "no-l1-epoch-check",
                "nothing-pending",
                "skip-fill-check",
                "lost-does-nothing",
                "no-second-l1-drop",
            ]
            .into_iter()
            .map(named),
            41,
            |m, seed| {
                seen.push((m.name, seed));
                Ok(match (m.name, seed) {
                    // Missed on the first seed only.
                    ("no-l1-epoch-check", 42) => caught(),
                    ("nothing-pending", 41) => caught(),
                    // Missed on both.
                    ("skip-fill-check", _) => None,
                    // A test that passes with the mutation: never rerun.
                    ("lost-does-nothing", _) => None,
                    ("no-second-l1-drop", _) => caught(),
                    _ => None,
                })
            },
        )?;
        assert_eq!(
            seen,
            [
                ("no-l1-epoch-check", 41),
                ("no-l1-epoch-check", 42),
                ("nothing-pending", 41),
                ("skip-fill-check", 41),
                ("skip-fill-check", 42),
                ("lost-does-nothing", 41),
                ("no-second-l1-drop", 41),
            ]
        );
        let verdicts: Vec<(&str, bool)> = rows.iter().map(|r| (r.verdict(), r.failed())).collect();
        assert_eq!(
            verdicts,
            [
                ("caught (second seed)", false),
                ("caught", false),
                ("NOT CAUGHT", true),
                ("NOT CAUGHT", true),
                ("caught by its test", false),
            ]
        );
        Ok(())
    }

    #[test]
    fn every_mechanism_is_needed_by_the_checker_or_a_named_test() {
        let by_test: Vec<&str> = MUTATIONS
            .iter()
            .filter(|m| matches!(m.caught_by, CaughtBy::Test { .. }))
            .map(|m| m.name)
            .collect();
        assert_eq!(
            by_test,
            [
                "no-invalidate-on-create",
                "no-second-l1-drop",
                "lost-does-nothing",
                "no-flight-forget-on-write"
            ]
        );
        // Every mutation the API knows is a row, and every row but the fill check's
        // (an environment variable of its own) is one the API knows.
        let api = std::fs::read_to_string(
            cacheme_harness::workspace_root().join("crates/api/src/mutation.rs"),
        )
        .expect("the API's mutations");
        for m in &MUTATIONS {
            assert!(
                m.name == "skip-fill-check" || api.contains(&format!("\"{}\"", m.name)),
                "{} is not a mutation of crates/api/src/mutation.rs",
                m.name
            );
        }
        let known: usize = api
            .split_once("pub const ALL: [(&str, Mutation); ")
            .and_then(|(_, rest)| rest.split_once(']'))
            .and_then(|(n, _)| n.parse().ok())
            .expect("the API's list of mutations");
        assert_eq!(
            known,
            MUTATIONS.len() - 1,
            "a mutation of the API without a row in the matrix"
        );
    }
}
