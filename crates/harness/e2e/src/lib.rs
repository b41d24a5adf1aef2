//! `cargo xtask e2e`: the operator and the chart against a real Kubernetes control plane.
//!
//! The control plane's binaries are built from their Go modules and cached (`tools`);
//! kwokctl starts them on loopback with RBAC and admission on (`cluster`); the operator
//! runs as a local process authenticated as the chart's ServiceAccount (`operator`), so
//! every request it makes is authorised by the real API server; the scenario checks what a
//! user would see (`scenario`) and the audit log shows any request the server refused
//! (`audit`). Everything started is stopped when the run ends, however it ends.

mod admission;
mod audit;
mod cloudnativepg;
mod cluster;
mod edits;
mod failover;
mod kubectl;
mod lifecycle;
mod operator;
mod scaling;
mod scenario;
mod stack;
mod stuck;
use cacheme_harness::kube_tools as tools;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use cacheme_harness::{cargo, run, workspace_root};

/// The operator and the Helm chart against a real Kubernetes control plane (kwok).
#[derive(Debug, clap::Parser)]
#[command(name = "e2e", bin_name = "cargo xtask e2e")]
pub struct Options {
    /// Run this operator binary (skip the build).
    #[arg(long, value_name = "PATH")]
    operator_bin: Option<PathBuf>,
    /// Run the operator as this ServiceAccount (created without any binding when missing)
    /// instead of the chart's.
    #[arg(long = "operator-service-account", value_name = "NAME")]
    operator_sa: Option<String>,
    /// Seconds each wait on a CacheMe may take (becoming Ready, rolling out, going away).
    #[arg(long, value_name = "SECS", default_value = "180", value_parser = seconds)]
    timeout: Duration,
    /// Exit 0 only if the scenario failed (after the operator started).
    #[arg(long)]
    expect_failure: bool,
    /// Only build (or find cached) the control plane's binaries.
    #[arg(long)]
    tools_only: bool,
}

fn seconds(text: &str) -> anyhow::Result<Duration> {
    let secs: u64 = text.parse().context("--timeout takes seconds")?;
    Ok(Duration::from_secs(secs))
}

/// Wall-clock time of each phase, printed at the end.
#[derive(Debug, Default)]
struct Timings(Vec<(&'static str, Duration)>);

impl Timings {
    fn time<T>(
        &mut self,
        phase: &'static str,
        f: impl FnOnce() -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let started = Instant::now();
        let result = f();
        self.0.push((phase, started.elapsed()));
        result
    }

    fn print(&self) {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(phase, d)| format!("{phase} {:.1}s", d.as_secs_f64()))
            .collect();
        eprintln!("==> timings: {}", parts.join(", "));
    }
}

pub fn e2e(opts: Options) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut timings = Timings::default();
    // Set once the operator runs: only a failure after that is the one --expect-failure
    // expects (not a build or cluster failure).
    let mut operator_started = false;
    let result = scenario_install(&opts, &mut timings, &mut operator_started);
    timings.0.push(("total", started.elapsed()));
    timings.print();
    match (result, opts.expect_failure) {
        (Ok(()), _) if opts.tools_only => Ok(()),
        (Ok(()), false) => {
            eprintln!("==> e2e passed");
            Ok(())
        }
        (Err(e), true) if operator_started => {
            eprintln!("==> e2e failed as expected (--expect-failure): {e:#}");
            Ok(())
        }
        (Err(e), true) => Err(e.context("e2e failed before the operator ran (--expect-failure expects the scenario itself to fail)")),
        (Ok(()), true) => {
            bail!("e2e passed, but --expect-failure was given: the scenario cannot fail this way")
        }
        (Err(e), false) => Err(e),
    }
}

