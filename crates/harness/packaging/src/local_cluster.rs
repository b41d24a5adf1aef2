//! The local cluster: the kind configuration and the Tiltfile.

use std::path::Path;

use super::tools::{Tools, rel, step};

/// The kind cluster configuration: kind's `v1alpha4` fields only (kind refuses unknown
/// ones), and exactly one node labelled `ingress-ready=true` that maps the host's ports
/// 80 and 443, which ingress-nginx's kind manifest serves on.
pub fn check_kind_config(tools: &Tools, file: &Path) -> anyhow::Result<()> {
    step(
        &format!("kind cluster configuration {}", rel(file)),
        tools.helper_cmd("kind-config").arg(file),
        None,
    )?;
    Ok(())
}

/// Starlark parse and evaluation of the Tiltfile with stubs of Tilt's builtins (its
/// `helm()` renders the chart with the real Helm): every path it names must exist
/// under `base`, every image it builds must be deployed, and every resource and
/// object it configures must exist.
pub fn check_tiltfile(tools: &Tools, tiltfile: &Path, base: &Path) -> anyhow::Result<()> {
    step(
        &format!(
            "starlark {} (paths relative to {})",
            rel(tiltfile),
            rel(base)
        ),
        tools
            .helper_cmd("tiltfile")
            .arg(tiltfile)
            .arg(base)
            .arg(&tools.helm)
            .envs(tools.helm_env()),
        None,
    )?;
    Ok(())
}
