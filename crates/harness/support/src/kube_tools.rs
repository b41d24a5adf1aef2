//! The real control-plane binaries, built from their Go modules and cached outside the
//! repository.
//!
//! `crates/harness/go-tools/` holds three wrapper modules (go.mod + go.sum, `tool` lines, no
//! sources): `kubernetes` (k8s.io/kubernetes with every staging module replaced by its
//! v0.x release), `etcd` (go.etcd.io/etcd/server/v3, whose root package is etcd's main) and
//! `kwok` (sigs.k8s.io/kwok). Each binary is built once into
//! `${CACHEME_TOOLS_CACHE:-$HOME/.cache/cacheme-tools}/<group>-<version>/` and reused by
//! every later run and every fresh clone on the machine; Go's module and build caches make
//! a rebuild after a change cheap. Builds honour `GOFLAGS` (e.g. `-p=1` on a shared machine).

use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::Context as _;

use crate::go_build::check_go;
use crate::go_build::run_go;

/// One binary: the Go package it is built from and its name in the cache.
#[derive(Debug, Clone, Copy)]
struct Binary {
    name: &'static str,
    package: &'static str,
    /// Only a cluster's node runs it (the kind node image), not the local control plane.
    node: bool,
}

/// A wrapper module and the binaries built from it.
#[derive(Debug, Clone, Copy)]
struct Group {
    /// Directory under `crates/harness/go-tools/`, and the cache prefix.
    dir: &'static str,
    cache_prefix: &'static str,
    /// The module whose pinned version (read from go.mod) keys the cache.
    module: &'static str,
    binaries: &'static [Binary],
    /// Whether the Kubernetes version variables must be stamped in with -ldflags
    /// (else the API server reports v0.0.0 and Helm refuses the chart's kubeVersion).
    kube_version_ldflags: bool,
}

const GROUPS: &[Group] = &[
    Group {
        dir: "kubernetes",
        cache_prefix: "k8s",
        module: "k8s.io/kubernetes",
        binaries: &[
            Binary {
                name: "kube-apiserver",
                package: "k8s.io/kubernetes/cmd/kube-apiserver",
                node: false,
            },
            Binary {
                name: "kube-controller-manager",
                package: "k8s.io/kubernetes/cmd/kube-controller-manager",
                node: false,
            },
            Binary {
                name: "kube-scheduler",
                package: "k8s.io/kubernetes/cmd/kube-scheduler",
                node: false,
            },
            Binary {
                name: "kubectl",
                package: "k8s.io/kubernetes/cmd/kubectl",
                node: false,
            },
            Binary {
                name: "kubelet",
                package: "k8s.io/kubernetes/cmd/kubelet",
                node: true,
            },
            Binary {
                name: "kubeadm",
                package: "k8s.io/kubernetes/cmd/kubeadm",
                node: true,
            },
            Binary {
                name: "kube-proxy",
                package: "k8s.io/kubernetes/cmd/kube-proxy",
                node: true,
            },
        ],
        kube_version_ldflags: true,
    },
    Group {
        dir: "etcd",
        cache_prefix: "etcd",
        module: "go.etcd.io/etcd/server/v3",
        binaries: &[Binary {
            name: "etcd",
            package: "go.etcd.io/etcd/server/v3",
            node: false,
        }],
        kube_version_ldflags: false,
    },
    Group {
        dir: "kwok",
        cache_prefix: "kwok",
        module: "sigs.k8s.io/kwok",
        binaries: &[
            Binary {
                name: "kwok",
                package: "sigs.k8s.io/kwok/cmd/kwok",
                node: false,
            },
            Binary {
                name: "kwokctl",
                package: "sigs.k8s.io/kwok/cmd/kwokctl",
                node: false,
            },
        ],
        kube_version_ldflags: false,
    },
];

/// Paths of the built binaries.
#[derive(Debug, Clone)]
pub struct KubeTools {
    pub kube_version: String,
    pub kube_apiserver: PathBuf,
    pub kube_controller_manager: PathBuf,
    pub kube_scheduler: PathBuf,
    pub kubectl: PathBuf,
    pub etcd: PathBuf,
    pub kwok: PathBuf,
    pub kwokctl: PathBuf,
}

