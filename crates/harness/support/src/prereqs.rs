//! The programs a task needs, checked before it builds anything: a fresh machine learns
//! every missing one at once, with the package that brings it, instead of one at a time
//! minutes into the run.
//!
//! `.ci/run` installs the same Debian packages on a bare machine; a test below keeps the
//! two lists in step.

use std::{path::Path, process::Command};

use cacheme_testsupport::find_binary;

use crate::frontend;

/// How to get a Docker engine on these machines.
pub const ENGINE_HINT: &str = "install Debian's docker.io (apt-get install docker.io) and start \
     the daemon as root (dockerd --iptables=true &, or systemctl start docker); .ci/run does both";

/// How to tell whether a prerequisite is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// A program on the PATH or in PostgreSQL's versioned Debian folders (where
    /// `cacheme_testsupport` finds `initdb` and `postgres`), else at `fallback`.
    Program {
        name: &'static str,
        fallback: Option<&'static str>,
    },
    /// An executable at a fixed path.
    File(&'static str),
    /// A Python able to create `target/tools/venv` (`venv` and `ensurepip`), or that
    /// venv already in place.
    PythonVenv,
    /// Go, new enough, on the PATH.
    Go,
    /// A Docker engine answering `docker info`.
    DockerEngine,
}

/// Where a missing prerequisite comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A Debian package (`apt-get install NAME`).
    Debian(&'static str),
    /// Anything else, said in words.
    Other(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prerequisite {
    /// As named in the message.
    pub name: &'static str,
    pub probe: Probe,
    /// What needs it, for the message.
    pub needed_by: &'static str,
    pub source: Source,
}

const fn program(
    name: &'static str,
    needed_by: &'static str,
    debian_package: &'static str,
) -> Prerequisite {
    Prerequisite {
        name,
        probe: Probe::Program {
            name,
            fallback: None,
        },
        needed_by,
        source: Source::Debian(debian_package),
    }
}

const INITDB: Prerequisite = program("initdb", "throwaway PostgreSQL servers", "postgresql");
const POSTGRES: Prerequisite = program("postgres", "throwaway PostgreSQL servers", "postgresql");
const PSQL: Prerequisite = program(
    "psql",
    "seeding and cleaning databases",
    "postgresql-client",
);
const REDIS_SERVER: Prerequisite =
    program("redis-server", "throwaway Redis servers", "redis-server");

/// What `cargo xtask test` runs: Rust tests and the chaos check on throwaway PostgreSQL
/// and Redis, the packaging checks (Python venv, Helm from npm), the page's build, unit
/// tests and end-to-end tests in Chromium, and the control plane built with Go.
pub const TEST: &[Prerequisite] = &[
    INITDB,
    POSTGRES,
    PSQL,
    REDIS_SERVER,
    program(
        "redis-cli",
        "the Redis Cluster of the test harness",
        "redis-tools",
    ),
    PYTHON_VENV,
    program("node", "the page's build and tests", "nodejs"),
    NPM,
    Prerequisite {
        name: "chromium",
        probe: Probe::File(frontend::CHROMIUM),
        needed_by: "the page's end-to-end tests",
        source: Source::Debian("chromium"),
    },
    GO,
    DOCKER,
    DOCKER_ENGINE,
    MMDEBSTRAP,
    CURL,
    GCC,
    LIBC_STATIC,
    PKG_CONFIG,
    APT_GET,
];

/// The kind node image's static C programs: pause, and runc (cgo).
const GCC: Prerequisite = program("gcc", "the kind node's pause and runc (static)", "gcc");
/// libseccomp-dev's .deb for runc, downloaded and unpacked (not installed).
const APT_GET: Prerequisite = Prerequisite {
    name: "apt-get",
    probe: Probe::Program {
        name: "apt-get",
        fallback: None,
    },
    needed_by: "libseccomp-dev's .deb for the kind node's runc",
    source: Source::Other("a Debian or Ubuntu host (apt-get download libseccomp-dev)"),
};
/// runc's libseccomp binding finds the library with it.
const PKG_CONFIG: Prerequisite =
    program("pkg-config", "the kind node's runc (libseccomp)", "pkgconf");
/// glibc's static library, for the same.
const LIBC_STATIC: Prerequisite = Prerequisite {
    name: "libc.a",
    probe: Probe::File("/usr/lib/x86_64-linux-gnu/libc.a"),
    needed_by: "the kind node's pause and runc (static)",
    source: Source::Debian("libc6-dev"),
};

const CURL: Prerequisite = program("curl", "driving the containers over HTTP", "curl");

const PYTHON_VENV: Prerequisite = Prerequisite {
    name: "python3 with venv",
    probe: Probe::PythonVenv,
    needed_by: "the pinned tools in target/tools/venv",
    source: Source::Debian("python3-venv"),
};
const NPM: Prerequisite = program("npm", "the page's build and tests, and Helm", "npm");
const GO: Prerequisite = Prerequisite {
    name: "go",
    probe: Probe::Go,
    needed_by: "building the Kubernetes control plane (e2e)",
    source: Source::Other(GO_INSTALL),
};
const DOCKER: Prerequisite = program("docker", "building and running the images", "docker.io");
const DOCKER_ENGINE: Prerequisite = Prerequisite {
    name: "a running Docker engine",
    probe: Probe::DockerEngine,
    needed_by: "building and running the images",
    source: Source::Other(ENGINE_HINT),
};
/// Debian root file systems for the base images made here when no registry answers.
const MMDEBSTRAP: Prerequisite = program(
    "mmdebstrap",
    "base images made from Debian's packages",
    "mmdebstrap",
);

/// What `cargo xtask kind` needs: the images' prerequisites, Go (kind, the node's binaries)
/// and gcc.
pub const KIND: &[Prerequisite] = &[
    DOCKER,
    DOCKER_ENGINE,
    MMDEBSTRAP,
    CURL,
    NPM,
    PYTHON_VENV,
    Prerequisite {
        needed_by: "kind, the node's Kubernetes and runtime binaries",
        ..GO
    },
    GCC,
    LIBC_STATIC,
    PKG_CONFIG,
    APT_GET,
];

/// What `cargo xtask images` and `cargo xtask compose` need: the engine, and what the
/// stand-in bases are made with where no registry answers (mmdebstrap, npm, Go), the
/// pinned compose binary (a Python venv) and curl for the checks. `--check` and `--test`
/// also start PostgreSQL and Redis or drive Chromium: `cargo xtask test` checks those.
pub const IMAGES: &[Prerequisite] = &[
    DOCKER,
    DOCKER_ENGINE,
    MMDEBSTRAP,
    CURL,
    NPM,
    PYTHON_VENV,
    Prerequisite {
        needed_by: "Jaeger's stand-in image, built from its Go module",
        ..GO
    },
];

/// Not a Debian package: bookworm's golang-go is far older than the modules need.
const GO_INSTALL: &str =
    "Go 1.26 or newer on the PATH, from https://go.dev/dl (.ci/run adds /usr/local/go/bin)";

/// What `cargo xtask bench` runs: its own PostgreSQL and Redis, wrk, and the baselines.
pub const BENCH: &[Prerequisite] = &[
    INITDB,
    POSTGRES,
    PSQL,
    REDIS_SERVER,
    program("wrk", "the load generator", "wrk"),
    Prerequisite {
        name: "nginx",
        // Debian puts nginx in /usr/sbin, which a non-root PATH may lack.
        probe: Probe::Program {
            name: "nginx",
            fallback: Some("/usr/sbin/nginx"),
        },
        needed_by: "the static-answer baseline",
        source: Source::Debian("nginx"),
    },
    program("redis-benchmark", "the Redis baseline", "redis-tools"),
    program("pgbench", "the PostgreSQL baseline", "postgresql"),
];

/// What `cargo xtask chaos` runs on: its own PostgreSQL and Redis.
pub const CHAOS: &[Prerequisite] = &[INITDB, POSTGRES, PSQL, REDIS_SERVER];

/// Fails, naming every missing prerequisite of `task`, unless all are there.
pub fn check(root: &Path, task: &str, needs: &[Prerequisite]) -> anyhow::Result<()> {
    match missing_message(task, needs, |p| present(root, &p.probe)) {
        None => Ok(()),
        Some(message) => Err(anyhow::anyhow!(message)),
    }
}

/// The message for the prerequisites of `task` that `present` says are missing, or
/// `None` when nothing is.
pub fn missing_message(
    task: &str,
    needs: &[Prerequisite],
    present: impl Fn(&Prerequisite) -> bool,
) -> Option<String> {
    let missing: Vec<&Prerequisite> = needs.iter().filter(|p| !present(p)).collect();
    if missing.is_empty() {
        return None;
    }
    let mut message = format!(
        "`cargo xtask {task}` needs {} this machine lacks (nothing was built or started):",
        if missing.len() == 1 {
            "a program".to_owned()
        } else {
            format!("{} programs", missing.len())
        }
    );
    let mut packages: Vec<&str> = Vec::new();
    for p in &missing {
        let how = match p.source {
            Source::Debian(package) => {
                if !packages.contains(&package) {
                    packages.push(package);
                }
                format!("Debian package {package}")
            }
            Source::Other(how) => how.to_owned(),
        };
        let at = match p.probe {
            Probe::File(path) => format!(" at {path}"),
            _ => String::new(),
        };
        message.push_str(&format!("\n  - {}{at}, for {}: {how}", p.name, p.needed_by));
    }
    if !packages.is_empty() {
        message.push_str(&format!(
            "\nInstall the Debian packages with: apt-get install {}",
            packages.join(" ")
        ));
    }
    Some(message)
}

/// Probes this machine.
fn present(root: &Path, probe: &Probe) -> bool {
    match *probe {
        Probe::Program { name, fallback } => {
            find_binary(name).is_some() || fallback.is_some_and(|f| Path::new(f).is_file())
        }
        Probe::File(path) => Path::new(path).is_file(),
        Probe::PythonVenv => {
            crate::venv_dir(root).join("bin").join("python").is_file()
                || Command::new("python3")
                    .args(["-c", "import venv, ensurepip"])
                    .output()
                    .is_ok_and(|out| out.status.success())
        }
        Probe::Go => crate::go_build::check_go().is_ok(),
        Probe::DockerEngine => Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output()
            .is_ok_and(|out| out.status.success()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_missing_no_message() {
        assert_eq!(missing_message("test", TEST, |_| true), None);
    }

    #[test]
    fn names_every_missing_program_with_its_package_once() {
        let message = missing_message("test", TEST, |p| {
            !["chromium", "initdb", "postgres", "go"].contains(&p.name)
        })
        .expect("some are missing");
        assert!(
            message.starts_with("`cargo xtask test` needs 4 programs this machine lacks"),
            "{message}"
        );
        assert!(
            message.contains("\n  - chromium at /usr/bin/chromium, for the page's end-to-end tests: Debian package chromium"),
            "{message}"
        );
        assert!(
            message.contains(
                "\n  - initdb, for throwaway PostgreSQL servers: Debian package postgresql"
            ),
            "{message}"
        );
        assert!(message.contains("\n  - postgres, "), "{message}");
        assert!(message.contains("\n  - go, for building"), "{message}");
        assert!(message.contains("https://go.dev/dl"), "{message}");
        assert!(
            GO_INSTALL.contains(&format!("Go 1.{} ", crate::go_build::GO_MINOR_NEEDED)),
            "{GO_INSTALL}"
        );
        // One install line, each package once, Go (not a Debian package) left out.
        assert!(
            message.ends_with(
                "\nInstall the Debian packages with: apt-get install postgresql chromium"
            ),
            "{message}"
        );
    }

    #[test]
    fn one_missing_program_is_said_so() {
        let message = missing_message("bench", BENCH, |p| p.name != "wrk").expect("wrk missing");
        assert_eq!(
            message,
            "`cargo xtask bench` needs a program this machine lacks (nothing was built or started):\n  \
             - wrk, for the load generator: Debian package wrk\n\
             Install the Debian packages with: apt-get install wrk"
        );
    }

    #[test]
    fn no_install_line_without_a_debian_package() {
        let message = missing_message("test", TEST, |p| p.name != "go").expect("go missing");
        assert!(!message.contains("apt-get"), "{message}");
    }

    /// Whatever is required here, `.ci/run` installs on a bare machine.
    #[test]
    fn ci_installs_every_debian_package_required() -> anyhow::Result<()> {
        let script = std::fs::read_to_string(crate::workspace_root().join(".ci").join("run"))?;
        let installed: Vec<&str> = script
            .lines()
            .filter_map(|line| line.split_once("apt_packages+=(")?.1.split_once(')'))
            .flat_map(|(packages, _)| packages.split_whitespace())
            .collect();
        for p in TEST
            .iter()
            .chain(BENCH)
            .chain(CHAOS)
            .chain(IMAGES)
            .chain(KIND)
        {
            if let Source::Debian(package) = p.source {
                assert!(
                    installed.contains(&package),
                    "{} needs the Debian package {package}, which .ci/run does not install (it installs {installed:?})",
                    p.name
                );
            }
        }
        Ok(())
    }
}
