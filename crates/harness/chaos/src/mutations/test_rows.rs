//! The rows the checker cannot catch: the API's integration test that holds the race
//! open, run with the mutation on, must fail, and say that the mutation was on.

use std::process::Stdio;

use anyhow::Context as _;
use cacheme_harness::cargo;

/// Runs the API's integration test `test` with `mutation` switched on in its process
/// (`CACHEME_MUTATION`, read by the tests' helpers in a build with the `mutations`
/// feature): `Some(why)` when it fails, as it must.
pub(super) fn run_test(mutation: &str, test: &str, expect: &str) -> anyhow::Result<Option<String>> {
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
    test_verdict(out.status.success(), &stdout, mutation, test, expect)
}

/// What one mutated run of `test` says (`passed`: its exit status, `stdout`: its
/// report): `Some(why)` when it failed with the mutation on and its report shows
/// `expect` (the assertion that sees the mechanism missing); an error when it did not
/// run exactly that one test, or failed without the mutation on or at another step (a
/// failure for another reason must not pass for a catch).
fn test_verdict(
    passed: bool,
    stdout: &str,
    mutation: &str,
    test: &str,
    expect: &str,
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
    anyhow::ensure!(
        stdout.contains(expect),
        "`{test}` failed with {mutation} on, but not where it sees the mechanism missing \
         (no {expect:?} in its report); its output ended:\n{}",
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

#[cfg(test)]
mod tests {
    use super::*;

    const MARKER_LINE: &str = "cacheme test process: mutation switched on: lost-does-nothing";

    fn report(result: &str, captured: &str) -> String {
        format!(
            "running 1 test\ntest memory_tier::x ... FAILED\n\nfailures:\n\n---- memory_tier::x \
             stdout ----\n{captured}\nthread 'x' panicked at crates/api/tests/api/x.rs:1:5:\n\
             assertion `left == right` failed\n  left: Number(1)\n right: 0\n\nfailures:\n    memory_tier::x\n\n\
             test result: {result}. 0 passed; 1 failed; 0 ignored; 0 measured; 104 filtered out\n"
        )
    }

    #[test]
    fn a_test_catches_only_when_it_failed_with_the_mutation_on() -> anyhow::Result<()> {
        let m = "lost-does-nothing";
        let caught = test_verdict(false, &report("FAILED", MARKER_LINE), m, "x", "right: 0")?;
        assert_eq!(
            caught.as_deref(),
            Some("`x` fails: assertion `left == right` failed")
        );
        // Passed: the mutation slipped through.
        let passed = "running 1 test\ntest x ... ok\n\ntest result: ok. 1 passed; 0 failed; 0 \
                      ignored; 0 measured; 104 filtered out\n";
        assert_eq!(test_verdict(true, passed, m, "x", "right: 0")?, None);
        // Failed without the mutation on: an error, not a catch.
        assert!(test_verdict(false, &report("FAILED", "unrelated"), m, "x", "right: 0").is_err());
        // Failed with the mutation on, but at another step: an error, not a catch.
        assert!(test_verdict(false, &report("FAILED", MARKER_LINE), m, "x", "right: 1").is_err());
        // No such test (renamed): an error, not a pass.
        let none = "running 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 \
                    measured; 105 filtered out\n";
        assert!(test_verdict(true, none, m, "x", "right: 0").is_err());
        // The build failed: no report at all.
        assert!(test_verdict(false, "", m, "x", "right: 0").is_err());
        Ok(())
    }
}