/// The cache root: `$CACHEME_TOOLS_CACHE`, else `$HOME/.cache/cacheme-tools`.
pub fn cache_root() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CACHEME_TOOLS_CACHE").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME").context("neither CACHEME_TOOLS_CACHE nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cache").join("cacheme-tools"))
}

/// The node's own Kubernetes binaries, built with the control plane's recipe (one Go
/// build cache for both).
#[derive(Debug, Clone)]
pub struct NodeBinaries {
    pub kubelet: PathBuf,
    pub kubeadm: PathBuf,
    pub kube_proxy: PathBuf,
}

/// Builds what is missing (printing progress) and returns every binary's path.
pub fn ensure(root: &Path) -> anyhow::Result<KubeTools> {
    ensure_with(root, false).map(|(tools, _)| tools)
}

/// [`ensure`], and the node binaries as well.
pub fn ensure_node(root: &Path) -> anyhow::Result<(KubeTools, NodeBinaries)> {
    let (tools, node) = ensure_with(root, true)?;
    Ok((tools, node.context("the node binaries were not built")?))
}

fn ensure_with(root: &Path, with_node: bool) -> anyhow::Result<(KubeTools, Option<NodeBinaries>)> {
    let modules = root.join("crates").join("harness").join("go-tools");
    let cache = cache_root()?;
    fs::create_dir_all(&cache).with_context(|| format!("cannot create {}", cache.display()))?;
    // One builder at a time per machine; a second run waits, then finds everything built.
    let lock = fs::File::create(cache.join(".lock"))?;
    lock.lock()
        .with_context(|| format!("cannot lock {}", cache.display()))?;
    let mut go_checked = false;
    let mut found = Vec::new();
    let mut kube_version = String::new();
    for group in GROUPS {
        let module_dir = modules.join(group.dir);
        let version = pinned_version(&module_dir.join("go.mod"), group.module)?;
        if group.kube_version_ldflags {
            kube_version = version.clone();
        }
        let dir = cache.join(format!("{}-{version}", group.cache_prefix));
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for binary in group.binaries.iter().filter(|b| with_node || !b.node) {
            let target = dir.join(binary.name);
            let recipe = build_recipe(group, binary, &version, &target);
            let stamp = dir.join(format!("{}.recipe", binary.name));
            let cached = target.is_file()
                && fs::read_to_string(&stamp).is_ok_and(|s| s == recipe.describe());
            if !cached {
                if !go_checked {
                    check_go()?;
                    go_checked = true;
                }
                build(&module_dir, binary, &version, &recipe, &target)?;
                fs::write(&stamp, recipe.describe())?;
            }
            found.push((binary.name, target));
        }
    }
    drop(lock);
    let path = |name: &str| -> anyhow::Result<PathBuf> {
        found
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| p.clone())
            .with_context(|| format!("{name} is not among the built tools"))
    };
    let node = if with_node {
        Some(NodeBinaries {
            kubelet: path("kubelet")?,
            kubeadm: path("kubeadm")?,
            kube_proxy: path("kube-proxy")?,
        })
    } else {
        None
    };
    let tools = KubeTools {
        kube_version: kube_version.trim_start_matches('v').to_owned(),
        kube_apiserver: path("kube-apiserver")?,
        kube_controller_manager: path("kube-controller-manager")?,
        kube_scheduler: path("kube-scheduler")?,
        kubectl: path("kubectl")?,
        etcd: path("etcd")?,
        kwok: path("kwok")?,
        kwokctl: path("kwokctl")?,
    };
    Ok((tools, node))
}

/// The version `module` is pinned to in `go_mod` (`require` line or block).
pub fn pinned_version(go_mod: &Path, module: &str) -> anyhow::Result<String> {
    let text =
        fs::read_to_string(go_mod).with_context(|| format!("cannot read {}", go_mod.display()))?;
    parse_pinned_version(&text, module)
        .with_context(|| format!("{} does not require {module}", go_mod.display()))
}

fn parse_pinned_version(go_mod: &str, module: &str) -> Option<String> {
    go_mod.lines().find_map(|line| {
        let line = line.trim().trim_start_matches("require").trim();
        let mut words = line.split_whitespace();
        (words.next() == Some(module))
            .then(|| words.next())
            .flatten()
            .filter(|v| v.starts_with('v'))
            .map(str::to_owned)
    })
}

/// The `go build` arguments of one binary; its text is stored next to the binary, so a
/// changed recipe rebuilds it.
#[derive(Debug)]
struct Recipe {
    args: Vec<String>,
}

