//! What a user does with CacheMe on a kind cluster, in the README's words, checked.
//!
//! The chart is installed into a namespace that enforces the `restricted` Pod Security
//! level (a pod that breaks it is refused by the API server, so Ready means every pod
//! passed), then: the page and the API through the page's Service, a TTL edit rolled out
//! and an API pod killed while a client in another namespace sends requests (none may
//! fail), PostgreSQL's pod deleted with the data kept, pgAdmin and Redis Commander through
//! their Services, `kubectl scale`, `helm upgrade`, and `helm uninstall` keeping the data
//! for a reinstall.

use std::{
    path::Path,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, ensure};

use super::{
    cluster::Cluster,
    load::{self, Load},
};
use crate::containers::{
    admin_tools::{self, PgAdminLogin},
    bases::ServiceImages,
    http::Request,
};
use crate::packaging::Tools;

pub const NAMESPACE: &str = "cacheme";
const RELEASE: &str = "cacheme";

/// Images the chart is installed with (already loaded into the node).
#[derive(Debug, Clone)]
pub struct ChartImages {
    pub api: String,
    pub operator: String,
    pub frontend: String,
    /// Stand-ins for PostgreSQL, Redis, pgAdmin and Redis Commander; `None`: the
    /// operator's defaults.
    pub services: Option<ServiceImages>,
}

/// `--set` flags: the images, two API replicas, the admin tools on.
pub fn helm_values(images: &ChartImages) -> Vec<String> {
    let repo = |image: &str| -> (String, String) {
        match image.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r.to_owned(), t.to_owned()),
            _ => (image.to_owned(), "latest".to_owned()),
        }
    };
    let mut values = Vec::new();
    for (key, image) in [
        ("operator.image", &images.operator),
        ("instance.api.image", &images.api),
        ("instance.frontend.image", &images.frontend),
    ] {
        let (r, t) = repo(image);
        values.push(format!("{key}.repository={r}"));
        values.push(format!("{key}.tag={t}"));
    }
    if let Some(s) = &images.services {
        for (key, image) in [
            ("instance.postgres.image", &s.postgres),
            ("instance.redis.image", &s.redis),
            ("instance.pgAdmin.image", &s.pgadmin),
            ("instance.redisCommander.image", &s.redis_commander),
        ] {
            values.push(format!("{key}={image}"));
        }
    }
    values.extend(
        [
            "instance.replicas=2",
            "instance.pgAdmin.enabled=true",
            "instance.redisCommander.enabled=true",
        ]
        .map(String::from),
    );
    values
}

/// Runs the scenario; the cluster's state is printed when it fails.
pub fn run(
    cluster: &Cluster,
    root: &Path,
    tools: &Tools,
    images: &ChartImages,
    client_image: &str,
) -> anyhow::Result<()> {
    let result = steps(cluster, root, tools, images, client_image);
    if result.is_err() {
        cluster.dump();
    }
    result
}

fn steps(
    cluster: &Cluster,
    root: &Path,
    tools: &Tools,
    images: &ChartImages,
    client_image: &str,
) -> anyhow::Result<()> {
    cluster.kubectl_output(&["create", "namespace", NAMESPACE])?;
    cluster.kubectl_output(&[
        "label",
        "namespace",
        NAMESPACE,
        "pod-security.kubernetes.io/enforce=restricted",
    ])?;
    let values = helm_values(images);
    install(cluster, root, tools, &values)?;
    every_pod_runs(cluster)?;
    let page = PortForward::start(cluster, "svc/cacheme-frontend", 80)?;
    let token = secret(cluster, "cacheme-api-credentials", "password")?;
    page_and_api(&page.url(), &token)?;

    load::start_client(cluster, client_image)?;
    let urls = vec![
        format!("http://cacheme-api.{NAMESPACE}.svc.cluster.local:8000/products/1"),
        format!("http://cacheme-frontend.{NAMESPACE}.svc.cluster.local/products/2"),
    ];
    ttl_edit_rolls_out_without_failures(cluster, &urls)?;
    killed_api_pod_without_failures(cluster, &urls)?;
    postgres_restart_keeps_data(cluster, &page.url(), &token)?;
    drop(page);
    admin_tools(cluster)?;
    scale(cluster)?;
    helm_upgrade(cluster, root, tools, &values)?;
    uninstall_keeps_data(cluster, root, tools, &values)?;
    Ok(())
}

