//! What a kind node runs besides Kubernetes itself, and kind: built from the Go module
//! proxy (no registry, no GitHub download), cached beside the control plane.
//!
//! Each entry is one `go install <package>@<version>` (several binaries when one module
//! gives them), built once into `${CACHEME_TOOLS_CACHE}/kind-node/` with its exact command
//! stored as `<entry>.recipe`: a changed pin or flag rebuilds that entry only. The pins
//! follow kind v0.33.0's base image where the proxy serves them (crictl 1.37 and
//! local-path-provisioner 0.0.30 where kind pins versions it does not serve). runc needs
//! cgo and a static libseccomp: `libseccomp-dev`'s .deb is downloaded and unpacked into
//! the cache, not installed. `pause` is a 20-line C program (the same behaviour as
//! Kubernetes' own), compiled statically with the host's gcc.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

use cacheme_harness::go_build::{check_go, run_go};
use cacheme_harness::kube_tools::cache_root;

/// kind itself: the version whose node-image builder and base-image files are used.
pub const KIND_VERSION: &str = "v0.33.0";

/// One `go install`.
#[derive(Debug, Clone, Copy)]
struct Install {
    /// The stamp's name.
    name: &'static str,
    /// `package@version`, one per binary.
    packages: &'static [&'static str],
    tags: &'static str,
    ldflags: &'static str,
    /// runc: cgo, statically linked against libseccomp.
    cgo_seccomp: bool,
}

const INSTALLS: &[Install] = &[
    Install {
        name: "kind",
        packages: &["sigs.k8s.io/kind@v0.33.0"],
        tags: "",
        ldflags: "-s -w",
        cgo_seccomp: false,
    },
    Install {
        name: "containerd",
        packages: &[
            "github.com/containerd/containerd/v2/cmd/containerd@v2.3.4",
            "github.com/containerd/containerd/v2/cmd/ctr@v2.3.4",
            "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@v2.3.4",
        ],
        tags: "no_aufs no_zfs no_btrfs no_devmapper",
        ldflags: "-s -w -X github.com/containerd/containerd/v2/version.Version=v2.3.4 \
                  -X github.com/containerd/containerd/v2/version.Revision=gomodproxy",
        cgo_seccomp: false,
    },
    Install {
        name: "cni-plugins",
        packages: &[
            "github.com/containernetworking/plugins/plugins/ipam/host-local@v1.9.1",
            "github.com/containernetworking/plugins/plugins/main/loopback@v1.9.1",
            "github.com/containernetworking/plugins/plugins/main/ptp@v1.9.1",
            "github.com/containernetworking/plugins/plugins/meta/portmap@v1.9.1",
        ],
        tags: "",
        ldflags: "-s -w",
        cgo_seccomp: false,
    },
    Install {
        name: "crictl",
        packages: &["sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0"],
        tags: "",
        ldflags: "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=v1.37.0",
        cgo_seccomp: false,
    },
    Install {
        name: "runc",
        packages: &["github.com/opencontainers/runc@v1.4.3"],
        tags: "seccomp urfave_cli_no_docs netgo osusergo",
        ldflags: "-s -w -X main.version=1.4.3 -extldflags -static",
        cgo_seccomp: true,
    },
    Install {
        // The version kubeadm 1.36 deploys.
        name: "coredns",
        packages: &["github.com/coredns/coredns@v1.14.2"],
        tags: "",
        ldflags: "-s -w",
        cgo_seccomp: false,
    },
    Install {
        name: "local-path-provisioner",
        packages: &["github.com/rancher/local-path-provisioner@v0.0.30"],
        tags: "",
        ldflags: "-s -w",
        cgo_seccomp: false,
    },
];

/// What the suite adds to a cluster besides the chart and Traefik: kube-router's
/// NetworkPolicy controller (the node's minimal CNI enforces no policy) and metrics-server
/// (for the HorizontalPodAutoscaler). Not part of the node image: their recipes are kept
/// out of its cache key. kube-router v2.1.0 is the newest version the proxy serves;
/// metrics-server v0.9.1 needs Go 1.26.10, so v0.9.0.
const ADDONS: &[Install] = &[
    Install {
        name: "kube-router",
        packages: &["github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@v2.1.0"],
        tags: "",
        ldflags: "-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=v2.1.0",
        cgo_seccomp: false,
    },
    Install {
        name: "metrics-server",
        packages: &["sigs.k8s.io/metrics-server/cmd/metrics-server@v0.9.0"],
        tags: "",
        ldflags: "-s -w",
        cgo_seccomp: false,
    },
];

