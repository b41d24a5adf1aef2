//! The Dockerfiles and docker-compose.yml.

use super::{TestResult, broken_copy, expect_failure, root, scratch, tools};
use crate::{DOCKERFILES, check_compose, check_dockerfile};

#[test]
fn dockerfiles_pass() -> TestResult {
    let tools = tools()?;
    for dockerfile in DOCKERFILES {
        check_dockerfile(&tools, &root().join(dockerfile), &root())?;
    }
    Ok(())
}

#[test]
fn dockerfile_copying_a_missing_path_fails() -> TestResult {
    let (tools, dir) = (tools()?, scratch("dockerfile-missing")?);
    let copy = broken_copy(
        &dir,
        "crates/Dockerfile",
        "COPY migrations migrations",
        "COPY migrations-gone migrations",
    )?;
    expect_failure(
        check_dockerfile(&tools, &copy, &root()),
        "COPY source migrations-gone does not exist",
    )
}

#[test]
fn dockerfile_copying_an_ignored_path_fails() -> TestResult {
    let (tools, dir) = (tools()?, scratch("dockerfile-ignored")?);
    let copy = broken_copy(
        &dir,
        "frontend/Dockerfile",
        "COPY frontend/ ./",
        "COPY frontend/ ./\nCOPY target target",
    )?;
    expect_failure(
        check_dockerfile(&tools, &copy, &root()),
        "excluded by .dockerignore",
    )
}

#[test]
fn dockerfile_running_as_root_fails() -> TestResult {
    let (tools, dir) = (tools()?, scratch("dockerfile-root")?);
    let copy = broken_copy(
        &dir,
        "crates/Dockerfile",
        "USER 65532:65532\nENV BIND_ADDR",
        "USER root\nENV BIND_ADDR",
    )?;
    expect_failure(check_dockerfile(&tools, &copy, &root()), "non-root USER")
}

#[test]
fn dockerfile_with_a_misspelt_instruction_fails() -> TestResult {
    let (tools, dir) = (tools()?, scratch("dockerfile-typo")?);
    let copy = broken_copy(
        &dir,
        "crates/Dockerfile",
        "FROM ${RUNTIME_IMAGE} AS api",
        "FORM ${RUNTIME_IMAGE} AS api",
    )?;
    expect_failure(
        check_dockerfile(&tools, &copy, &root()),
        "unknown instruction FORM",
    )
}

#[test]
fn dockerfile_with_an_unterminated_heredoc_fails() -> TestResult {
    let (tools, dir) = (tools()?, scratch("dockerfile-heredoc")?);
    let copy = broken_copy(
        &dir,
        "crates/Dockerfile",
        "FROM scratch AS prebuilt\n",
        "FROM scratch AS prebuilt\nCOPY <<'RUST' /healthcheck.rs\nfn main() {}\nRUS\n",
    )?;
    expect_failure(
        check_dockerfile(&tools, &copy, &root()),
        "unterminated heredoc",
    )
}

#[test]
fn compose_passes() -> TestResult {
    check_compose(&tools()?, &root().join("docker-compose.yml"))
}

#[test]
fn compose_with_an_unknown_key_fails() -> TestResult {
    let (tools, dir) = (tools()?, scratch("compose-key")?);
    let copy = broken_copy(
        &dir,
        "docker-compose.yml",
        "    read_only: true\n",
        "    read_only: true\n    read_only_please: true\n",
    )?;
    expect_failure(check_compose(&tools, &copy), "read_only_please")
}

#[test]
fn compose_with_a_bad_interpolation_fails() -> TestResult {
    let (tools, dir) = (tools()?, scratch("compose-interpolation")?);
    let copy = broken_copy(
        &dir,
        "docker-compose.yml",
        "${POSTGRES_USER:-cacheme}",
        "${POSTGRES_USER:?set POSTGRES_USER in .env}",
    )?;
    expect_failure(check_compose(&tools, &copy), "set POSTGRES_USER in .env")
}

#[test]
fn compose_without_a_healthy_dependency_fails() -> TestResult {
    let (tools, dir) = (tools()?, scratch("compose-healthy")?);
    let copy = broken_copy(
        &dir,
        "docker-compose.yml",
        "condition: service_healthy",
        "condition: service_started",
    )?;
    expect_failure(
        check_compose(&tools, &copy),
        "must use condition: service_healthy",
    )
}

#[test]
fn compose_with_another_port_fails() -> TestResult {
    let (tools, dir) = (tools()?, scratch("compose-port")?);
    let copy = broken_copy(
        &dir,
        "docker-compose.yml",
        "${FRONTEND_PORT:-3000}:8080",
        "${FRONTEND_PORT:-3001}:8080",
    )?;
    expect_failure(
        check_compose(&tools, &copy),
        "host port 3000 must map to frontend:8080",
    )
}

#[test]
fn compose_publishing_on_every_interface_fails() -> TestResult {
    let (tools, dir) = (tools()?, scratch("compose-interfaces")?);
    let copy = broken_copy(
        &dir,
        "docker-compose.yml",
        "127.0.0.1:${POSTGRES_PORT:-15432}:5432",
        "${POSTGRES_PORT:-15432}:5432",
    )?;
    expect_failure(
        check_compose(&tools, &copy),
        "service postgres: port 15432 must be published on 127.0.0.1 only",
    )
}

#[test]
fn compose_waiting_for_a_required_started_service_fails() -> TestResult {
    let (tools, dir) = (tools()?, scratch("compose-optional")?);
    let copy = broken_copy(&dir, "docker-compose.yml", "        required: false\n", "")?;
    expect_failure(
        check_compose(&tools, &copy),
        "service api: depends_on jaeger must use condition: service_healthy",
    )
}
