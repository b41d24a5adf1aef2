//! docker-compose.yml, unchanged, as its users run it: `cargo xtask compose` (ports
//! checked first, images built, then `docker compose up`), and the suite's run of it.
//!
//! Where no registry answers, an override file maps the other services' images to
//! stand-ins (bases.rs); it changes no setting of the project's file.

use std::{
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use serde_json::json;

use super::{
    bases::{self, BaseSource, ServiceImages},
    build,
    engine::{Docker, timed},
    http::Request,
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
fn override_file(
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
            "cache-me-redis-data": { "name": format!("{prefix}-redis-data") },
            "cache-me-pgadmin-data": { "name": format!("{prefix}-pgadmin-data") },
        });
    }
    file
}

/// Builds what is missing, then runs docker compose with the user's arguments.
pub fn compose(args: &ComposeArgs) -> anyhow::Result<()> {
    let root = crate::workspace_root();
    crate::prereqs::check(&root, "compose", crate::prereqs::IMAGES)?;
    let (docker, _tools) = super::docker(&root)?;
    if args.test {
        let bases = super::bases(&docker, &root, args.bases)?;
        build::build_images(&docker, &root, &bases)?;
        return test(&docker, &root, bases.local);
    }
    let verb = args
        .compose_args
        .first()
        .map(String::as_str)
        .unwrap_or("up");
    let local = bases::choose(&docker, args.bases)?;
    let mut files = vec![root.join("docker-compose.yml")];
    if local {
        let services = bases::local_services(&docker, &root)?;
        files.push(write_override(
            &root,
            "compose.offline.json",
            &override_file(Some(&services), None),
        )?);
    }
    if verb == "up" {
        if let Some(message) = taken_ports_message(|v| std::env::var(v).ok(), Docker::port_taken) {
            bail!(message);
        }
        let images = [build::api_image(), build::frontend_image()];
        if !images.iter().all(|i| docker.has_image(i)) {
            let bases = super::bases(
                &docker,
                &root,
                if local {
                    BaseSource::Local
                } else {
                    BaseSource::Upstream
                },
            )?;
            build::build_images(&docker, &root, &bases)?;
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
            std::env::var(var)
                .ok()
                .and_then(|v| v.parse().ok())
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

fn write_override(root: &Path, name: &str, file: &serde_json::Value) -> anyhow::Result<PathBuf> {
    let path = root.join("target").join("images").join(name);
    fs::create_dir_all(path.parent().context("no parent")?)?;
    fs::write(&path, serde_json::to_vec_pretty(file)?)?;
    Ok(path)
}

/// The suite's run: the unchanged file up with every service healthy, driven through
/// the page's nginx, the tools and Jaeger checked, then `down -v` leaving nothing.
pub fn test(docker: &Docker, root: &Path, local: bool) -> anyhow::Result<()> {
    let services = if local {
        Some(bases::local_services(docker, root)?)
    } else {
        None
    };
    let project = format!("cacheme-test-{}", std::process::id());
    let override_path = write_override(
        root,
        "compose.test.json",
        &override_file(services.as_ref(), Some(&project)),
    )?;
    let mut ports = Vec::new();
    for (var, _, _) in PORTS {
        ports.push((*var, cacheme_testsupport::free_port()?));
    }
    let token = format!("compose-test-{}", std::process::id());
    let stack = Stack {
        docker,
        files: vec![root.join("docker-compose.yml"), override_path],
        project,
        ports,
        token,
    };
    let result = stack.up().and_then(|()| stack.drive(root));
    if result.is_err() {
        stack.show_state();
    }
    let down = stack.down();
    result?;
    down
}

struct Stack<'a> {
    docker: &'a Docker,
    files: Vec<PathBuf>,
    project: String,
    ports: Vec<(&'static str, u16)>,
    token: String,
}

impl Stack<'_> {
    fn port(&self, var: &str) -> u16 {
        self.ports
            .iter()
            .find(|(v, _)| *v == var)
            .map(|(_, p)| *p)
            .unwrap_or_default()
    }

    fn url(&self, var: &str) -> String {
        format!("http://127.0.0.1:{}", self.port(var))
    }

    fn compose(&self) -> std::process::Command {
        let mut cmd = self.docker.compose();
        // Only what this run sets: nothing from the shell or a .env file changes the file.
        for var in [
            "COMPOSE_FILE",
            "COMPOSE_PROFILES",
            "POSTGRES_USER",
            "POSTGRES_PASSWORD",
            "POSTGRES_DB",
            "REDIS_PASSWORD",
            "CACHE_TTL_SECONDS",
            "SIMULATED_DB_LATENCY_MS",
            "CORS_ALLOWED_ORIGINS",
            "LOG_FORMAT",
            "RUST_LOG",
            "PGADMIN_EMAIL",
            "PGADMIN_PASSWORD",
        ] {
            cmd.env_remove(var);
        }
        for (var, port) in &self.ports {
            cmd.env(var, port.to_string());
        }
        cmd.env("ADMIN_TOKEN", &self.token)
            .env("COMPOSE_PROJECT_NAME", &self.project)
            .arg("--project-directory")
            .arg(self.files[0].parent().unwrap_or(Path::new(".")));
        for f in &self.files {
            cmd.arg("--file").arg(f);
        }
        cmd
    }

    fn up(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut up = self.compose();
        up.args([
            "up",
            "--detach",
            "--wait",
            "--wait-timeout",
            "240",
            "--no-build",
        ]);
        timed(
            "docker compose up --detach --wait (the unchanged docker-compose.yml)",
            up,
        )?;
        eprintln!(
            "    ok: every service healthy {:.0} s after `up`",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    fn drive(&self, root: &Path) -> anyhow::Result<()> {
        let page = self.url("FRONTEND_PORT");
        let api = self.url("API_PORT");
        let get = |url: String| Request::get(url).send();
        // Through the page's nginx, as the browser reaches the API.
        let (status, body) = get(format!("{page}/products/1"))?;
        ensure!(
            status == 200 && body.contains("\"source\":\"database\""),
            "first read through the page's nginx: {status} {body}"
        );
        let (status, body) = get(format!("{page}/products/1"))?;
        ensure!(
            status == 200 && body.contains("\"source\":\"cache\""),
            "second read through the page's nginx: {status} {body}"
        );
        eprintln!("    ok: GET /products/1 through the page's nginx: database, then cache");
        let patch = |token: Option<&str>| {
            let mut r = Request {
                method: "PATCH",
                url: format!("{page}/products/1"),
                body: Some(r#"{"name":"Renamed by the compose test"}"#.into()),
                ..Request::default()
            }
            .header("Content-Type: application/json");
            if let Some(t) = token {
                r = r.header(format!("Authorization: Bearer {t}"));
            }
            r.send()
        };
        let (status, body) = patch(None)?;
        ensure!(
            status == 401,
            "a write without the token answered {status}: {body}"
        );
        let (status, body) = patch(Some(&self.token))?;
        ensure!(
            status == 200,
            "a write with the token answered {status}: {body}"
        );
        let (status, body) = get(format!("{page}/products/1"))?;
        ensure!(
            status == 200 && body.contains("Renamed by the compose test"),
            "the read after the write: {status} {body}"
        );
        eprintln!("    ok: a write without the token 401, with it 200, and the next read sees it");
        let (status, body) = get(format!("{api}/health"))?;
        ensure!(
            status == 200 && body.contains("\"status\":\"healthy\""),
            "/health on the API's port: {status} {body}"
        );
        eprintln!("    ok: /health healthy on the API's own port");
        self.page_in_chromium(root)?;
        self.pgadmin()?;
        self.redis_commander()?;
        self.jaeger()?;
        self.api_log_has_no_error()?;
        Ok(())
    }

    /// The page's own end-to-end suite (Playwright in Debian's Chromium), against the
    /// page's nginx instead of the API serving it.
    fn page_in_chromium(&self, root: &Path) -> anyhow::Result<()> {
        let frontend = root.join("frontend");
        crate::frontend::install(&frontend)?;
        let mut e2e = std::process::Command::new("npm");
        e2e.args(["run", "test:e2e"])
            .current_dir(&frontend)
            .env("CACHEME_URL", self.url("FRONTEND_PORT"))
            .env("CHROMIUM_PATH", crate::frontend::CHROMIUM)
            .env("CACHEME_TOKEN", &self.token)
            // The header's tool links are the image's build arguments (frontend/Dockerfile's
            // defaults, as `cargo xtask images` builds it), not this run's ports.
            .env("PUBLIC_PGADMIN_URL", "http://localhost:5050")
            .env("PUBLIC_REDIS_COMMANDER_URL", "http://localhost:5540")
            .env("PUBLIC_JAEGER_URL", "http://localhost:16686");
        crate::run(
            "npm run test:e2e (Chromium against the compose stack's page)",
            e2e,
        )
    }

    fn pgadmin(&self) -> anyhow::Result<()> {
        let base = self.url("PGADMIN_PORT");
        Request::get(format!("{base}/misc/ping"))
            .until(Duration::from_secs(60), |s, _| s == 200)?;
        let logs = self.logs("pgadmin")?;
        ensure!(
            logs.contains("Added 1 Server Group(s) and 1 Server(s)"),
            "pgAdmin did not import the compose file's server list:\n{logs}"
        );
        eprintln!("    ok: pgAdmin answers and imported the PostgreSQL server");
        Ok(())
    }

    fn redis_commander(&self) -> anyhow::Result<()> {
        let base = self.url("REDIS_COMMANDER_PORT");
        let (status, _) = Request::get(format!("{base}/")).send()?;
        ensure!(status == 200, "Redis Commander answered {status}");
        let (status, body) = Request::get(format!("{base}/apiv2/server/info")).send()?;
        ensure!(
            status == 200 && body.contains("\"Redis version\""),
            "Redis Commander's server info: {status} {}",
            body.chars().take(300).collect::<String>()
        );
        // The keys the API wrote: product 1's entry and its generation, under cacheme:v1:.
        let (status, body) =
            Request::get(format!("{base}/apiv2/keystree/R:redis:6379:0/cacheme:v1:")).send()?;
        ensure!(
            status == 200 && body.contains("product"),
            "Redis Commander's keys under cacheme:v1: {status} {}",
            body.chars().take(300).collect::<String>()
        );
        eprintln!(
            "    ok: Redis Commander answers, connected to Redis, listing the API's cacheme:v1: keys"
        );
        Ok(())
    }

    fn jaeger(&self) -> anyhow::Result<()> {
        let base = self.url("JAEGER_UI_PORT");
        Request::get(format!("{base}/api/traces?service=cacheme-api&limit=1"))
            .until(Duration::from_secs(60), |s, body| {
                s == 200 && body.contains("\"traceID\"")
            })?;
        eprintln!("    ok: the API's traces arrived in Jaeger");
        Ok(())
    }

    fn api_log_has_no_error(&self) -> anyhow::Result<()> {
        let logs = self.logs("api")?;
        let errors: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("\"level\":\"ERROR\""))
            .collect();
        // JSON logs (LOG_FORMAT=json): a changed format must not make this check vacuous.
        ensure!(
            logs.contains("\"level\":\"INFO\""),
            "the API's log has no JSON INFO line: is LOG_FORMAT=json still set?\n{logs}"
        );
        ensure!(
            errors.is_empty(),
            "the API logged errors:\n{}",
            errors.join("\n")
        );
        eprintln!("    ok: no ERROR in the API's log");
        Ok(())
    }

    fn logs(&self, service: &str) -> anyhow::Result<String> {
        let out = self
            .compose()
            .args(["logs", "--no-color", service])
            .output()?;
        Ok(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }

    fn show_state(&self) {
        let _ = self.compose().args(["ps", "--all"]).status();
        let _ = self
            .compose()
            .args(["logs", "--no-color", "--tail", "40"])
            .status();
    }

    /// `down -v`, then nothing of the project may be left.
    fn down(&self) -> anyhow::Result<()> {
        let mut down = self.compose();
        down.args(["down", "--volumes", "--remove-orphans"]);
        timed("docker compose down --volumes", down)?;
        let label = format!("label=com.docker.compose.project={}", self.project);
        let containers = self
            .docker
            .output(&["ps", "--all", "--quiet", "--filter", &label])?;
        let volumes = self.docker.output(&[
            "volume",
            "ls",
            "--quiet",
            "--filter",
            &format!("name={}", self.project),
        ])?;
        ensure!(
            containers.is_empty() && volumes.is_empty(),
            "left after down -v: containers {containers:?}, volumes {volumes:?}"
        );
        eprintln!("    ok: down -v left no container and no volume");
        Ok(())
    }
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
    fn the_ports_are_the_compose_files() -> anyhow::Result<()> {
        let text = fs::read_to_string(crate::workspace_root().join("docker-compose.yml"))?;
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
        for volume in ["postgres", "redis", "pgadmin"] {
            assert_eq!(
                file["volumes"][format!("cache-me-{volume}-data")]["name"],
                format!("cacheme-test-1-{volume}-data")
            );
        }
    }
}