/// The module kube-router's binary comes from (its iptables wrapper is read from there).
pub const KUBE_ROUTER_MODULE: (&str, &str) =
    ("github.com/cloudnativelabs/kube-router/v2", "v2.1.0");

/// The add-ons' binaries (`kube-router`, `metrics-server`), built when missing.
pub fn addons() -> anyhow::Result<PathBuf> {
    let dir = cache_root()?.join("kind-addons");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    ensure_installs(&dir, ADDONS, |_| true)?;
    Ok(dir)
}

/// The folder holding every node tool's binaries (`<dir>/<binary>`), built when missing.
#[derive(Debug, Clone)]
pub struct NodeTools {
    pub dir: PathBuf,
}

impl NodeTools {
    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Every recipe, for the node image's cache key.
    pub fn recipes(&self) -> String {
        INSTALLS
            .iter()
            .map(|i| recipe(i).join(" "))
            .chain(std::iter::once(PAUSE_RECIPE.join(" ")))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Where kind is, built when missing (the node image's tools are built only when the
/// node image is).
pub fn kind() -> anyhow::Result<PathBuf> {
    let dir = tools_dir()?;
    ensure_installs(&dir, INSTALLS, |i| i.name == "kind")?;
    Ok(dir.join("kind"))
}

/// The node tools' folder without building anything (for the cache key).
pub fn planned() -> anyhow::Result<NodeTools> {
    Ok(NodeTools { dir: tools_dir()? })
}

/// Every node tool, built when missing.
pub fn ensure(root: &Path) -> anyhow::Result<NodeTools> {
    let dir = tools_dir()?;
    ensure_installs(&dir, INSTALLS, |_| true)?;
    ensure_pause(root, &dir)?;
    Ok(NodeTools { dir })
}

fn tools_dir() -> anyhow::Result<PathBuf> {
    let dir = cache_root()?.join("kind-node");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

fn recipe(install: &Install) -> Vec<String> {
    let mut args = vec!["install".to_owned(), "-trimpath".to_owned()];
    if !install.tags.is_empty() {
        args.push("-tags".to_owned());
        args.push(install.tags.to_owned());
    }
    let ldflags = install.ldflags.split_whitespace().collect::<Vec<_>>();
    args.push("-ldflags".to_owned());
    args.push(ldflags.join(" "));
    args.extend(install.packages.iter().map(|p| (*p).to_owned()));
    args
}

/// The binary `go install` names after a package path (its last element, or the one
/// before a major-version suffix).
fn binary_name(package: &str) -> &str {
    let path = package.split('@').next().unwrap_or(package);
    let mut parts = path.rsplit('/');
    let last = parts.next().unwrap_or(path);
    let is_major =
        last.len() > 1 && last.starts_with('v') && last[1..].chars().all(|c| c.is_ascii_digit());
    if is_major {
        parts.next().unwrap_or(last)
    } else {
        last
    }
}

fn ensure_installs(
    dir: &Path,
    installs: &[Install],
    wanted: impl Fn(&Install) -> bool,
) -> anyhow::Result<()> {
    let lock = fs::File::create(dir.join(".lock"))?;
    lock.lock()
        .with_context(|| format!("cannot lock {}", dir.display()))?;
    let mut go_checked = false;
    for install in installs.iter().filter(|i| wanted(i)) {
        let args = recipe(install);
        let describe = format!("go {}\n", args.join(" "));
        let stamp = dir.join(format!("{}.recipe", install.name));
        let have_all = install
            .packages
            .iter()
            .all(|p| dir.join(binary_name(p)).is_file());
        if have_all && fs::read_to_string(&stamp).is_ok_and(|s| s == describe) {
            continue;
        }
        if !go_checked {
            check_go()?;
            go_checked = true;
        }
        eprintln!(
            "==> building {} ({}) from the Go module proxy (cold: minutes)",
            install.name,
            install.packages.join(" ")
        );
        let started = std::time::Instant::now();
        let partial = dir.join(format!(".{}.partial", install.name));
        let _ = fs::remove_dir_all(&partial);
        fs::create_dir_all(&partial)?;
        let gobin = partial.display().to_string();
        let mut env: Vec<(&str, String)> = vec![("GOBIN", gobin)];
        if install.cgo_seccomp {
            let sysroot = libseccomp(dir)?;
            env.push(("CGO_ENABLED", "1".to_owned()));
            env.push((
                "PKG_CONFIG_PATH",
                sysroot
                    .join("usr/lib/x86_64-linux-gnu/pkgconfig")
                    .display()
                    .to_string(),
            ));
            env.push(("PKG_CONFIG_SYSROOT_DIR", sysroot.display().to_string()));
        }
        let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // Outside any module: `go install pkg@version` builds with the package's own go.mod.
        run_go(
            install.name,
            dir,
            &args,
            &env_refs,
            &dir.join(format!("{}.build.log", install.name)),
        )?;
        for package in install.packages {
            let name = binary_name(package);
            fs::rename(partial.join(name), dir.join(name))
                .with_context(|| format!("go install did not produce {name}"))?;
        }
        let _ = fs::remove_dir_all(&partial);
        fs::write(&stamp, describe)?;
        eprintln!(
            "    built {} in {}s",
            install.name,
            started.elapsed().as_secs()
        );
    }
    Ok(())
}

/// libseccomp-dev's static library and pkg-config file, unpacked from Debian's .deb into
/// the cache (nothing installed on the host).
fn libseccomp(dir: &Path) -> anyhow::Result<PathBuf> {
    let sysroot = dir.join("libseccomp-sysroot");
    if sysroot
        .join("usr/lib/x86_64-linux-gnu/libseccomp.a")
        .is_file()
    {
        return Ok(sysroot);
    }
    let debs = dir.join("debs");
    fs::create_dir_all(&debs)?;
    let status = Command::new("apt-get")
        .args(["download", "libseccomp-dev"])
        .current_dir(&debs)
        .stdin(Stdio::null())
        .status()
        .context("apt-get is needed to download libseccomp-dev (runc's seccomp support)")?;
    if !status.success() {
        bail!("apt-get download libseccomp-dev failed ({status}); try apt-get update first");
    }
    let deb = fs::read_dir(&debs)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libseccomp-dev_"))
        })
        .context("apt-get download left no libseccomp-dev .deb")?;
    let status = Command::new("dpkg")
        .arg("-x")
        .arg(&deb)
        .arg(&sysroot)
        .status()
        .context("dpkg is needed to unpack libseccomp-dev")?;
    if !status.success() {
        bail!("dpkg -x {} failed ({status})", deb.display());
    }
    Ok(sysroot)
}

const PAUSE_RECIPE: [&str; 4] = ["gcc", "-Os", "-static", "-s"];

/// `pause`, statically linked (it runs in a `FROM scratch` image).
fn ensure_pause(root: &Path, dir: &Path) -> anyhow::Result<()> {
    let source = root.join("crates/harness/deploy/kind/pause/pause.c");
    let text =
        fs::read_to_string(&source).with_context(|| format!("cannot read {}", source.display()))?;
    let describe = format!("{}\n{text}", PAUSE_RECIPE.join(" "));
    let target = dir.join("pause");
    let stamp = dir.join("pause.recipe");
    if target.is_file() && fs::read_to_string(&stamp).is_ok_and(|s| s == describe) {
        return Ok(());
    }
    let status = Command::new(PAUSE_RECIPE[0])
        .args(&PAUSE_RECIPE[1..])
        .arg("-o")
        .arg(&target)
        .arg(&source)
        .status()
        .context("gcc is needed to compile the pause program (apt-get install gcc libc6-dev)")?;
    if !status.success() {
        bail!("gcc could not compile {} ({status})", source.display());
    }
    fs::write(&stamp, describe)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binaries_are_named_as_go_install_names_them() {
        assert_eq!(binary_name("sigs.k8s.io/kind@v0.33.0"), "kind");
        assert_eq!(binary_name("github.com/coredns/coredns@v1.14.2"), "coredns");
        assert_eq!(
            binary_name("github.com/containerd/containerd/v2/cmd/ctr@v2.3.4"),
            "ctr"
        );
        // A module root with a major-version suffix is named after the element before it.
        assert_eq!(binary_name("example.com/tool/v3@v3.0.0"), "tool");
    }

    #[test]
    fn every_package_is_pinned_and_named_once() {
        let mut names = std::collections::BTreeSet::new();
        for install in INSTALLS.iter().chain(ADDONS) {
            for package in install.packages {
                let (_, version) = package
                    .split_once('@')
                    .unwrap_or_else(|| panic!("{package} has no version"));
                assert!(version.starts_with('v'), "{package}");
                assert!(names.insert(binary_name(package)), "{package} twice");
            }
        }
        assert!(names.contains("kind") && names.contains("runc"));
    }
}
