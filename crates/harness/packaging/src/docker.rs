//! The images' Dockerfiles and docker-compose.yml.

use std::{fs, path::Path, process::Command};

use super::tools::{Tools, output, rel, step};

/// Host ports of docker-compose.yml: `host=service:container`, the original's plus Jaeger,
/// except PostgreSQL and Redis, which stay off 5432/6379 where local servers listen. Every
/// published port must be bound to 127.0.0.1 (the compose credentials are well known).
const COMPOSE_PORTS: &str = "3000=frontend:8080,8000=api:8000,15432=postgres:5432,\
16379=redis:6379,5050=pgadmin:5050,5540=redis-commander:8081,16686=jaeger:16686";

/// Parses `dockerfile` (BuildKit heredocs included) and checks that every COPY/ADD
/// source exists in `context` and is not excluded by its .dockerignore, that the build
/// is multi-stage and ends as a non-root user, and that cargo runs with SQLX_OFFLINE=true.
pub fn check_dockerfile(tools: &Tools, dockerfile: &Path, context: &Path) -> anyhow::Result<()> {
    step(
        &format!(
            "dockerfile-parse {} (context {})",
            rel(dockerfile),
            rel(context)
        ),
        tools.helper_cmd("dockerfile").arg(dockerfile).arg(context),
        None,
    )?;
    Ok(())
}

/// `docker compose config -q` (compose-go) without a .env and with .env.example, then
/// the policy: healthchecks everywhere, `service_healthy` dependencies (or optional ones:
/// `required: false`), the expected ports, every one bound to 127.0.0.1, and the named
/// volumes.
pub fn check_compose(tools: &Tools, compose_file: &Path) -> anyhow::Result<()> {
    let dir = compose_file.parent().unwrap_or(Path::new("."));
    let empty_env = tools.scratch_file("empty.env");
    fs::write(&empty_env, "")?;
    let example = dir.join(".env.example");
    // What the file interpolates must come from the env file given, not from this shell.
    let mut clear: Vec<String> = ["COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES"]
        .map(String::from)
        .to_vec();
    if let Ok(text) = fs::read_to_string(&example) {
        clear.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_once('='))
                .map(|(k, _)| k.trim().to_string()),
        );
    }
    let compose = |env_file: &Path| {
        let mut cmd = Command::new(&tools.docker_compose);
        for key in &clear {
            cmd.env_remove(key);
        }
        cmd.arg("-f")
            .arg(compose_file)
            .arg("--env-file")
            .arg(env_file);
        cmd
    };
    step(
        &format!(
            "docker compose -f {} config -q (no .env)",
            rel(compose_file)
        ),
        compose(&empty_env).args(["config", "-q"]),
        None,
    )?;
    if example.is_file() {
        step(
            &format!(
                "docker compose -f {} --env-file {} config -q",
                rel(compose_file),
                rel(&example)
            ),
            compose(&example).args(["config", "-q"]),
            None,
        )?;
    }
    let json = output(compose(&empty_env).args(["config", "--format", "json"]))?;
    let json_file = tools.scratch_file("compose.json");
    fs::write(&json_file, json)?;
    step(
        &format!(
            "compose policy: healthchecks, service_healthy, ports on 127.0.0.1, volumes ({})",
            rel(compose_file)
        ),
        tools
            .helper_cmd("compose-policy")
            .arg(&json_file)
            .arg(COMPOSE_PORTS),
        None,
    )?;
    Ok(())
}
