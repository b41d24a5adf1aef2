//! What the chart asks of the cluster, acted on by it: the NetworkPolicies the operator
//! writes, enforced by kube-router, and the API's HorizontalPodAutoscaler, fed by
//! metrics-server.

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};

use super::NAMESPACE;
use crate::kind::{
    cluster::Cluster,
    load::{self, Load},
};

/// A namespace no policy names: what any other workload of the cluster sees.
const PROBE_NAMESPACE: &str = "cacheme-probe";
const PROBE_POD: &str = "probe";

/// `curl`'s exit status and HTTP status, printed by [`curl_script`] as `exit=N code=NNN`.
#[derive(Debug, PartialEq, Eq)]
struct Probe {
    exit: i32,
    code: String,
}

fn curl_script(url: &str) -> String {
    format!(
        "code=$(curl -s -o /dev/null -w '%{{http_code}}' --max-time 5 '{url}'); \
         echo \"exit=$? code=$code\""
    )
}

/// `nc -z` against `host`:`port`, printed as `exit=N code=tcp`.
fn tcp_script(host: &str, port: u16) -> String {
    format!("nc -z -w 5 {host} {port}; echo \"exit=$? code=tcp\"")
}

fn parse_probe(out: &str) -> Option<Probe> {
    let line = out.lines().rev().find(|l| l.starts_with("exit="))?;
    let mut exit = None;
    let mut code = None;
    for part in line.split_whitespace() {
        if let Some(v) = part.strip_prefix("exit=") {
            exit = v.parse().ok();
        } else if let Some(v) = part.strip_prefix("code=") {
            code = Some(v.to_owned());
        }
    }
    Some(Probe {
        exit: exit?,
        code: code?,
    })
}

fn probe(cluster: &Cluster, namespace: &str, pod: &str, script: &str) -> anyhow::Result<Probe> {
    let out = load::exec(cluster, namespace, pod, script)?;
    parse_probe(&out).with_context(|| format!("the probe printed no result: {out}"))
}

/// A pod of another namespace reaches the page but not the API, PostgreSQL or Redis; the
/// namespaces the API's policy names reach the API. Each refusal is checked beside an
/// answer from the same pod, so a refusal cannot be a broken probe or DNS.
pub(super) fn network_policies_are_enforced(
    cluster: &Cluster,
    client_image: &str,
) -> anyhow::Result<()> {
    load::start_pod(cluster, PROBE_NAMESPACE, PROBE_POD, client_image)?;
    let svc = |name: &str| format!("cacheme-{name}.{NAMESPACE}.svc.cluster.local");
    let api = format!("http://{}:8000/livez", svc("api"));
    let page = format!("http://{}/", svc("frontend"));

    let allowed = [
        (
            PROBE_NAMESPACE,
            PROBE_POD,
            curl_script(&page),
            "the page, from any namespace",
        ),
        (
            load::NAMESPACE,
            load::POD,
            curl_script(&api),
            "the API, from a namespace its policy names",
        ),
    ];
    for (namespace, pod, script, what) in &allowed {
        let seen = probe(cluster, namespace, pod, script)?;
        ensure!(
            seen.exit == 0 && seen.code == "200",
            "{what}: expected an answer (200), got {seen:?}"
        );
    }
    let refused = [
        (curl_script(&api), "the API"),
        (tcp_script(&svc("postgres"), 5432), "PostgreSQL"),
        (tcp_script(&svc("redis"), 6379), "Redis"),
    ];
    for (script, what) in &refused {
        let seen = probe(cluster, PROBE_NAMESPACE, PROBE_POD, script)?;
        ensure!(
            seen.exit != 0,
            "{what} answered a pod in namespace {PROBE_NAMESPACE}, which no NetworkPolicy \
             allows ({seen:?}): the policy is not enforced"
        );
    }
    cluster.kubectl_output(&["delete", "namespace", PROBE_NAMESPACE, "--wait=false"])?;
    eprintln!(
        "    ok: NetworkPolicy enforced: from {PROBE_NAMESPACE}, the page answers and the API, \
         PostgreSQL and Redis refuse; from {} the API answers",
        load::NAMESPACE
    );
    Ok(())
}