impl Recipe {
    fn describe(&self) -> String {
        format!("go {}\n", self.args.join(" "))
    }
}

fn build_recipe(group: &Group, binary: &Binary, version: &str, target: &Path) -> Recipe {
    let mut ldflags = vec!["-s".to_owned(), "-w".to_owned()];
    if group.kube_version_ldflags {
        let mut parts = version.trim_start_matches('v').split('.');
        let major = parts.next().unwrap_or("1");
        let minor = parts.next().unwrap_or("0");
        for pkg in [
            "k8s.io/component-base/version",
            "k8s.io/client-go/pkg/version",
        ] {
            for (var, value) in [
                ("gitVersion", version),
                ("gitMajor", major),
                ("gitMinor", minor),
                ("gitTreeState", "clean"),
                ("buildDate", "1970-01-01T00:00:00Z"),
            ] {
                ldflags.push(format!("-X={pkg}.{var}={value}"));
            }
        }
    }
    let partial = target.with_extension("partial");
    Recipe {
        args: vec![
            "build".to_owned(),
            "-trimpath".to_owned(),
            format!("-ldflags={}", ldflags.join(" ")),
            "-o".to_owned(),
            partial.display().to_string(),
            binary.package.to_owned(),
        ],
    }
}

fn build(
    module_dir: &Path,
    binary: &Binary,
    version: &str,
    recipe: &Recipe,
    target: &Path,
) -> anyhow::Result<()> {
    eprintln!(
        "==> building {} from {} {version} (cold: minutes; GOFLAGS={:?})",
        binary.name,
        binary.package,
        std::env::var("GOFLAGS").unwrap_or_default()
    );
    let started = Instant::now();
    run_go(
        binary.name,
        module_dir,
        &recipe.args,
        &[],
        &target.with_extension("build.log"),
    )?;
    let partial = target.with_extension("partial");
    fs::rename(&partial, target)
        .with_context(|| format!("cannot move {} to {}", partial.display(), target.display()))?;
    let mut stderr = std::io::stderr();
    let _ = writeln!(
        stderr,
        "    built {} in {}s -> {}",
        binary.name,
        started.elapsed().as_secs(),
        target.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_pinned_version_from_a_require_block_or_line() {
        let block = "module x\n\nrequire (\n\tk8s.io/kubernetes v1.36.1\n\tk8s.io/api v0.36.1 // indirect\n)\n";
        assert_eq!(
            parse_pinned_version(block, "k8s.io/kubernetes").as_deref(),
            Some("v1.36.1")
        );
        let line = "module x\nrequire sigs.k8s.io/kwok v0.8.0\n";
        assert_eq!(
            parse_pinned_version(line, "sigs.k8s.io/kwok").as_deref(),
            Some("v0.8.0")
        );
        // A replace line's target is not a requirement.
        let replaced = "replace (\n\tk8s.io/api => k8s.io/api v0.36.1\n)\n";
        assert_eq!(parse_pinned_version(replaced, "k8s.io/api"), None);
        assert_eq!(parse_pinned_version(block, "sigs.k8s.io/kwok"), None);
    }

    #[test]
    fn the_wrapper_modules_pin_what_the_cache_is_keyed_on() -> anyhow::Result<()> {
        let modules = crate::workspace_root()
            .join("crates")
            .join("harness")
            .join("go-tools");
        for group in GROUPS {
            let version = pinned_version(&modules.join(group.dir).join("go.mod"), group.module)?;
            assert!(version.starts_with('v'), "{}: {version}", group.module);
            assert!(modules.join(group.dir).join("go.sum").is_file());
        }
        // Every staging module is replaced by the release matching k8s.io/kubernetes.
        let go_mod = fs::read_to_string(modules.join("kubernetes").join("go.mod"))?;
        let kube = pinned_version(
            &modules.join("kubernetes").join("go.mod"),
            "k8s.io/kubernetes",
        )?;
        let staging = format!("v0.{}", kube.trim_start_matches("v1."));
        let replaces: Vec<&str> = go_mod.lines().filter(|l| l.contains("=>")).collect();
        assert!(replaces.len() >= 30, "{replaces:?}");
        for line in replaces {
            assert!(
                line.trim_end().ends_with(&staging),
                "{line} is not {staging}"
            );
        }
        Ok(())
    }
}
