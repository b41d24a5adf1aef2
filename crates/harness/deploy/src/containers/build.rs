//! The project's three images, from its own Dockerfiles (crates/Dockerfile for the two
//! Rust binaries, frontend/Dockerfile for the page).
//!
//! The Rust binaries are the host's release build (the one `cargo xtask bench` makes
//! too), copied into the images through crates/Dockerfile's `BINARIES=prebuilt` stage:
//! nothing is compiled twice and nothing is compiled inside a container. BuildKit (through
//! the compose binary, which needs no buildx plugin) builds only the stages each target
//! needs.

use std::{fs, path::Path};

use anyhow::Context as _;
use serde_json::json;

use super::{bases::Bases, engine::Docker, engine::timed};
use cacheme_harness::{cargo, run};

/// The images' tag: the workspace's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn api_image() -> String {
    format!("localhost/cacheme/api:{VERSION}")
}
pub fn operator_image() -> String {
    format!("localhost/cacheme/operator:{VERSION}")
}
pub fn frontend_image() -> String {
    format!("localhost/cacheme/frontend:{VERSION}")
}

/// The binaries crates/Dockerfile's `prebuilt` stage copies (target/image-bin/).
const BINARIES: &[(&str, &str)] = &[
    ("cacheme-api", "cacheme-api"),
    ("cacheme-api", "cacheme-healthcheck"),
    ("cacheme-operator", "cacheme-operator"),
];

/// The runtime bases are Debian 12: glibc 2.36. A binary linked against a newer glibc
/// does not start there.
const RUNTIME_GLIBC: (u32, u32) = (2, 36);