fn scenario_install(
    opts: &Options,
    timings: &mut Timings,
    operator_started: &mut bool,
) -> anyhow::Result<()> {
    let root = workspace_root();
    let out = root.join("target").join("e2e");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;

    let kube = timings.time("tools", || tools::ensure(&root))?;
    if opts.tools_only {
        eprintln!("==> tools ready in {}", tools::cache_root()?.display());
        return Ok(());
    }
    let helm_tools = timings.time("helm", || cacheme_packaging::Tools::ensure(&root))?;
    let operator_bin = timings.time("operator build", || operator_binary(&root, opts))?;

    // Declared before the operator so it is dropped after it: operator first, then cluster.
    let plane = timings.time("control plane", || {
        cluster::ControlPlane::start(&kube, &out)
    })?;
    let kubectl = &plane.kubectl;
    let scenario_started = Instant::now();
    timings.time("node and volumes", || {
        plane.add_node()?;
        plane.add_volumes(4)
    })?;

    eprintln!("==> helm install {} charts/cacheme", scenario::RELEASE);
    timings.time("helm install", || {
        scenario::helm_install(helm_tools.helm_cmd(), &root, kubectl)
    })?;
    let chart = operator::ChartOperator::read(kubectl, scenario::RELEASE_NAMESPACE)?;
    let service_account = opts
        .operator_sa
        .clone()
        .unwrap_or_else(|| chart.service_account.clone());
    let user = format!(
        "system:serviceaccount:{}:{service_account}",
        chart.namespace
    );
    let sample = scenario::apply_minimal_sample(&root, kubectl)?;
    eprintln!(
        "==> k8s/samples/minimal.yaml applied as {}/{sample}",
        scenario::SAMPLE_NAMESPACE
    );

    if opts.operator_sa.is_some() {
        // Another ServiceAccount, created without any binding when missing.
        let exists = kubectl.run(&[
            "get",
            "serviceaccount",
            &service_account,
            "--namespace",
            &chart.namespace,
        ]);
        if exists.is_err() {
            kubectl.run(&[
                "create",
                "serviceaccount",
                &service_account,
                "--namespace",
                &chart.namespace,
            ])?;
        }
    }
    eprintln!("==> the operator authenticates as {user} (TokenRequest API)");
    let operator_kubeconfig = out.join("operator.kubeconfig");
    operator::service_account_kubeconfig(
        kubectl,
        &chart.namespace,
        &service_account,
        &operator_kubeconfig,
    )?;
    let mut op = operator::OperatorProcess::start(
        &operator_bin,
        &chart,
        &operator_kubeconfig,
        "e2e-local-0",
        &out.join("operator.log"),
    )?;
    *operator_started = true;

    let ready = timings.time("CacheMes ready", || {
        let mut ready = Vec::new();
        for (namespace, name) in [
            (scenario::SAMPLE_NAMESPACE, sample.as_str()),
            (scenario::RELEASE_NAMESPACE, scenario::RELEASE),
        ] {
            let cacheme =
                scenario::wait_ready(kubectl, namespace, name, opts.timeout, || op.check_alive());
            let cacheme = match cacheme {
                Ok(c) => c,
                Err(e) => {
                    let refused = scenario::check_no_refusals(&plane.audit_log(), &user).err();
                    let refused = refused.map(|r| format!("\n{r:#}")).unwrap_or_default();
                    return Err(anyhow::anyhow!(
                        "{e:#}\noperator log tail ({}):\n{}{refused}\ncomponent logs: {}",
                        op.log.display(),
                        cluster::tail(&op.log, 15),
                        plane.logs_dir().display()
                    ));
                }
            };
            eprintln!("    CacheMe {namespace}/{name} is Ready");
            ready.push(cacheme);
        }
        Ok(ready)
    })?;
    for cacheme in &ready {
        scenario::check_status(cacheme)?;
    }
    let table = scenario::check_printer_columns(kubectl, &ready[0])?;
    eprintln!("    status and printer columns right:\n{}", indent(&table));
    scenario::check_no_refusals(&plane.audit_log(), &user)?;

    let audit = plane.audit_log();
    let demo = stack::Stack {
        kubectl,
        namespace: scenario::SAMPLE_NAMESPACE,
        name: &sample,
        timeout: opts.timeout,
    };
    let steps = (|| -> anyhow::Result<()> {
        let mut alive = || op.check_alive();
        eprintln!("==> edits of {}/{sample}", scenario::SAMPLE_NAMESPACE);
        timings.time("edits", || edits::api_edits(&demo, &mut alive))?;
        eprintln!("==> scaling: kubectl scale and an autoscaler");
        timings.time("scaling", || scaling::scaling(&demo, &mut alive))?;
        eprintln!("==> the API's security settings");
        timings.time("security", || edits::security_settings(&demo, &mut alive))?;
        eprintln!("==> components on and off");
        timings.time("toggles", || {
            edits::toggles(&demo, &mut alive, &audit, &user)
        })?;
        eprintln!("==> pods that crash-loop or cannot pull their image");
        timings.time("stuck pods", || stuck::stuck_pods(&demo, &mut alive))?;
        eprintln!("==> invalid CacheMes refused at admission");
        timings.time("admission", || admission::rejections(kubectl))?;
        eprintln!("==> CloudNativePG (missing, then a CRD fixture) and an external Redis Cluster");
        timings.time("stores", || {
            cloudnativepg::stores(kubectl, opts.timeout, &mut alive)
        })?;
        eprintln!("==> a claim edit the API server refuses");
        timings.time("refused claim edit", || {
            edits::refused_claim_edit(&demo, &mut alive)
        })?;
        edits::only_claim_refusals(&audit, &user)?;
        eprintln!("==> helm upgrade, and a CacheMe that takes its data with it");
        timings.time("upgrade", || {
            let release = stack::Stack {
                kubectl,
                namespace: scenario::RELEASE_NAMESPACE,
                name: scenario::RELEASE,
                timeout: opts.timeout,
            };
            lifecycle::upgrade(helm_tools.helm_cmd(), &root, &release, &mut alive)?;
            lifecycle::delete_policy(
                kubectl,
                scenario::SAMPLE_NAMESPACE,
                opts.timeout,
                &mut alive,
            )
        })?;
        edits::only_claim_refusals(&audit, &user)
    })();
    if let Err(e) = steps {
        bail!(
            "{e:#}\noperator log tail ({}):\n{}\ncomponent logs: {}",
            op.log.display(),
            cluster::tail(&op.log, 15),
            plane.logs_dir().display()
        );
    }
    eprintln!("==> two operators: the leader crashes, the other takes over");
    let mut second = operator::OperatorProcess::start(
        &operator_bin,
        &chart,
        &operator_kubeconfig,
        "e2e-local-1",
        &out.join("operator-1.log"),
    )?;
    timings
        .time("failover", || {
            failover::failover(
                &demo,
                &chart.namespace,
                (&mut op, "e2e-local-0"),
                (&mut second, "e2e-local-1"),
            )
        })
        .with_context(|| {
            format!(
                "operator logs: {} and {}",
                op.log.display(),
                second.log.display()
            )
        })?;
    let stopped = second.stop();
    if !matches!(stopped, Some(s) if s.success()) {
        bail!(
            "the operator did not stop cleanly on SIGTERM ({stopped:?}); log:\n{}",
            cluster::tail(&second.log, 20)
        );
    }
    // After the operator: uninstalling removes the RBAC it runs with.
    eprintln!("==> helm uninstall");
    timings.time("uninstall", || {
        lifecycle::uninstall(helm_tools.helm_cmd(), kubectl, opts.timeout)
    })?;
    eprintln!(
        "==> scenario install passed in {:.1}s",
        scenario_started.elapsed().as_secs_f64()
    );
    drop(op);
    timings.time("teardown", || {
        drop(plane);
        Ok(())
    })?;
    Ok(())
}

