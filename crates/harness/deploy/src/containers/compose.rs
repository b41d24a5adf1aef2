//! docker-compose.yml, unchanged, as its users run it: `cargo xtask compose` (ports
//! checked first, images built, then `docker compose up`), and the suite's run of it.
//!
//! Where no registry answers, an override file maps the other services' images to
//! stand-ins (bases.rs); it changes no setting of the project's file.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use serde_json::json;

use super::{
    bases::{self, BaseSource, ServiceImages},
    build,
    engine::{Docker, timed},
};

/// The compose file's published ports: variable, default, what it serves.
pub const PORTS: &[(&str, u16, &str)] = &[
    ("FRONTEND_PORT", 3000, "the page"),
    ("API_PORT", 8000, "the API"),
    ("POSTGRES_PORT", 15432, "PostgreSQL"),
    ("REDIS_PORT", 16379, "Redis"),
    ("PGADMIN_PORT", 5050, "pgAdmin"),
    ("REDIS_COMMANDER_PORT", 5540, "Redis Commander"),
    ("JAEGER_UI_PORT", 16686, "Jaeger's UI"),
    ("OTLP_HTTP_PORT", 4318, "Jaeger's OTLP/HTTP receiver"),
];

/// `cargo xtask compose`.
#[derive(Debug, clap::Args)]
pub struct ComposeArgs {
    /// Where the base images come from (see `cargo xtask images --help`).
    #[arg(long, value_enum, default_value = "auto")]
    pub bases: BaseSource,
    /// Instead: the suite's run (a throwaway stack on free ports, driven, then removed).
    #[arg(long)]
    pub test: bool,
    /// What to tell docker compose (default: `up -d --wait`); `down -v` deletes the data.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub compose_args: Vec<String>,
}

/// The ports of `PORTS` already taken on 127.0.0.1, with the variable that moves each,
/// as one message; `None` when all are free.
pub fn taken_ports_message(
    value_of: impl Fn(&str) -> Option<String>,
    taken: impl Fn(u16) -> bool,
) -> Option<String> {
    let mut lines = Vec::new();
    for (var, default, what) in PORTS {
        let port = value_of(var)
            .and_then(|v| v.trim().parse::<u16>().ok())
            .unwrap_or(*default);
        if taken(port) {
            lines.push(format!(
                "  - 127.0.0.1:{port} ({what}) is in use: free it or set {var} to another port"
            ));
        }
    }
    (!lines.is_empty()).then(|| {
        format!(
            "docker compose would stop half-way, with some services started (nothing was started):\n{}\ne.g. {}=18000 cargo xtask compose",
            lines.join("\n"),
            "API_PORT"
        )
    })
}

/// The override: stand-in images for the other services (when local), and, for the
/// suite, volumes of its own so a user's `cache-me-*` data is never touched.
pub(super) fn override_file(
    services: Option<&ServiceImages>,
    volume_prefix: Option<&str>,
) -> serde_json::Value {
    let mut file = json!({});
    if let Some(s) = services {
        file["services"] = json!({
            "postgres": { "image": s.postgres },
            "redis": { "image": s.redis },
            "jaeger": { "image": s.jaeger },
            "pgadmin": { "image": s.pgadmin },
            "redis-commander": { "image": s.redis_commander },
        });
    }
    if let Some(prefix) = volume_prefix {
        file["volumes"] = json!({
            "cache-me-postgres-data": { "name": format!("{prefix}-postgres-data") },
            "cache-me-pgadmin-data": { "name": format!("{prefix}-pgadmin-data") },
        });
    }
    file
}

