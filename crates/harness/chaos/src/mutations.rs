//! `cargo xtask chaos --mutations`: the API built with one consistency mechanism switched
//! off at a time (its test-only `mutations` feature), each run with the faults meant to
//! expose it; the matrix proves the checker notices each removal (issue #22, C10). Where
//! the checker cannot (a race microseconds wide, or a mechanism that only shortens a
//! window inside the bound), an ordinary test of the API holds the interleaving open,
//! and the matrix runs that test with the mutation on and requires it to fail: every
//! mechanism is needed by some check, none kept on faith.

use std::process::Stdio;

use anyhow::Context as _;
use cacheme_harness::cargo;

use super::{options::Options, run_once, verdict_checking};

/// A mechanism switched off, the faults that should expose it, and whether the checker
/// is expected to: each a mutation of the API's `mutations` feature
/// (`crates/api/src/mutation.rs`; the API refuses unknown names).
struct Mutation {
    name: &'static str,
    /// `--faults` for its run (empty: the whole deck).
    faults: &'static [&'static str],
    /// A tighter `--coherence-bound-ms` than the default, where the mechanism promises
    /// more than the 1 s bound (the unmutated build is checked to keep it: see
    /// docs/testing.md).
    coherence_bound_ms: Option<u64>,
    /// More readers than the default 8, where the race the mechanism closes needs
    /// concurrent misses (a CI run of the fill check's mutation with 8 caught nothing).
    readers: Option<usize>,
    /// More readers of the cold products than the default 4, where the mechanism is
    /// seen only when an entry past its TTL is read during a fault.
    cold_readers: Option<usize>,
    /// A longer run than `--duration`, where what exposes the mechanism is rare.
    duration_s: Option<u64>,
    /// Which failure counts as catching it: only what the removed mechanism lets
    /// through, so that an unrelated failure (convergence, availability) cannot pass for
    /// a catch and hide a gap.
    caught_by: CaughtBy,
}

/// What a mutation breaks that a check sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CaughtBy {
    /// The checker's consistency violations: stale reads, a seeded product answered
    /// 404, ...
    Violations,
    /// The checker's cache share under its floor: consistent, but the cache silently off.
    CacheShare,
    /// Not the checker (`why_not_the_checker`): the ordinary integration test `test` of
    /// the API (`crates/api/tests/api`, by its path there), which fails with the mutation.
    Test {
        test: &'static str,
        why_not_the_checker: &'static str,
    },
}

impl CaughtBy {
    /// Why a checker run with `violations` and `cache_share` catches the mutation, if it
    /// does (never for a test's row: the checker does not answer for it).
    fn judge(self, violations: usize, cache_share: f64) -> Option<String> {
        match self {
            CaughtBy::Test { .. } => None,
            CaughtBy::Violations => {
                (violations > 0).then(|| format!("{violations} consistency violations"))
            }
            CaughtBy::CacheShare => (cache_share < super::MIN_CACHE_SHARE).then(|| {
                format!(
                    "only {:.1} % of reads were answered by a cache",
                    cache_share * 100.0
                )
            }),
        }
    }
}