/// `--operator-bin`, else a debug build of the operator (honouring CARGO_TARGET_DIR).
fn operator_binary(root: &Path, opts: &Options) -> anyhow::Result<PathBuf> {
    if let Some(bin) = &opts.operator_bin {
        anyhow::ensure!(
            bin.is_file(),
            "--operator-bin {} is not a file",
            bin.display()
        );
        return Ok(bin.clone());
    }
    let mut build = cargo();
    build.args(["build", "--package", "cacheme-operator"]);
    run("cargo build --package cacheme-operator", build)?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target_dir.join("debug").join("cacheme-operator"))
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("      {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod options_tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn e2e_options() -> anyhow::Result<()> {
        let o = Options::try_parse_from([
            "e2e",
            "--operator-bin",
            "/bin/op",
            "--operator-service-account",
            "e2e-unbound",
            "--timeout",
            "30",
            "--expect-failure",
            "--tools-only",
        ])?;
        let shown = format!("{o:?}");
        for part in [
            "\"/bin/op\"",
            "\"e2e-unbound\"",
            "30s",
            "expect_failure: true",
            "tools_only: true",
        ] {
            assert!(shown.contains(part), "{part} in {shown}");
        }
        assert!(Options::try_parse_from(["e2e", "--timeout", "soon"]).is_err());
        assert!(Options::try_parse_from(["e2e", "--operator-bin"]).is_err());
        Ok(())
    }
}