/// Builds what is missing, then runs docker compose with the user's arguments (`--test`
/// is `containers::compose`'s: the suite).
pub fn run(docker: &Docker, root: &Path, args: &ComposeArgs) -> anyhow::Result<()> {
    let verb = args
        .compose_args
        .first()
        .map(String::as_str)
        .unwrap_or("up");
    let local = bases::choose(docker, args.bases)?;
    let mut files = vec![root.join("docker-compose.yml")];
    if local {
        let services = bases::local_services(docker, root)?;
        files.push(write_override(
            root,
            "compose.offline.json",
            &override_file(Some(&services), None),
        )?);
    }
    // As compose reads them: the shell first, then .env.
    let dotenv = fs::read_to_string(root.join(".env")).unwrap_or_default();
    let value_of = |var: &str| {
        std::env::var(var)
            .ok()
            .or_else(|| dotenv_value(&dotenv, var))
    };
    if verb == "up" && !already_running(docker, &files) {
        if let Some(message) = taken_ports_message(value_of, Docker::port_taken) {
            bail!(message);
        }
        let images = [build::api_image(), build::frontend_image()];
        if !images.iter().all(|i| docker.has_image(i)) {
            let bases = super::bases(
                docker,
                root,
                if local {
                    BaseSource::Local
                } else {
                    BaseSource::Upstream
                },
            )?;
            build::build_images(docker, root, &bases)?;
        }
    }
    let mut cmd = docker.compose();
    for f in &files {
        cmd.arg("--file").arg(f);
    }
    if args.compose_args.is_empty() {
        cmd.args(["up", "--detach", "--wait", "--no-build"]);
    } else {
        cmd.args(&args.compose_args);
    }
    timed(
        &format!(
            "docker compose {}",
            if args.compose_args.is_empty() {
                "up --detach --wait".into()
            } else {
                args.compose_args.join(" ")
            }
        ),
        cmd,
    )?;
    if args.compose_args.is_empty() {
        let port = |var: &str, default: u16| {
            value_of(var)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default)
        };
        eprintln!(
            "==> CacheMe on http://localhost:{} (the API on :{}, docs at /docs); pgAdmin :{}, Redis Commander :{}, Jaeger :{}\n    stop: cargo xtask compose down (add -v to delete the data)",
            port("FRONTEND_PORT", 3000),
            port("API_PORT", 8000),
            port("PGADMIN_PORT", 5050),
            port("REDIS_COMMANDER_PORT", 5540),
            port("JAEGER_UI_PORT", 16686),
        );
    }
    Ok(())
}

/// `var`'s value in a .env file's text (`KEY=VALUE`, optionally quoted; comments skipped;
/// the last line wins).
pub fn dotenv_value(text: &str, var: &str) -> Option<String> {
    text.lines()
        .rev()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.trim() == var)
        .map(|(_, v)| v.trim().trim_matches(|c| c == '"' || c == '\'').to_owned())
        .next()
}

/// The stack already runs: its own ports are not a conflict (`up` again is a no-op).
fn already_running(docker: &Docker, files: &[PathBuf]) -> bool {
    let mut ps = docker.compose();
    for f in files {
        ps.arg("--file").arg(f);
    }
    ps.args(["ps", "--quiet"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.iter().all(u8::is_ascii_whitespace))
}

pub(super) fn write_override(
    root: &Path,
    name: &str,
    file: &serde_json::Value,
) -> anyhow::Result<PathBuf> {
    let path = root.join("target").join("images").join(name);
    fs::create_dir_all(path.parent().context("no parent")?)?;
    fs::write(&path, serde_json::to_vec_pretty(file)?)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_named_with_its_variable_before_anything_starts() {
        let message = taken_ports_message(|_| None, |p| p == 8000).expect("8000 is taken");
        assert!(
            message.contains("127.0.0.1:8000 (the API) is in use"),
            "{message}"
        );
        assert!(message.contains("set API_PORT"), "{message}");
        assert!(!message.contains("3000"), "{message}");
        let moved = taken_ports_message(
            |v| (v == "API_PORT").then(|| "18000".to_string()),
            |p| p == 8000,
        );
        assert_eq!(moved, None);
        assert_eq!(taken_ports_message(|_| None, |_| false), None);
    }

    #[test]
    fn dotenv_values_are_read_as_compose_reads_them() {
        let text = "# API_PORT=1\nAPI_PORT=18000\nFRONTEND_PORT=\"13000\"\nX=1=2\n";
        assert_eq!(dotenv_value(text, "API_PORT").as_deref(), Some("18000"));
        assert_eq!(
            dotenv_value(text, "FRONTEND_PORT").as_deref(),
            Some("13000")
        );
        assert_eq!(dotenv_value(text, "X").as_deref(), Some("1=2"));
        assert_eq!(dotenv_value(text, "PGADMIN_PORT"), None);
    }

    #[test]
    fn the_ports_are_the_compose_files() -> anyhow::Result<()> {
        let text =
            fs::read_to_string(cacheme_harness::workspace_root().join("docker-compose.yml"))?;
        for (var, default, _) in PORTS {
            assert!(
                text.contains(&format!("${{{var}:-{default}}}")),
                "docker-compose.yml does not publish ${{{var}:-{default}}}"
            );
        }
        Ok(())
    }

    #[test]
    fn the_suite_never_touches_the_users_volumes() {
        let file = override_file(None, Some("cacheme-test-1"));
        // Redis keeps nothing on disk, so it has no volume.
        for volume in ["postgres", "pgadmin"] {
            assert_eq!(
                file["volumes"][format!("cache-me-{volume}-data")]["name"],
                format!("cacheme-test-1-{volume}-data")
            );
        }
    }
}
