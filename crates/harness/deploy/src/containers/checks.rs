//! A test per image, on the built images themselves: size, a non-root user (as
//! configured and as the process runs), no shell where there should be none, and the
//! image's program answering from a running container.

use std::{fs, path::Path, time::Duration};

use anyhow::{Context as _, ensure};
use cacheme_testsupport::{Stores, drop_database, free_port, with_database};

use super::{build, engine::Docker, http::Request};

const MB: u64 = 1_000_000;

/// Runs every image check; each says what it checked.
pub fn check_images(docker: &Docker, root: &Path, stores: &Stores) -> anyhow::Result<()> {
    let api = build::api_image();
    let operator = build::operator_image();
    let frontend = build::frontend_image();
    // distroless-like runtimes: the binaries and glibc; Debian's nginx is the page's bulk.
    check_size(docker, &api, 64 * MB)?;
    check_size(docker, &operator, 64 * MB)?;
    check_size(docker, &frontend, 320 * MB)?;
    for image in [&api, &operator] {
        check_configured_user(docker, image, "65532")?;
        check_no_shell(docker, image)?;
    }
    check_configured_user(docker, &frontend, "101")?;
    check_api_serves(docker, &api, stores)?;
    check_operator_runs(docker, &operator, root)?;
    check_page_serves(docker, &frontend)?;
    Ok(())
}

fn check_size(docker: &Docker, image: &str, limit: u64) -> anyhow::Result<()> {
    let size: u64 = docker
        .output(&["image", "inspect", "--format", "{{.Size}}", image])?
        .parse()
        .with_context(|| format!("size of {image}"))?;
    ensure!(
        size <= limit,
        "{image} is {:.1} MB, over its {} MB limit",
        size as f64 / MB as f64,
        limit / MB
    );
    eprintln!(
        "    ok: {image}: {:.1} MB (limit {} MB)",
        size as f64 / MB as f64,
        limit / MB
    );
    Ok(())
}

/// The image's USER: set, numeric (so `runAsNonRoot` can verify it) and not root.
fn check_configured_user(docker: &Docker, image: &str, expected: &str) -> anyhow::Result<()> {
    let user = docker.output(&["image", "inspect", "--format", "{{.Config.User}}", image])?;
    let uid = user.split(':').next().unwrap_or_default();
    ensure!(
        uid == expected,
        "{image} runs as user {user:?}, expected the numeric non-root uid {expected}"
    );
    eprintln!("    ok: {image}: USER {user}");
    Ok(())
}

/// Distroless: no /bin/sh to start.
fn check_no_shell(docker: &Docker, image: &str) -> anyhow::Result<()> {
    let out = docker
        .cmd()
        .args([
            "run",
            "--rm",
            "--entrypoint",
            "/bin/sh",
            image,
            "-c",
            "true",
        ])
        .output()?;
    ensure!(
        !out.status.success(),
        "{image} has a shell: /bin/sh -c true succeeded"
    );
    let said = String::from_utf8_lossy(&out.stderr);
    ensure!(
        said.contains("no such file") || said.contains("not found"),
        "{image}: /bin/sh failed, but not for being absent: {said}"
    );
    eprintln!("    ok: {image}: no /bin/sh");
    Ok(())
}

/// A started container, removed when dropped.
struct Container<'a> {
    docker: &'a Docker,
    id: String,
}

impl<'a> Container<'a> {
    fn run(docker: &'a Docker, args: &[String]) -> anyhow::Result<Self> {
        let mut all = vec!["run".to_string(), "--detach".into()];
        all.extend_from_slice(args);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        Ok(Self {
            docker,
            id: docker.output(&refs)?,
        })
    }

    /// Every one of its processes (`what`'s) runs as `uid`, as the kernel sees them.
    fn runs_as(&self, what: &str, uid: &str) -> anyhow::Result<()> {
        // docker top needs the pid column to map processes to the container.
        let top = self.docker.output(&["top", &self.id, "-eo", "uid,pid"])?;
        let uids: Vec<&str> = top
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        ensure!(
            !uids.is_empty() && uids.iter().all(|u| *u == uid),
            "{what}'s processes run as {uids:?}, not {uid}"
        );
        Ok(())
    }

    /// `result`, with the container's log added to a failure.
    fn with_logs<T>(&self, result: anyhow::Result<T>) -> anyhow::Result<T> {
        result.map_err(|e| anyhow::anyhow!("{e:#}\nthe container's log:\n{}", self.logs()))
    }