const MUTATIONS: [Mutation; 11] = [
    Mutation {
        name: "no-l1-epoch-check",
        faults: &[],
        coherence_bound_ms: None,
        readers: Some(12),
        cold_readers: None,
        duration_s: None,
        caught_by: CaughtBy::Violations,
    },
    Mutation {
        name: "nothing-pending",
        // Invalidations that never run (a partition) or wait while reads go on (a
        // write pause): other replicas must bypass Redis for the ids owed.
        faults: &["redis-client-pause-write", "redis-partition"],
        // With pending ids, another replica bypasses its caches for an owed id within a
        // poll (250 ms), and L1 is used at most 750 ms after the listener's last answered
        // ping; without them, the id is served stale until the relay's 1 s grace has
        // passed, which lands either side of a 1 s bound (seen: caught in 2 of 3 seeds).
        coherence_bound_ms: Some(850),
        readers: None,
        cold_readers: None,
        duration_s: None,
        caught_by: CaughtBy::Violations,
    },
    Mutation {
        name: "outbox-never-deleted",
        faults: &[],
        coherence_bound_ms: None,
        readers: None,
        cold_readers: None,
        duration_s: None,
        caught_by: CaughtBy::CacheShare,
    },
    Mutation {
        // Not a feature switch: `UNSAFE_SKIP_FILL_CHECK`, both checks of the fill script.
        name: "skip-fill-check",
        faults: &[],
        coherence_bound_ms: None,
        readers: Some(12),
        cold_readers: None,
        duration_s: None,
        caught_by: CaughtBy::Violations,
    },
    Mutation {
        name: "no-invalidate-on-delete",
        faults: &[],
        coherence_bound_ms: None,
        readers: None,
        cold_readers: None,
        duration_s: None,
        caught_by: CaughtBy::Violations,
    },
    Mutation {
        // Needs entries past their stale-while-revalidate window while PostgreSQL is
        // down: the cold products (issue #22, C3) and faults that stop PostgreSQL.
        name: "sie-answers-absent",
        faults: &["pg-partition", "pg-restart"],
        coherence_bound_ms: None,
        readers: None,
        // Each read that meets PostgreSQL down waits up to its 1 s pool timeout: with 4
        // cold readers a seed caught 1 (seeds 1-3: 6-12).
        cold_readers: Some(12),
        // 0 caught on one 30 s seed (29575296; 108 on the next): twice the time, twice the
        // chances of an aged entry read during a PostgreSQL fault.
        duration_s: Some(60),
        caught_by: CaughtBy::Violations,
    },
    Mutation {
        // Issue #22, C5: without pub/sub, another replica's L1 copy of a written id
        // lives out its TTL (5 s), past the 1 s bound. (With an L1 TTL under the bound
        // nothing would notice: the bound would then rest on the TTL, not on pub/sub.)
        name: "listener-ignores-messages",
        faults: &[],
        coherence_bound_ms: None,
        readers: None,
        cold_readers: None,
        duration_s: None,
        caught_by: CaughtBy::Violations,
    },
    Mutation {
        name: "no-invalidate-on-create",
        faults: &[],
        coherence_bound_ms: None,
        readers: None,
        cold_readers: None,
        duration_s: None,
        caught_by: CaughtBy::Test {
            test: "writes::creating_an_id_remembered_as_absent_makes_it_visible",
            why_not_the_checker: "a creation's id is new, and a negative entry is kept only \
             for ids below the highest: one exists for the new id only if a higher id \
             committed first and a read landed in between; the creation's outbox row then \
             makes every replica bypass its caches for the id within a poll (250 ms) and \
             the relay drops the entry. Two concurrent creators, readers of the ids around \
             the highest and slow inserts on one replica did not line that up in 40 s",
        },
    },
    Mutation {
        name: "no-second-l1-drop",
        faults: &[],
        coherence_bound_ms: None,
        readers: None,
        cold_readers: None,
        duration_s: None,
        caught_by: CaughtBy::Test {
            test: "disorder::a_write_is_never_followed_by_an_old_read_on_its_own_replica",
            why_not_the_checker: "the race it closes (a read's epoch taken after the \
             write's first L1 drop, its Redis GET queued before the write's script on the \
             same connection) is a few microseconds wide",
        },
    },
    Mutation {
        name: "lost-does-nothing",
        faults: &[],
        coherence_bound_ms: None,
        readers: None,
        cold_readers: None,
        duration_s: None,
        caught_by: CaughtBy::Test {
            test: "memory_tier::losing_the_invalidation_channel_flushes_and_bypasses_the_memory_tier",
            why_not_the_checker: "L1's lease (750 ms after the last answered ping) stops \
             L1 anyway, inside the 1 s bound: flushing at once on a lost channel shortens \
             the window from up to 750 ms to none, which a 1 s bound cannot see",
        },
    },
    Mutation {
        name: "no-flight-forget-on-write",
        faults: &[],
        coherence_bound_ms: None,
        readers: None,
        cold_readers: None,
        duration_s: None,
        caught_by: CaughtBy::Test {
            test: "joined_loads::a_read_after_a_write_never_joins_a_load_begun_before_it",
            why_not_the_checker: "loads are tagged with the Redis generation, which the \
             write bumps, and the write's own announcement forgets its loads a few \
             milliseconds later: only a load begun without Redis, outliving the write, \
             joined in those milliseconds by a read whose Redis lookup also failed while \
             the write's invalidation succeeded, is at risk; overlapping Redis and \
             PostgreSQL latency did not line that up",
        },
    },
];

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
        why_not_the_checker,
    } = m.caught_by
    {
        eprintln!("==> mutation {} (its test: {test})", m.name);
        eprintln!("    not the checker: {why_not_the_checker}");
        let caught = run_test(m.name, test)?;
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

/// Runs the API's integration test `test` with `mutation` switched on in its process
/// (`CACHEME_MUTATION`, read by the tests' helpers in a build with the `mutations`
/// feature): `Some(why)` when it fails, as it must.
fn run_test(mutation: &str, test: &str) -> anyhow::Result<Option<String>> {
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--package",
        "cacheme-api",
        "--features",
        "mutations",
        "--test",
        "api",
        "--",
        "--exact",
        test,
    ])
    .env("CACHEME_MUTATION", mutation)
    .env_remove("TEST_LOG")
    .env("RUST_BACKTRACE", "0")
    // The build's progress shows; the test's report is read.
    .stderr(Stdio::inherit());
    let out = cmd
        .output()
        .with_context(|| format!("cannot start cargo test for {test}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    test_verdict(out.status.success(), &stdout, mutation, test)
}

/// What one mutated run of `test` says (`passed`: its exit status, `stdout`: its
/// report): `Some(why)` when it failed with the mutation on; an error when it did not
/// run exactly that one test, or failed without the mutation being on (a failure for
/// another reason must not pass for a catch).
fn test_verdict(
    passed: bool,
    stdout: &str,
    mutation: &str,
    test: &str,
) -> anyhow::Result<Option<String>> {
    let ran_one = stdout.lines().any(|l| {
        l.starts_with("test result: ") && (l.contains(" 1 passed;") || l.contains(" 1 failed;"))
    });
    let tail: Vec<&str> = stdout.lines().rev().take(20).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    anyhow::ensure!(
        ran_one,
        "`{test}` did not run as the one test of its run (renamed?); its output ended:\n{}",
        tail.join("\n")
    );
    if passed {
        return Ok(None);
    }
    let marker = format!("{}{mutation}", cacheme_testsupport::MUTATION_ON_MARKER);
    anyhow::ensure!(
        stdout.lines().any(|l| l.trim() == marker),
        "`{test}` failed, but not with {mutation} switched on in its process; its output \
         ended:\n{}",
        tail.join("\n")
    );
    let assertion = stdout
        .lines()
        .skip_while(|l| !l.contains("panicked at"))
        .nth(1)
        .unwrap_or("its assertion")
        .trim();
    Ok(Some(format!("`{test}` fails: {assertion}")))
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

    const MARKER_LINE: &str = "cacheme test process: mutation switched on: lost-does-nothing";

    fn report(result: &str, captured: &str) -> String {
        format!(
            "running 1 test\ntest memory_tier::x ... FAILED\n\nfailures:\n\n---- memory_tier::x \
             stdout ----\n{captured}\nthread 'x' panicked at crates/api/tests/api/x.rs:1:5:\n\
             assertion `left == right` failed\n\nfailures:\n    memory_tier::x\n\n\
             test result: {result}. 0 passed; 1 failed; 0 ignored; 0 measured; 104 filtered out\n"
        )
    }

    #[test]
    fn a_test_catches_only_when_it_failed_with_the_mutation_on() -> anyhow::Result<()> {
        let m = "lost-does-nothing";
        let caught = test_verdict(false, &report("FAILED", MARKER_LINE), m, "x")?;
        assert_eq!(
            caught.as_deref(),
            Some("`x` fails: assertion `left == right` failed")
        );
        // Passed: the mutation slipped through.
        let passed = "running 1 test\ntest x ... ok\n\ntest result: ok. 1 passed; 0 failed; 0 \
                      ignored; 0 measured; 104 filtered out\n";
        assert_eq!(test_verdict(true, passed, m, "x")?, None);
        // Failed without the mutation on: an error, not a catch.
        assert!(test_verdict(false, &report("FAILED", "unrelated"), m, "x").is_err());
        // No such test (renamed): an error, not a pass.
        let none = "running 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 \
                    measured; 105 filtered out\n";
        assert!(test_verdict(true, none, m, "x").is_err());
        // The build failed: no report at all.
        assert!(test_verdict(false, "", m, "x").is_err());
        Ok(())
    }
}
