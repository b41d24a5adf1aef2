//! Traffic from inside the cluster while something disruptive happens, counted.
//!
//! A client pod in another namespace sends one request after another (a new
//! connection each, as the page's web server and most clients do), alternating between
//! the API's Service and the page's, and prints each answer's status; `000` is a
//! connection refused, reset or timed out. Counting happens here, from its output.

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Stdio},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{Context as _, bail, ensure};

use super::cluster::Cluster;

/// The client's namespace: one the API's NetworkPolicy admits by default (where
/// Prometheus would scrape from), so the chart's defaults are what kube-router enforces.
pub const NAMESPACE: &str = "monitoring";
pub const POD: &str = "load";

/// The loop the client pod runs until `/tmp/stop` exists.
const LOOP: &str = r#"rm -f /tmp/stop
while [ ! -e /tmp/stop ]; do
  for url in "$@"; do
    echo "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url") $url"
  done
done"#;

/// Starts the client pod (an image with bash and curl, already loaded into the node).
pub fn start_client(cluster: &Cluster, image: &str) -> anyhow::Result<()> {
    start_pod(cluster, NAMESPACE, POD, image)
}

/// Runs `image` as the pod `name`, in `namespace` (created when missing), until Ready.
pub fn start_pod(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    image: &str,
) -> anyhow::Result<()> {
    let _ = cluster.kubectl_output(&["create", "namespace", namespace]);
    cluster.kubectl_output(&[
        "-n",
        namespace,
        "run",
        name,
        &format!("--image={image}"),
        "--image-pull-policy=Never",
        "--restart=Never",
        "--command",
        "--",
        "sleep",
        "86400",
    ])?;
    cluster.kubectl_output(&[
        "-n",
        namespace,
        "wait",
        &format!("pod/{name}"),
        "--for=condition=Ready",
        "--timeout=120s",
    ])?;
    Ok(())
}

/// Runs `script` in the client pod `name` of `namespace`: its stdout, or an error.
pub fn exec(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    script: &str,
) -> anyhow::Result<String> {
    cluster.kubectl_output(&["-n", namespace, "exec", name, "--", "bash", "-c", script])
}

/// Answers seen so far: (status, url) counts.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub ok: u64,
    pub failed: Vec<String>,
}

/// A running load; [`Load::stop`] ends it and returns what it saw.
pub struct Load<'a> {
    cluster: &'a Cluster,
    child: Child,
    reader: Option<JoinHandle<()>>,
    tally: Arc<Mutex<Tally>>,
}

impl<'a> Load<'a> {
    pub fn start(cluster: &'a Cluster, urls: &[String]) -> anyhow::Result<Self> {
        let mut cmd = cluster.kubectl();
        cmd.args([
            "-n", NAMESPACE, "exec", POD, "--", "bash", "-c", LOOP, "load",
        ])
        .args(urls)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        let mut child = cmd.spawn().context("cannot start kubectl exec")?;
        let stdout = child.stdout.take().context("kubectl exec has no stdout")?;
        let tally = Arc::new(Mutex::new(Tally::default()));
        let seen = Arc::clone(&tally);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut t = seen.lock().unwrap_or_else(|e| e.into_inner());
                if line.starts_with("200 ") {
                    t.ok += 1;
                } else {
                    t.failed.push(line);
                }
            }
        });
        let load = Self {
            cluster,
            child,
            reader: Some(reader),
            tally,
        };
        // Under way before anything happens to it.
        let started = std::time::Instant::now();
        while load.snapshot().ok < 20 {
            ensure!(
                started.elapsed() < Duration::from_secs(60),
                "the load client got no answers in 60 s: {:?}",
                load.snapshot().failed.iter().take(5).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(load)
    }

    pub fn snapshot(&self) -> Tally {
        self.tally.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops the loop and returns every answer it saw; fails if the client had stopped
    /// by itself (a lost `kubectl exec` stream would otherwise count as no failure).
    pub fn stop(mut self) -> anyhow::Result<Tally> {
        if let Ok(Some(status)) = self.child.try_wait() {
            self.reader.take().map(JoinHandle::join);
            bail!(
                "the load client ended before it was stopped ({status}) after {} answers: \
                 kubectl exec lost its stream or the pod went away",
                self.snapshot().ok
            );
        }
        self.cluster
            .kubectl_output(&["-n", NAMESPACE, "exec", POD, "--", "touch", "/tmp/stop"])?;
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        Ok(self.snapshot())
    }
}

impl Drop for Load<'_> {
    fn drop(&mut self) {
        if self.reader.is_some() {
            let _ = self.cluster.kubectl_output(&[
                "-n",
                NAMESPACE,
                "exec",
                POD,
                "--",
                "touch",
                "/tmp/stop",
            ]);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Fails unless every request under `what` was answered 200.
pub fn expect_no_failures(what: &str, tally: &Tally) -> anyhow::Result<()> {
    let total = tally.ok + tally.failed.len() as u64;
    eprintln!(
        "    {what}: {total} requests, {} failed",
        tally.failed.len()
    );
    ensure!(
        tally.failed.is_empty(),
        "{what}: {} of {total} requests failed, first ones: {:?}",
        tally.failed.len(),
        tally.failed.iter().take(10).collect::<Vec<_>>()
    );
    Ok(())
}
