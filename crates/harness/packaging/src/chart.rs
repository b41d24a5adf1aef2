//! The Helm chart, its renders, and the plain manifests in k8s/.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail, ensure};

use super::{
    KIND_CONFIG, KUBE_VERSION,
    tools::{Tools, output, rel, run_tool, step},
};

/// Custom kinds kubernetes-validate has no schema for, checked here instead.
const CUSTOM_KINDS: &[(&str, &str)] = &[
    ("CacheMe", "cacheme.dev/v1alpha1"),
    ("ServiceMonitor", "monitoring.coreos.com/v1"),
    // Against the Gateway API's own CRDs by a real API server, in `cargo xtask kind`
    // (k8s/traefik.yaml's GatewayClass and Gateway). No HTTPRoute is rendered: the
    // operator builds it from the CacheMe's `gateway`, checked against the CRD above.
    ("GatewayClass", "gateway.networking.k8s.io/v1"),
    ("Gateway", "gateway.networking.k8s.io/v1"),
];

/// The values files the chart is checked with: its defaults, then every `ci/*.yaml`.
fn chart_values(chart: &Path) -> Vec<Option<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(chart.join("ci"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    std::iter::once(None)
        .chain(files.into_iter().map(Some))
        .collect()
}

/// The chart: its CRD equals `crd_file`; then, for the default values and each
/// `ci/*.yaml`: `helm lint --strict`, and `helm template --include-crds` through
/// `kubernetes-validate --strict`, the CacheMe objects against the CRD's schema and CEL
/// rules, and the references inside the render (selectors, ports, RBAC subjects).
pub fn check_chart(tools: &Tools, chart: &Path, crd_file: &Path) -> anyhow::Result<()> {
    let chart_crd = chart.join("crds").join("cacheme.dev_cachemes.yaml");
    eprintln!("==> {} equals {}", rel(&chart_crd), rel(crd_file));
    let have =
        fs::read(&chart_crd).with_context(|| format!("cannot read {}", chart_crd.display()))?;
    let want = fs::read(crd_file).with_context(|| format!("cannot read {}", crd_file.display()))?;
    ensure!(
        have == want,
        "{} differs from {}: copy it again (cp {} {})",
        chart_crd.display(),
        crd_file.display(),
        crd_file.display(),
        chart_crd.display()
    );
    for values in chart_values(chart) {
        let label = match &values {
            Some(file) => format!("values {}", rel(file)),
            None => "default values".to_string(),
        };
        let with_values = |cmd: &mut Command| {
            if let Some(file) = &values {
                cmd.arg("--values").arg(file);
            }
        };
        let mut lint = tools.helm_cmd();
        lint.args(["lint", "--strict"]).arg(chart);
        with_values(&mut lint);
        step(
            &format!("helm lint --strict {} ({label})", rel(chart)),
            &mut lint,
            None,
        )?;

        let mut template = tools.helm_cmd();
        template.args(["template", "cacheme"]).arg(chart).args([
            "--namespace",
            "cacheme",
            "--include-crds",
            "--kube-version",
            KUBE_VERSION,
        ]);
        with_values(&mut template);
        eprintln!("==> helm template {} ({label})", rel(chart));
        let rendered = output(&mut template)?;
        check_rendered(
            tools,
            &rendered,
            crd_file,
            &format!("{} ({label})", rel(chart)),
        )?;
    }
    Ok(())
}

/// kubernetes-validate on a stream of manifests, then the custom kinds against the CRD.
fn check_rendered(
    tools: &Tools,
    rendered: &str,
    crd_file: &Path,
    label: &str,
) -> anyhow::Result<()> {
    let report = step(
        &format!("kubernetes-validate --strict -k {KUBE_VERSION} ({label})"),
        Command::new(&tools.kubernetes_validate).args(["--strict", "-k", KUBE_VERSION, "-"]),
        Some(rendered.as_bytes()),
    )?;
    check_known_kinds(&report, label)?;
    let file = tools.scratch_file("rendered.yaml");
    fs::write(&file, rendered)?;
    validate_custom(
        &format!("custom kinds against {} ({label})", rel(crd_file)),
        crd_file,
        &[file.as_path()],
    )?;
    step(
        &format!("cross-references ({label})"),
        tools.helper_cmd("render").arg(&file).arg(label),
        None,
    )?;
    Ok(())
}

/// `cacheme-operator validate --crd CRD FILES`: the custom objects of `files` against
/// their CRD, with the same checker as the operator's tests (structural schema, defaults
/// and CEL, as the API server at creation).
fn custom_objects_cmd(crd: &Path, files: &[&Path]) -> Command {
    let mut cmd = cacheme_harness::cargo();
    cmd.args([
        "run",
        "--quiet",
        "--package",
        "cacheme-operator",
        "--",
        "validate",
        "--crd",
    ])
    .arg(crd)
    .args(files);
    cmd
}

/// [`custom_objects_cmd`] as a step; its summary line is printed.
fn validate_custom(name: &str, crd: &Path, files: &[&Path]) -> anyhow::Result<()> {
    eprintln!("==> {name}");
    let summary = run_tool(name, &mut custom_objects_cmd(crd, files), None)?;
    for line in summary.lines() {
        eprintln!("   {line}");
    }
    Ok(())
}

/// kubernetes-validate only warns about a kind it has no schema for, so a wrong
/// apiVersion would pass: accept only the custom kinds checked against their CRD.
fn check_known_kinds(report: &str, label: &str) -> anyhow::Result<()> {
    let unknown: Vec<&str> = report
        .lines()
        .filter(|line| line.contains("Couldn't find schema for kind"))
        .filter(|line| {
            !CUSTOM_KINDS
                .iter()
                .any(|(kind, api)| line.contains(&format!("kind {kind} with api version {api} ")))
        })
        .collect();
    ensure!(
        unknown.is_empty(),
        "{label}: kinds with no schema (wrong apiVersion or kind?):\n{}",
        unknown.join("\n")
    );
    Ok(())
}

/// The `*.yaml` files directly in `dir`, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// k8s/: `crd.yaml` and `operator.yaml` (every `*.yaml` but the kind cluster
/// configuration) through kubernetes-validate; the samples
/// against the CRD (schema and CEL rules); each `samples/invalid/*.yaml` must be rejected.
pub fn check_manifests(tools: &Tools, k8s: &Path) -> anyhow::Result<()> {
    let crd = k8s.join("crd.yaml");
    let plain: Vec<PathBuf> = yaml_files(k8s)
        .into_iter()
        .filter(|p| p.file_name().is_none_or(|n| n != KIND_CONFIG))
        .collect();
    let report = step(
        &format!(
            "kubernetes-validate --strict -k {KUBE_VERSION} {}/*.yaml",
            rel(k8s)
        ),
        Command::new(&tools.kubernetes_validate)
            .args(["--strict", "-k", KUBE_VERSION])
            .args(&plain),
        None,
    )?;
    check_known_kinds(&report, &rel(k8s))?;
    let samples = yaml_files(&k8s.join("samples"));
    ensure!(
        !samples.is_empty(),
        "no samples in {}/samples",
        k8s.display()
    );
    let sample_paths: Vec<&Path> = samples.iter().map(PathBuf::as_path).collect();
    validate_custom(
        &format!("{}/samples/*.yaml against the CRD", rel(k8s)),
        &crd,
        &sample_paths,
    )?;
    for invalid in yaml_files(&k8s.join("samples").join("invalid")) {
        eprintln!("==> {} is rejected", rel(&invalid));
        let result = run_tool(
            "CRD check",
            &mut custom_objects_cmd(&crd, &[invalid.as_path()]),
            None,
        );
        match result {
            Ok(_) => bail!(
                "{} passed the CRD checks, but should fail",
                invalid.display()
            ),
            Err(e) => {
                let text = format!("{e:#}");
                for reason in text.lines().skip(1) {
                    eprintln!("   {}", reason.trim_start_matches("error: "));
                }
            }
        }
    }
    Ok(())
}