/// `getconf GNU_LIBC_VERSION`'s answer (`glibc 2.36`) as (major, minor).
fn parse_glibc(text: &str) -> Option<(u32, u32)> {
    let version = text.trim().strip_prefix("glibc ")?;
    let mut parts = version.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn host_glibc() -> Option<(u32, u32)> {
    let out = std::process::Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()?;
    parse_glibc(&String::from_utf8_lossy(&out.stdout))
}

/// Builds the release binaries on the host and the three images on `bases`.
pub fn build_images(docker: &Docker, root: &Path, bases: &Bases) -> anyhow::Result<()> {
    // Binaries linked here start in the Debian 12 runtime only on a glibc no newer than
    // its; elsewhere the image compiles them (with upstream bases, which include Rust).
    let prebuilt = match host_glibc() {
        Some(glibc) if glibc <= RUNTIME_GLIBC => true,
        found if !bases.local => {
            eprintln!(
                "==> this host's glibc ({found:?}) is newer than the images' Debian 12: the images compile the binaries (BINARIES=source)"
            );
            false
        }
        found => anyhow::bail!(
            "this host's glibc ({found:?}) is newer than the images' Debian 12 (2.36), so binaries \
             built here would not start in them, and without a registry there is no Rust image \
             to compile them in: build on Debian 12 or older"
        ),
    };
    if prebuilt {
        copy_release_binaries(root)?;
    }
    let file = root.join("target").join("images").join("build.json");
    fs::create_dir_all(file.parent().context("no parent")?)?;
    fs::write(
        &file,
        serde_json::to_vec_pretty(&build_file(root, bases, prebuilt))?,
    )?;
    let mut build = docker.compose();
    build
        .arg("--file")
        .arg(&file)
        .args(["--progress", "plain", "build"])
        // The project name only labels the build; nothing is started.
        .args(["api", "operator", "frontend"])
        .env("COMPOSE_PROJECT_NAME", "cacheme-images");
    timed(
        &format!(
            "docker compose build: {}, {}, {} (bases: {})",
            api_image(),
            operator_image(),
            frontend_image(),
            if bases.local {
                "stand-ins made here"
            } else {
                "upstream"
            }
        ),
        build,
    )?;
    // A rebuild moves the version tag: the image it leaves behind is untagged.
    super::disk::remove_untagged_own(docker);
    Ok(())
}

/// The host's release build of both binaries, into target/image-bin/.
fn copy_release_binaries(root: &Path) -> anyhow::Result<()> {
    // One package per cargo call, as `cargo xtask bench` builds the API: the same
    // feature set, so the two share every compiled dependency.
    for package in ["cacheme-api", "cacheme-operator"] {
        let mut build = cargo();
        build.args(["build", "--release", "--locked", "--package", package]);
        run(&format!("cargo build --release --package {package}"), build)?;
    }
    let bin_dir = root.join("target").join("image-bin");
    fs::create_dir_all(&bin_dir)?;
    let release = root.join("target").join("release");
    for (_, binary) in BINARIES {
        fs::copy(release.join(binary), bin_dir.join(binary))
            .with_context(|| format!("cannot copy target/release/{binary}"))?;
    }
    Ok(())
}

/// A compose file that only builds: each image, its Dockerfile, target and arguments.
fn build_file(root: &Path, bases: &Bases, prebuilt: bool) -> serde_json::Value {
    let rust = |target: &str, image: String| {
        json!({
            "image": image,
            "build": {
                "context": root,
                "dockerfile": "crates/Dockerfile",
                "target": target,
                "args": {
                    "BINARIES": if prebuilt { "prebuilt" } else { "source" },
                    "RUNTIME_IMAGE": bases.runtime,
                },
            },
        })
    };
    json!({
        "services": {
            "api": rust("api", api_image()),
            "operator": rust("operator", operator_image()),
            "frontend": {
                "image": frontend_image(),
                "build": {
                    "context": root,
                    "dockerfile": "frontend/Dockerfile",
                    "args": {
                        "NODE_IMAGE": bases.node,
                        "NGINX_IMAGE": bases.nginx,
                    },
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_versions_are_read_and_compared() {
        assert_eq!(parse_glibc("glibc 2.36\n"), Some((2, 36)));
        assert_eq!(parse_glibc("glibc 2.39"), Some((2, 39)));
        assert_eq!(parse_glibc("musl"), None);
        assert!(Some((2, 39)) > Some(RUNTIME_GLIBC));
        assert!((2, 31) <= RUNTIME_GLIBC);
    }

    #[test]
    fn the_build_file_copies_the_host_binaries_onto_the_chosen_bases() {
        let bases = Bases {
            local: true,
            runtime: "localhost/cacheme-base/runtime:1".into(),
            node: "n".into(),
            nginx: "x".into(),
        };
        let file = build_file(Path::new("/repo"), &bases, true);
        assert_eq!(
            build_file(Path::new("/repo"), &bases, false)["services"]["api"]["build"]["args"]["BINARIES"],
            "source"
        );
        let api = &file["services"]["api"];
        assert_eq!(api["image"], api_image());
        assert_eq!(api["build"]["target"], "api");
        assert_eq!(api["build"]["args"]["BINARIES"], "prebuilt");
        assert_eq!(
            api["build"]["args"]["RUNTIME_IMAGE"],
            "localhost/cacheme-base/runtime:1"
        );
        assert_eq!(file["services"]["operator"]["build"]["target"], "operator");
        assert_eq!(
            file["services"]["frontend"]["build"]["args"]["NGINX_IMAGE"],
            "x"
        );
    }

    /// The Dockerfile's `prebuilt` stage copies exactly what `build_images` puts there,
    /// and the context's .dockerignore lets that folder through.
    #[test]
    fn the_dockerfile_and_dockerignore_agree_with_the_binaries_copied() -> anyhow::Result<()> {
        let root = cacheme_harness::workspace_root();
        let dockerfile = fs::read_to_string(root.join("crates/Dockerfile"))?;
        assert!(dockerfile.contains("COPY target/image-bin/ /out/"));
        for (_, binary) in BINARIES {
            assert!(
                dockerfile.contains(&format!("/out/{binary}")),
                "{binary} not copied into an image"
            );
        }
        let ignore = fs::read_to_string(root.join(".dockerignore"))?;
        assert!(ignore.lines().any(|l| l.trim() == "!target/image-bin"));
        Ok(())
    }
}
