//! The chart and the plain manifests in k8s/.

use std::{fs, path::PathBuf};

use anyhow::ensure;

use super::{TestResult, copy_dir, expect_failure, root, scratch, tools};
use crate::{check_chart, check_manifests};

/// A copy of the chart with `file` (relative to the chart) edited.
fn broken_chart(name: &str, file: &str, from: &str, to: &str) -> anyhow::Result<PathBuf> {
    let dir = scratch(name)?.join("cacheme");
    copy_dir(&root().join("charts/cacheme"), &dir)?;
    let path = dir.join(file);
    let text = fs::read_to_string(&path)?;
    ensure!(text.contains(from), "{file} no longer contains {from:?}");
    fs::write(&path, text.replacen(from, to, 1))?;
    Ok(dir)
}

fn crd() -> PathBuf {
    root().join("k8s/crd.yaml")
}

#[test]
fn chart_with_values_breaking_its_schema_fails() -> TestResult {
    let chart = broken_chart(
        "chart-values",
        "values.yaml",
        "  ttlSeconds: 3600",
        "  ttlSeconds: one hour",
    )?;
    expect_failure(
        check_chart(&tools()?, &chart, &crd()),
        "instance.ttlSeconds: Invalid type",
    )
}

#[test]
fn chart_rendering_an_unknown_field_fails() -> TestResult {
    let chart = broken_chart(
        "chart-field",
        "templates/deployment.yaml",
        "revisionHistoryLimit: 3",
        "revisionHistoryLimits: 3",
    )?;
    expect_failure(
        check_chart(&tools()?, &chart, &crd()),
        "'revisionHistoryLimits' was unexpected",
    )
}

#[test]
fn chart_rendering_an_unknown_api_version_fails() -> TestResult {
    let chart = broken_chart(
        "chart-api-version",
        "templates/service.yaml",
        "apiVersion: v1",
        "apiVersion: v2",
    )?;
    expect_failure(
        check_chart(&tools()?, &chart, &crd()),
        "Couldn't find schema for kind Service with api version v2",
    )
}

#[test]
fn chart_rendering_a_cacheme_the_crd_rejects_fails() -> TestResult {
    let chart = broken_chart(
        "chart-cacheme-field",
        "templates/cacheme.yaml",
        "dict \"ttlSeconds\" $i.ttlSeconds",
        "dict \"ttl\" $i.ttlSeconds",
    )?;
    expect_failure(
        check_chart(&tools()?, &chart, &crd()),
        "spec.ttl: unknown field",
    )
}

#[test]
fn chart_values_breaking_a_cel_rule_of_the_crd_fail() -> TestResult {
    let chart = broken_chart(
        "chart-cel",
        "values.yaml",
        "    external: {}\n",
        "    external:\n      urlSecretRef:\n        name: my-redis\n",
    )?;
    fs::write(
        chart.join("ci/redis-image.yaml"),
        "instance:\n  redis:\n    image: redis:7\n",
    )?;
    expect_failure(
        check_chart(&tools()?, &chart, &crd()),
        "redis is either external or managed",
    )
}

#[test]
fn chart_values_with_a_gateway_but_no_parent_fail() -> TestResult {
    let chart = broken_chart("chart-gateway", "values.yaml", "", "")?;
    fs::write(
        chart.join("ci/gateway-without-parents.yaml"),
        "instance:\n  gateway:\n    enabled: true\n",
    )?;
    expect_failure(
        check_chart(&tools()?, &chart, &crd()),
        "instance.gateway.enabled needs instance.gateway.parentRefs",
    )
}

#[test]
fn chart_with_a_service_selecting_nothing_fails() -> TestResult {
    let chart = broken_chart(
        "chart-selector",
        "templates/service.yaml",
        "{{- include \"cacheme.operator.selectorLabels\" . | nindent 4 }}",
        "app.kubernetes.io/name: nothing",
    )?;
    expect_failure(
        check_chart(&tools()?, &chart, &crd()),
        "selects no pod of the render",
    )
}

#[test]
fn chart_with_an_outdated_crd_fails() -> TestResult {
    let chart = broken_chart(
        "chart-crd",
        "crds/cacheme.dev_cachemes.yaml",
        "  group: cacheme.dev",
        "  group: cacheme.dev # edited",
    )?;
    expect_failure(check_chart(&tools()?, &chart, &crd()), "differs from")
}

#[test]
fn manifests_pass() -> TestResult {
    check_manifests(&tools()?, &root().join("k8s"))
}

#[test]
fn manifests_with_an_invalid_sample_fail() -> TestResult {
    let dir = scratch("k8s-invalid")?.join("k8s");
    copy_dir(&root().join("k8s"), &dir)?;
    fs::write(
        dir.join("samples/too-long.yaml"),
        "apiVersion: cacheme.dev/v1alpha1\nkind: CacheMe\nmetadata:\n  \
         name: a-name-that-is-much-longer-than-forty-characters\nspec: {}\n",
    )?;
    expect_failure(
        check_manifests(&tools()?, &dir),
        "metadata.name must be at most 40 characters",
    )
}
