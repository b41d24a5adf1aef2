//! The kind configuration and the Tiltfile.

use super::{TestResult, broken_copy, expect_failure, root, scratch, tools};
use crate::{KIND_CONFIG, check_kind_config, check_tiltfile};

#[test]
fn kind_config_passes() -> TestResult {
    check_kind_config(&tools()?, &root().join("k8s").join(KIND_CONFIG))
}

#[test]
fn kind_config_without_the_ingress_label_fails() -> TestResult {
    let (tools, dir) = (tools()?, scratch("kind-label")?);
    let copy = broken_copy(
        &dir,
        "k8s/kind-config.yaml",
        "ingress-ready: \"true\"",
        "ingress-ready: \"yes\"",
    )?;
    expect_failure(
        check_kind_config(&tools, &copy),
        "exactly one node must be labelled ingress-ready",
    )
}

#[test]
fn kind_config_with_a_misspelt_field_fails() -> TestResult {
    let (tools, dir) = (tools()?, scratch("kind-field")?);
    let copy = broken_copy(
        &dir,
        "k8s/kind-config.yaml",
        "extraPortMappings:",
        "extraPortMapping:",
    )?;
    expect_failure(
        check_kind_config(&tools, &copy),
        "nodes[0]: unknown field 'extraPortMapping'",
    )
}

#[test]
fn tiltfile_passes() -> TestResult {
    check_tiltfile(&tools()?, &root().join("Tiltfile"), &root())
}

#[test]
fn tiltfile_naming_a_missing_path_fails() -> TestResult {
    let (tools, dir) = (tools()?, scratch("tilt-path")?);
    let copy = broken_copy(
        &dir,
        "Tiltfile",
        "dockerfile='crates/Dockerfile'",
        "dockerfile='crates/Dockerfile.dev'",
    )?;
    expect_failure(
        check_tiltfile(&tools, &copy, &root()),
        "path 'crates/Dockerfile.dev' does not exist",
    )
}

#[test]
fn tiltfile_with_a_syntax_error_fails() -> TestResult {
    let (tools, dir) = (tools()?, scratch("tilt-syntax")?);
    let copy = broken_copy(&dir, "Tiltfile", "k8s_yaml(helm(", "k8s_yaml(helm((")?;
    expect_failure(check_tiltfile(&tools, &copy, &root()), "Parse error")
}

#[test]
fn tiltfile_with_a_misspelt_argument_fails() -> TestResult {
    let (tools, dir) = (tools()?, scratch("tilt-kwarg")?);
    let copy = broken_copy(&dir, "Tiltfile", "only=RUST_SOURCES", "onyl=RUST_SOURCES")?;
    expect_failure(
        check_tiltfile(&tools, &copy, &root()),
        "unexpected keyword argument 'onyl'",
    )
}

#[test]
fn tiltfile_configuring_an_unknown_workload_fails() -> TestResult {
    let (tools, dir) = (tools()?, scratch("tilt-workload")?);
    let copy = broken_copy(
        &dir,
        "Tiltfile",
        "k8s_resource(\n    'cacheme-jaeger',",
        "k8s_resource(\n    'cacheme-jeager',",
    )?;
    expect_failure(
        check_tiltfile(&tools, &copy, &root()),
        "k8s_resource('cacheme-jeager'): no such workload",
    )
}

#[test]
fn tiltfile_running_kubectl_in_the_current_context_fails() -> TestResult {
    let (tools, dir) = (tools()?, scratch("tilt-context")?);
    let copy = broken_copy(
        &dir,
        "Tiltfile",
        "\"kubectl --context '%s' --namespace %s\" % (k8s_context(), NAMESPACE)",
        "'kubectl --namespace %s' % NAMESPACE",
    )?;
    expect_failure(
        check_tiltfile(&tools, &copy, &root()),
        "runs kubectl without --context",
    )
}

#[test]
fn tiltfile_building_an_unused_image_fails() -> TestResult {
    let (tools, dir) = (tools()?, scratch("tilt-image")?);
    let copy = broken_copy(
        &dir,
        "Tiltfile",
        "'localhost/cacheme/api',",
        "'localhost/cacheme/api-dev',",
    )?;
    expect_failure(
        check_tiltfile(&tools, &copy, &root()),
        "docker_build('localhost/cacheme/api-dev') is used by no deployed object",
    )
}