fn helm_install_cmd(
    root: &Path,
    tools: &Tools,
    cluster: &Cluster,
    verb: &str,
    values: &[String],
) -> std::process::Command {
    let mut cmd = tools.helm_cmd();
    cmd.env("KUBECONFIG", &cluster.kubeconfig)
        .args([verb, RELEASE])
        .arg(root.join("charts/cacheme"))
        .args(["--namespace", NAMESPACE]);
    for value in values {
        cmd.arg("--set").arg(value);
    }
    cmd
}

fn install(cluster: &Cluster, root: &Path, tools: &Tools, values: &[String]) -> anyhow::Result<()> {
    let started = Instant::now();
    crate::run(
        "helm install cacheme charts/cacheme",
        helm_install_cmd(root, tools, cluster, "install", values),
    )?;
    wait_ready(cluster)?;
    eprintln!(
        "    ok: helm install to CacheMe Ready in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn wait_ready(cluster: &Cluster) -> anyhow::Result<()> {
    // The CacheMe exists once helm returns; Ready is the operator's verdict.
    cluster.kubectl_until(
        &[
            "-n",
            NAMESPACE,
            "wait",
            "cacheme/cacheme",
            "--for=condition=Ready",
            "--timeout=30s",
        ],
        Duration::from_secs(300),
    )?;
    Ok(())
}

/// Every pod of the release Running with every container ready, under `restricted`.
fn every_pod_runs(cluster: &Cluster) -> anyhow::Result<()> {
    let text = cluster.kubectl_until(
        &[
            "-n",
            NAMESPACE,
            "wait",
            "pods",
            "--all",
            "--for=condition=Ready",
            "--timeout=30s",
        ],
        Duration::from_secs(180),
    )?;
    let pods: serde_json::Value = serde_json::from_str(
        &cluster.kubectl_output(&["-n", NAMESPACE, "get", "pods", "-o", "json"])?,
    )?;
    let items = pods["items"].as_array().context("no pod list")?;
    let mut components = Vec::new();
    for pod in items {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        ensure!(
            pod["status"]["phase"] == "Running",
            "pod {name} is {}",
            pod["status"]["phase"]
        );
        ensure!(
            pod["spec"]["securityContext"]["runAsNonRoot"] == true,
            "pod {name} does not set runAsNonRoot"
        );
        if let Some(c) = pod["metadata"]["labels"]["app.kubernetes.io/component"].as_str() {
            components.push(c.to_owned());
        }
    }
    components.sort();
    components.dedup();
    for needed in [
        "api",
        "frontend",
        "postgres",
        "redis",
        "pgadmin",
        "redis-commander",
    ] {
        ensure!(
            components.iter().any(|c| c == needed),
            "no {needed} pod running (components: {components:?}; {})",
            text.trim()
        );
    }
    eprintln!(
        "    ok: {} pods Running under the restricted Pod Security level: {}",
        items.len(),
        components.join(", ")
    );
    Ok(())
}

fn secret(cluster: &Cluster, name: &str, key: &str) -> anyhow::Result<String> {
    let encoded = cluster.kubectl_output(&[
        "-n",
        NAMESPACE,
        "get",
        "secret",
        name,
        "-o",
        &format!("jsonpath={{.data.{key}}}"),
    ])?;
    let bytes = base64_decode(encoded.trim()).with_context(|| format!("secret {name}/{key}"))?;
    String::from_utf8(bytes).context("a secret that is not UTF-8")
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = text.bytes().filter(|b| *b != b'=').collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            n |= value(*b)? << (18 - 6 * i);
        }
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

/// The README's way in without an Ingress: `kubectl port-forward svc/...`.
struct PortForward {
    child: Child,
    port: u16,
}

impl PortForward {
    fn start(cluster: &Cluster, target: &str, remote: u16) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = cluster
            .kubectl()
            .args([
                "-n",
                NAMESPACE,
                "port-forward",
                "--address",
                "127.0.0.1",
                target,
            ])
            .arg(format!("{port}:{remote}"))
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start kubectl port-forward")?;
        let forward = Self { child, port };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            ensure!(
                started.elapsed() < Duration::from_secs(30),
                "kubectl port-forward {target} did not listen in 30 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(forward)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn source_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["source"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The page, then a product from the database and then from the cache, a write refused
/// without the token and accepted with it.
fn page_and_api(base: &str, token: &str) -> anyhow::Result<()> {
    let (status, page) =
        Request::get(format!("{base}/")).until(Duration::from_secs(60), |s, _| s == 200)?;
    ensure!(
        status == 200 && page.contains("<html"),
        "the page: {status}"
    );
    let auth = format!("Authorization: Bearer {token}");
    let (status, _) = Request {
        method: "DELETE",
        ..Request::get(format!("{base}/cache/clear"))
    }
    .header(auth.clone())
    .send()?;
    ensure!(status == 200 || status == 204, "cache clear: {status}");
    let (status, first) = Request::get(format!("{base}/products/3")).send()?;
    let (_, second) = Request::get(format!("{base}/products/3")).send()?;
    ensure!(status == 200, "GET /products/3: {status} {first}");
    ensure!(
        source_of(&first) == "database" && source_of(&second) != "database",
        "a product from the database, then from a cache: {} then {}",
        source_of(&first),
        source_of(&second)
    );
    let patch = |auth: Option<&str>| {
        let mut request = Request {
            method: "PATCH",
            body: Some(r#"{"name":"kind-edited"}"#.to_owned()),
            ..Request::get(format!("{base}/products/3"))
        }
        .header("Content-Type: application/json");
        if let Some(a) = auth {
            request = request.header(a.to_owned());
        }
        request.send()
    };
    let (status, _) = patch(None)?;
    ensure!(
        status == 401,
        "a write without the token: {status}, not 401"
    );
    let (status, body) = patch(Some(&auth))?;
    ensure!(status == 200, "a write with the token: {status} {body}");
    let (_, after) = Request::get(format!("{base}/products/3")).send()?;
    ensure!(
        after.contains("kind-edited"),
        "the write is not seen: {after}"
    );
    eprintln!(
        "    ok: the page and the API through svc/cacheme-frontend: database then {}, 401 then 200, the write seen",
        source_of(&second)
    );
    Ok(())
}

fn deployment_generation(cluster: &Cluster, name: &str) -> anyhow::Result<i64> {
    let out = cluster.kubectl_output(&[
        "-n",
        NAMESPACE,
        "get",
        "deployment",
        name,
        "-o",
        "jsonpath={.metadata.generation}",
    ])?;
    out.trim().parse().context("a Deployment's generation")
}

fn wait_generation_above(cluster: &Cluster, name: &str, before: i64) -> anyhow::Result<()> {
    let started = Instant::now();
    while deployment_generation(cluster, name)? <= before {
        ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the operator did not change deployment/{name} in 120 s"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    cluster.kubectl_output(&[
        "-n",
        NAMESPACE,
        "rollout",
        "status",
        &format!("deployment/{name}"),
        "--timeout=300s",
    ])?;
    Ok(())
}

fn ttl_edit_rolls_out_without_failures(cluster: &Cluster, urls: &[String]) -> anyhow::Result<()> {
    let before = deployment_generation(cluster, "cacheme-api")?;
    let load = Load::start(cluster, urls)?;
    cluster.kubectl_output(&[
        "-n",
        NAMESPACE,
        "patch",
        "cacheme",
        "cacheme",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"ttlSeconds":1800}}"#,
    ])?;
    wait_generation_above(cluster, "cacheme-api", before)?;
    // The old pods finish terminating while the load goes on.
    wait_no_terminating(cluster)?;
    let tally = load.stop()?;
    load::expect_no_failures("a TTL edit rolled out under load", &tally)
}

fn api_pods(cluster: &Cluster) -> anyhow::Result<Vec<String>> {
    let out = cluster.kubectl_output(&[
        "-n",
        NAMESPACE,
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/component=api",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}",
    ])?;
    Ok(out
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect())
}

fn wait_no_terminating(cluster: &Cluster) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let out = cluster.kubectl_output(&[
            "-n",
            NAMESPACE,
            "get",
            "pods",
            "-o",
            "jsonpath={range .items[*]}{.metadata.deletionTimestamp}{\"\\n\"}{end}",
        ])?;
        if out.lines().all(|l| l.trim().is_empty()) {
            return Ok(());
        }
        ensure!(
            started.elapsed() < Duration::from_secs(120),
            "pods still terminating after 120 s"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn killed_api_pod_without_failures(cluster: &Cluster, urls: &[String]) -> anyhow::Result<()> {
    let pods = api_pods(cluster)?;
    let victim = pods.first().context("no API pod")?;
    let load = Load::start(cluster, urls)?;
    cluster.kubectl_output(&["-n", NAMESPACE, "delete", "pod", victim, "--wait=false"])?;
    cluster.kubectl_output(&[
        "-n",
        NAMESPACE,
        "wait",
        &format!("pod/{victim}"),
        "--for=delete",
        "--timeout=120s",
    ])?;
    cluster.kubectl_output(&[
        "-n",
        NAMESPACE,
        "rollout",
        "status",
        "deployment/cacheme-api",
        "--timeout=120s",
    ])?;
    let tally = load.stop()?;
    load::expect_no_failures(&format!("API pod {victim} deleted under load"), &tally)
}

fn postgres_restart_keeps_data(cluster: &Cluster, base: &str, token: &str) -> anyhow::Result<()> {
    let auth = format!("Authorization: Bearer {token}");
    let name = format!("kept-{}", std::process::id());
    let (status, body) = Request {
        method: "PATCH",
        body: Some(format!(r#"{{"name":"{name}"}}"#)),
        ..Request::get(format!("{base}/products/4"))
    }
    .header("Content-Type: application/json")
    .header(auth.clone())
    .send()?;
    ensure!(status == 200, "PATCH /products/4: {status} {body}");
    cluster.kubectl_output(&[
        "-n",
        NAMESPACE,
        "delete",
        "pod",
        "-l",
        "app.kubernetes.io/component=postgres",
    ])?;
    cluster.kubectl_output(&[
        "-n",
        NAMESPACE,
        "rollout",
        "status",
        "deployment/cacheme-postgres",
        "--timeout=180s",
    ])?;
    // PATCH invalidated product 4 and nothing has read it since: its next answer
    // comes from the database.
    let started = Instant::now();
    loop {
        let (status, body) = Request::get(format!("{base}/products/4")).send()?;
        if status == 200 && source_of(&body) == "database" {
            ensure!(body.contains(&name), "after PostgreSQL's restart: {body}");
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the API did not read from PostgreSQL again in 120 s: {status} {body}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    eprintln!("    ok: PostgreSQL's pod deleted; its replacement has the edit made before");
    Ok(())
}

fn admin_tools(cluster: &Cluster) -> anyhow::Result<()> {
    let pgadmin = PortForward::start(cluster, "svc/cacheme-pgadmin", 80)?;
    let login = PgAdminLogin {
        email: secret(cluster, "cacheme-pgadmin-credentials", "username")?,
        password: secret(cluster, "cacheme-pgadmin-credentials", "password")?,
        server: "CacheMe cacheme".to_owned(),
        postgres_password: secret(cluster, "cacheme-postgres-credentials", "password")?,
    };
    let jar = std::env::temp_dir().join(format!("cacheme-kind-pgadmin-{}", std::process::id()));
    let result = admin_tools::pgadmin_connects(&pgadmin.url(), &jar, &login);
    let _ = std::fs::remove_file(&jar);
    result?;
    let commander = PortForward::start(cluster, "svc/cacheme-redis-commander", 80)?;
    admin_tools::redis_commander_lists_keys(&commander.url(), "R:cacheme-redis:6379:0")
}

fn ready_api_replicas(cluster: &Cluster) -> anyhow::Result<i64> {
    let out = cluster.kubectl_output(&[
        "-n",
        NAMESPACE,
        "get",
        "deployment",
        "cacheme-api",
        "-o",
        "jsonpath={.status.readyReplicas}",
    ])?;
    Ok(out.trim().parse().unwrap_or(0))
}

/// `kubectl scale` of the CacheMe: the operator follows it.
fn scale(cluster: &Cluster) -> anyhow::Result<()> {
    for replicas in [3, 2] {
        cluster.kubectl_output(&[
            "-n",
            NAMESPACE,
            "scale",
            "cacheme/cacheme",
            &format!("--replicas={replicas}"),
        ])?;
        let started = Instant::now();
        while ready_api_replicas(cluster)? != replicas
            || api_pods(cluster)?.len() != replicas as usize
        {
            ensure!(
                started.elapsed() < Duration::from_secs(180),
                "kubectl scale --replicas={replicas}: {} ready API pods after 180 s",
                ready_api_replicas(cluster)?
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    eprintln!("    ok: kubectl scale cacheme/cacheme to 3 then 2 API pods");
    Ok(())
}

fn api_env(cluster: &Cluster, var: &str) -> anyhow::Result<String> {
    cluster.kubectl_output(&[
        "-n",
        NAMESPACE,
        "get",
        "deployment",
        "cacheme-api",
        "-o",
        &format!("jsonpath={{.spec.template.spec.containers[0].env[?(@.name==\"{var}\")].value}}"),
    ])
}

fn helm_upgrade(
    cluster: &Cluster,
    root: &Path,
    tools: &Tools,
    values: &[String],
) -> anyhow::Result<()> {
    let before = deployment_generation(cluster, "cacheme-api")?;
    let mut upgraded = values.to_vec();
    upgraded.push("instance.ttlSeconds=900".to_owned());
    crate::run(
        "helm upgrade cacheme charts/cacheme --set instance.ttlSeconds=900",
        helm_install_cmd(root, tools, cluster, "upgrade", &upgraded),
    )?;
    wait_generation_above(cluster, "cacheme-api", before)?;
    wait_ready(cluster)?;
    let ttl = api_env(cluster, "CACHE_TTL_SECONDS")?;
    ensure!(
        ttl.trim() == "900",
        "after helm upgrade the API's TTL is {ttl:?}"
    );
    eprintln!("    ok: helm upgrade rolled the API to the new TTL");
    Ok(())
}

fn uninstall_keeps_data(
    cluster: &Cluster,
    root: &Path,
    tools: &Tools,
    values: &[String],
) -> anyhow::Result<()> {
    let mut uninstall = tools.helm_cmd();
    uninstall.env("KUBECONFIG", &cluster.kubeconfig).args([
        "uninstall",
        RELEASE,
        "--namespace",
        NAMESPACE,
        "--wait",
    ]);
    crate::run("helm uninstall cacheme", uninstall)?;
    // The operator removes what it owns; the data claim and its password stay.
    let started = Instant::now();
    while cluster
        .kubectl_output(&["-n", NAMESPACE, "get", "deployment", "cacheme-api"])
        .is_ok()
    {
        ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the API outlived helm uninstall by 120 s"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    cluster.kubectl_output(&["-n", NAMESPACE, "get", "pvc", "cacheme-postgres-data"])?;
    cluster.kubectl_output(&[
        "-n",
        NAMESPACE,
        "get",
        "secret",
        "cacheme-postgres-credentials",
    ])?;
    install(cluster, root, tools, values)?;
    let page = PortForward::start(cluster, "svc/cacheme-frontend", 80)?;
    let (status, body) = Request::get(format!("{}/products/3", page.url()))
        .until(Duration::from_secs(60), |s, _| s == 200)?;
    ensure!(
        status == 200 && body.contains("kind-edited"),
        "after helm uninstall and install, product 3 is {body}"
    );
    eprintln!(
        "    ok: helm uninstall kept the data claim and its password; a reinstall found the edit"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_decoded() {
        assert_eq!(base64_decode("aGVsbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(base64_decode("YWJj").as_deref(), Some(&b"abc"[..]));
        assert_eq!(base64_decode("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(base64_decode("!!"), None);
    }

    #[test]
    fn images_become_the_charts_values() {
        let images = ChartImages {
            api: "localhost/cacheme/api:0.1.0".into(),
            operator: "localhost/cacheme/operator:0.1.0".into(),
            frontend: "localhost:5000/cacheme/frontend".into(),
            services: Some(ServiceImages {
                postgres: "localhost/cacheme-base/postgres:abc".into(),
                redis: "r".into(),
                pgadmin: "p".into(),
                redis_commander: "c".into(),
                jaeger: "j".into(),
            }),
        };
        let values = helm_values(&images);
        assert!(values.contains(&"instance.api.image.repository=localhost/cacheme/api".to_owned()));
        assert!(values.contains(&"instance.api.image.tag=0.1.0".to_owned()));
        // A registry port is not a tag.
        assert!(values.contains(
            &"instance.frontend.image.repository=localhost:5000/cacheme/frontend".to_owned()
        ));
        assert!(
            values.contains(
                &"instance.postgres.image=localhost/cacheme-base/postgres:abc".to_owned()
            )
        );
        let upstream = helm_values(&ChartImages {
            services: None,
            ..images
        });
        assert!(
            !upstream
                .iter()
                .any(|v| v.starts_with("instance.postgres.image"))
        );
    }
}
