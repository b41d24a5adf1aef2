//! The harness crates (crates/harness/), each a binary run with `cargo run`: as a task
//! typed by a person (`forward`) or as a step of `test` (`harness`).

use std::process::ExitCode;

use cacheme_harness::{run, workspace_root};

/// Where each harness task runs: its crate (under crates/harness/) and, for the one
/// binary serving several tasks, the subcommand.
pub const CHAOS: (&str, Option<&str>) = ("cacheme-chaos", None);
pub const BENCH: (&str, Option<&str>) = ("cacheme-bench", None);
pub const E2E: (&str, Option<&str>) = ("cacheme-e2e", None);
pub const IMAGES: (&str, Option<&str>) = ("cacheme-deploy", Some("images"));
pub const COMPOSE: (&str, Option<&str>) = ("cacheme-deploy", Some("compose"));
pub const KIND: (&str, Option<&str>) = ("cacheme-deploy", Some("kind"));

/// `cargo run` of a harness's binary (built first, if need be) with `args`, in the
/// caller's directory (so a relative `--api-bin` means what it meant when typed).
fn harness_command(
    (package, subcommand): (&str, Option<&str>),
    args: &[String],
    env: &[(&str, &str)],
) -> std::process::Command {
    let mut cmd =
        std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.arg("run")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(workspace_root().join("Cargo.toml"))
        .args(["--package", package, "--"])
        .args(subcommand)
        .args(args)
        .envs(env.iter().copied());
    cmd
}

/// A harness as a step of `test`: announced, and an error when it fails.
pub fn harness(
    task: (&str, Option<&str>),
    args: &[String],
    env: &[(&str, &str)],
) -> anyhow::Result<()> {
    let shown: Vec<&str> = task
        .1
        .into_iter()
        .chain(args.iter().map(String::as_str))
        .collect();
    run(
        &format!("{} {}", task.0, shown.join(" ")),
        harness_command(task, args, env),
    )
}

/// A harness as the task typed: its output and its exit code are the task's.
pub fn forward(task: (&str, Option<&str>), typed: &[String]) -> ExitCode {
    match harness_command(task, typed, &[]).status() {
        Ok(status) => status
            .code()
            .and_then(|code| u8::try_from(code).ok())
            .map_or(ExitCode::FAILURE, ExitCode::from),
        Err(e) => {
            eprintln!("xtask: cannot start cargo for {}: {e}", task.0);
            ExitCode::FAILURE
        }
    }
}

/// A harness task as part of `test`: its arguments as typed.
pub fn harness_with(task: (&str, Option<&str>), args: &[&str]) -> anyhow::Result<()> {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    harness(task, &args, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_harness_runs_from_the_callers_directory_with_the_workspace_manifest() {
        let cmd = harness_command(
            IMAGES,
            &["--check".to_owned()],
            &[("REDIS_URL", "redis://x")],
        );
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let manifest = workspace_root().join("Cargo.toml");
        assert_eq!(
            args,
            [
                "run",
                "--quiet",
                "--manifest-path",
                &manifest.to_string_lossy(),
                "--package",
                "cacheme-deploy",
                "--",
                "images",
                "--check",
            ]
        );
        assert_eq!(cmd.get_current_dir(), None, "the caller's directory");
        assert!(cmd.get_envs().any(|(k, v)| k == "REDIS_URL" && v.is_some()));
    }
}
