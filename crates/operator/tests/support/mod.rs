//! Helpers shared by the operator's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use cacheme_operator::crd::CacheMe;

pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// Namespace given to the samples (they name none).
pub const NAMESPACE: &str = "cacheme";

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A file of the repository, by path from the workspace root.
pub fn repo_file(path: &str) -> PathBuf {
    workspace_root().join(path)
}

/// The valid samples.
pub const SAMPLES: &[&str] = &[
    "minimal",
    "full",
    "external",
    "cloudnativepg",
    "redis-cluster",
];

/// A sample `CacheMe`, with the namespace and uid the API server would add.
pub fn sample(name: &str) -> TestResult<CacheMe> {
    let yaml = std::fs::read_to_string(repo_file(&format!("k8s/samples/{name}.yaml")))?;
    Ok(cacheme_operator::render::cacheme_from_yaml(
        &yaml, NAMESPACE,
    )?)
}

/// The `kubernetes-validate` executable: `$KUBERNETES_VALIDATE`, else on PATH.
/// Fails (never skips) when it is missing.
pub fn kubernetes_validate() -> PathBuf {
    if let Some(path) = std::env::var_os("KUBERNETES_VALIDATE").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "KUBERNETES_VALIDATE={} is not a file",
            path.display()
        );
        return path;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("kubernetes-validate"))
            .find(|candidate| candidate.is_file())
    });
    match on_path {
        Some(path) => path,
        None => panic!(
            "kubernetes-validate not found: set KUBERNETES_VALIDATE to its full path or put it on PATH.\n\
             Install it with:\n  python3 -m venv target/tools/venv && \
             target/tools/venv/bin/pip install kubernetes-validate==1.37.0\n  \
             export KUBERNETES_VALIDATE=$PWD/target/tools/venv/bin/kubernetes-validate"
        ),
    }
}

/// Runs `kubernetes-validate --strict -k 1.31.0` on `files`; returns its output
/// and whether it succeeded.
pub fn run_kubernetes_validate(files: &[PathBuf]) -> TestResult<(bool, String)> {
    let output = Command::new(kubernetes_validate())
        .args(["--strict", "-k", "1.31.0"])
        .args(files)
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((output.status.success(), text))
}

/// A fresh scratch directory under cargo's target tmp dir.
pub fn scratch_dir(name: &str) -> TestResult<PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// `Kind/name` of each object, sorted.
pub fn names(objects: &[serde_json::Value]) -> std::collections::BTreeSet<String> {
    objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap_or("?"),
                o["metadata"]["name"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

/// What the operator would apply for `cm`, with an empty seed.
pub fn desired(cm: &CacheMe) -> TestResult<cacheme_operator::resources::Desired> {
    Ok(cacheme_operator::resources::Stack::new(cm, Some("[]"))?.desired()?)
}

/// The API pod template's configuration hash.
pub fn config_hash(deployment: &k8s_openapi::api::apps::v1::Deployment) -> Option<String> {
    deployment
        .spec
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(cacheme_operator::resources::CONFIG_HASH_ANNOTATION)
        .cloned()
}

/// The names of the environment variables of every container of `deployment`.
pub fn env_names(deployment: &k8s_openapi::api::apps::v1::Deployment) -> Vec<String> {
    deployment
        .spec
        .template
        .spec
        .iter()
        .flat_map(|p| p.containers.iter())
        .flat_map(|c| c.env.iter().flatten())
        .map(|e| e.name.clone())
        .collect()
}