    fn logs(&self) -> String {
        self.docker
            .cmd()
            .args(["logs", "--tail", "30", &self.id])
            .output()
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .unwrap_or_default()
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = self
            .docker
            .cmd()
            .args(["rm", "--force", &self.id])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Hardened as compose and the chart run it (read-only root, no capabilities), on the
/// host's network to reach the suite's PostgreSQL and Redis on loopback.
fn hardened(extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges:true",
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn check_api_serves(docker: &Docker, image: &str, stores: &Stores) -> anyhow::Result<()> {
    let port = free_port()?;
    let database = format!("cacheme_image_{}_{port}", std::process::id());
    let env = [
        format!(
            "DATABASE_URL={}",
            with_database(&stores.postgres_admin_url, &database)
        ),
        format!("REDIS_URL={}", stores.redis_url),
        format!("CACHE_KEY_PREFIX={database}"),
        format!("BIND_ADDR=127.0.0.1:{port}"),
        "ADMIN_TOKEN=image-check".into(),
    ];
    let mut args = hardened(&["--network", "host"]);
    for e in &env {
        args.push("--env".into());
        args.push(e.clone());
    }
    args.push(image.into());
    // Dropped however the check ends, so a failure leaves nothing on the server.
    let _database = DropDatabase {
        admin_url: &stores.postgres_admin_url,
        name: &database,
    };
    let container = Container::run(docker, &args)?;
    let base = format!("http://127.0.0.1:{port}");
    let answered = (|| -> anyhow::Result<()> {
        Request::get(format!("{base}/livez")).until(Duration::from_secs(60), |s, _| s == 200)?;
        Request::get(format!("{base}/readyz")).until(Duration::from_secs(30), |s, _| s == 200)?;
        let (status, body) = Request::get(format!("{base}/products/1")).send()?;
        ensure!(
            status == 200 && body.contains("\"source\":\"database\""),
            "GET /products/1 answered {status}: {body}"
        );
        let (status, body) = Request::get(format!("{base}/products/1")).send()?;
        ensure!(
            status == 200 && body.contains("\"source\":\"cache\""),
            "the second GET /products/1 answered {status}: {body}"
        );
        // The probe compose's healthcheck runs, inside the image.
        let probe = docker.output(&[
            "exec",
            &container.id,
            "/usr/local/bin/cacheme-healthcheck",
            &format!("127.0.0.1:{port}"),
            "/readyz",
        ]);
        probe.context("cacheme-healthcheck in the API's image")?;
        container.runs_as("the API", "65532")
    })();
    container.with_logs(answered)?;
    eprintln!(
        "    ok: {image}: /livez and /readyz 200 from the running container, a database read then a cache hit, its healthcheck probe, processes as uid 65532 (read-only root, no capabilities)"
    );
    Ok(())
}

/// Drops the database when it goes out of scope, however the check ended.
struct DropDatabase<'a> {
    admin_url: &'a str,
    name: &'a str,
}

impl Drop for DropDatabase<'_> {
    fn drop(&mut self) {
        drop_database(self.admin_url, self.name);
    }
}

/// The operator needs an API server to serve its probes (the kind run checks those);
/// here its binary runs in the image and prints the CRD k8s/crd.yaml holds.
fn check_operator_runs(docker: &Docker, image: &str, root: &Path) -> anyhow::Result<()> {
    let mut args = hardened(&[]);
    args.splice(0..0, ["run".to_string(), "--rm".into()]);
    args.extend([image.to_string(), "crd".into()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let printed = docker.output(&refs)?;
    let expected = fs::read_to_string(root.join("k8s").join("crd.yaml"))?;
    ensure!(
        printed.trim() == expected.trim(),
        "`cacheme-operator crd` in {image} does not print k8s/crd.yaml ({} bytes against {})",
        printed.len(),
        expected.len()
    );
    eprintln!("    ok: {image}: `cacheme-operator crd` runs in it and prints k8s/crd.yaml");
    Ok(())
}

fn check_page_serves(docker: &Docker, image: &str) -> anyhow::Result<()> {
    let args = hardened(&["--publish", "127.0.0.1::8080", image]);
    let container = Container::run(docker, &args)?;
    let served = (|| -> anyhow::Result<()> {
        let published = docker.output(&["port", &container.id, "8080/tcp"])?;
        let address = published
            .lines()
            .next()
            .context("8080 is not published")?
            .trim()
            .to_owned();
        let base = format!("http://{address}");
        Request::get(format!("{base}/healthz")).until(Duration::from_secs(30), |s, _| s == 200)?;
        let (status, body) = Request::get(format!("{base}/")).send()?;
        ensure!(
            status == 200 && body.contains("<title>"),
            "GET / answered {status}: {}",
            body.chars().take(200).collect::<String>()
        );
        container.runs_as("the page", "101")
    })();
    container.with_logs(served)?;
    eprintln!(
        "    ok: {image}: /healthz and the page from the running container, processes as uid 101 (read-only root, no capabilities)"
    );
    Ok(())
}