fn hpa_field(cluster: &Cluster, path: &str) -> anyhow::Result<String> {
    cluster.kubectl_output(&[
        "-n",
        NAMESPACE,
        "get",
        "hpa",
        "cacheme-api",
        "-o",
        &format!("jsonpath={{{path}}}"),
    ])
}

/// `spec.autoscaling` on: the operator writes the HorizontalPodAutoscaler and leaves the
/// replica count to it; with metrics-server's figures and requests coming in, it scales
/// the API out, without a failed request. Then autoscaling off again.
pub(super) fn autoscaler_scales_out_under_load(
    cluster: &Cluster,
    urls: &[String],
) -> anyhow::Result<()> {
    const MIN: i64 = 2;
    // A small request, so the client's sequential requests are well above the target.
    let patch = format!(
        r#"{{"spec":{{"api":{{"resources":{{"requests":{{"cpu":"10m"}}}}}},
            "autoscaling":{{"minReplicas":{MIN},"maxReplicas":4,"targetCPUUtilizationPercentage":20}}}}}}"#
    );
    cluster.kubectl_output(&[
        "-n", NAMESPACE, "patch", "cacheme", "cacheme", "--type", "merge", "-p", &patch,
    ])?;
    let started = Instant::now();
    let load = Load::start(cluster, urls)?;
    let result = (|| -> anyhow::Result<(String, i64)> {
        loop {
            let current = hpa_field(
                cluster,
                ".status.currentMetrics[0].resource.current.averageUtilization",
            )
            .unwrap_or_default();
            let desired: i64 = hpa_field(cluster, ".status.desiredReplicas")
                .ok()
                .and_then(|d| d.trim().parse().ok())
                .unwrap_or(0);
            let ready = super::lifecycle::ready_api_replicas(cluster)?;
            if !current.trim().is_empty() && desired > MIN && ready > MIN {
                return Ok((current, ready));
            }
            ensure!(
                started.elapsed() < Duration::from_secs(240),
                "the HorizontalPodAutoscaler did not scale the API out within 240 s under load \
                 (CPU utilization {current:?} % of the request, desired {desired}, ready {ready}): \
                 {}",
                hpa_field(cluster, ".status.conditions").unwrap_or_default()
            );
            std::thread::sleep(Duration::from_secs(3));
        }
    })();
    let tally = load.stop()?;
    let (utilization, ready) = result?;
    load::expect_no_failures("the API scaled out by its HorizontalPodAutoscaler", &tally)?;
    eprintln!(
        "    ok: the HorizontalPodAutoscaler saw {utilization} % CPU and scaled the API from \
         {MIN} to {ready} ready pods in {:.0} s; {} requests, 0 failed",
        started.elapsed().as_secs_f64(),
        tally.ok
    );
    cluster.kubectl_output(&[
        "-n",
        NAMESPACE,
        "patch",
        "cacheme",
        "cacheme",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"autoscaling":null}}"#,
    ])?;
    // Autoscaling off: the operator deletes the autoscaler and owns the count again.
    cluster.wait_gone(
        &["-n", NAMESPACE, "get", "hpa", "cacheme-api"],
        Duration::from_secs(60),
        "the HorizontalPodAutoscaler outlived spec.autoscaling",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_results_are_read_from_the_last_line() {
        assert_eq!(
            parse_probe("noise\nexit=0 code=200\n"),
            Some(Probe {
                exit: 0,
                code: "200".into()
            })
        );
        assert_eq!(
            parse_probe("exit=7 code=000"),
            Some(Probe {
                exit: 7,
                code: "000".into()
            })
        );
        assert_eq!(parse_probe("curl: (7) refused"), None);
        assert!(curl_script("http://x/livez").contains("--max-time 5 'http://x/livez'"));
        assert!(tcp_script("db", 5432).starts_with("nc -z -w 5 db 5432;"));
    }
}
