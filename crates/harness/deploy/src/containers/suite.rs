//! The suite's run of docker-compose.yml (`cargo xtask compose --test`, part of `cargo
//! xtask test`): the unchanged file up on free ports with a project and volumes of its
//! own, driven as its users would, then `down -v` leaving nothing.

use std::{
    fs,
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::ensure;

use super::{
    admin_tools,
    bases::{self},
    compose::{PORTS, override_file, write_override},
    engine::{Docker, timed},
    http::Request,
};

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
    fs::write(override_path.with_file_name("empty.env"), "")?;
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
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ] {
            cmd.env_remove(var);
        }
        for (var, port) in &self.ports {
            cmd.env(var, port.to_string());
        }
        cmd.env("ADMIN_TOKEN", &self.token)
            .env("COMPOSE_PROJECT_NAME", &self.project)
            // Not the developer's .env: the suite runs the file's defaults.
            .arg("--env-file")
            .arg(self.files[1].with_file_name("empty.env"))
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
        admin_tools::redis_commander_lists_keys(
            &self.url("REDIS_COMMANDER_PORT"),
            "R:redis:6379:0",
        )?;
        admin_tools::jaeger_has_traces(&self.url("JAEGER_UI_PORT"))?;
        self.api_log_has_no_error()?;
        Ok(())
    }

    /// The page's own end-to-end suite (Playwright in Debian's Chromium), against the
    /// page's nginx instead of the API serving it.
    fn page_in_chromium(&self, root: &Path) -> anyhow::Result<()> {
        let frontend = root.join("frontend");
        cacheme_harness::frontend::install(&frontend)?;
        let mut e2e = std::process::Command::new("npm");
        e2e.args(["run", "test:e2e"])
            .current_dir(&frontend)
            .env("CACHEME_URL", self.url("FRONTEND_PORT"))
            .env("CHROMIUM_PATH", cacheme_harness::frontend::CHROMIUM)
            .env("CACHEME_TOKEN", &self.token)
            // The header's tool links are the image's build arguments (frontend/Dockerfile's
            // defaults, as `cargo xtask images` builds it), not this run's ports.
            .env("PUBLIC_PGADMIN_URL", "http://localhost:5050")
            .env("PUBLIC_REDIS_COMMANDER_URL", "http://localhost:5540")
            .env("PUBLIC_JAEGER_URL", "http://localhost:16686");
        cacheme_harness::run(
            "npm run test:e2e (Chromium against the compose stack's page)",
            e2e,
        )
    }

    fn pgadmin(&self) -> anyhow::Result<()> {
        let logs = self.logs("pgadmin")?;
        ensure!(
            logs.contains("Added 1 Server Group(s) and 1 Server(s)"),
            "pgAdmin did not import the compose file's server list:\n{logs}"
        );
        let jar = self.files[1].with_file_name(format!("{}.pgadmin-cookies", self.project));
        let result = admin_tools::pgadmin_connects(
            &self.url("PGADMIN_PORT"),
            &jar,
            &admin_tools::PgAdminLogin::compose_defaults(),
        );
        let _ = fs::remove_file(&jar);
        result
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
        // By the project's label, not a name prefix (pid 12 would match pid 123's).
        let volumes = self
            .docker
            .output(&["volume", "ls", "--quiet", "--filter", &label])?;
        ensure!(
            containers.is_empty() && volumes.is_empty(),
            "left after down -v: containers {containers:?}, volumes {volumes:?}"
        );
        eprintln!("    ok: down -v left no container and no volume");
        Ok(())
    }
}
