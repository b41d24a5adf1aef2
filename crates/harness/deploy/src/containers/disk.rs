//! Docker's disk. Every run builds images whose tags carry a hash of their inputs (or a
//! fixed version tag that a rebuild moves), so a machine that runs the suite day after day
//! fills with superseded copies: CI failed once with 5 GiB left where kind needed about 8.
//! What is ours and superseded goes as soon as its successor exists; the BuildKit cache
//! goes only when the disk is short, because it only makes rebuilds faster; so does Go's
//! build cache, last.

use anyhow::Context as _;

use super::engine::Docker;

/// The `org.opencontainers.image.title` of the project's own images (its Dockerfiles).
const OWN_TITLES: [&str; 3] = ["cacheme-api", "cacheme-operator", "cacheme-frontend"];

/// Every other tag of `keep`'s repository (an older build of the same image): a node
/// image is 1.4 GB, a stand-in up to a few hundred MB.
pub fn remove_superseded(docker: &Docker, keep: &str) {
    let Some((repository, _)) = keep.rsplit_once(':') else {
        return;
    };
    let listed = docker
        .output(&["images", repository, "--format", "{{.Repository}}:{{.Tag}}"])
        .unwrap_or_default();
    for old in superseded(&listed, keep) {
        if docker.output(&["rmi", old]).is_ok() {
            eprintln!("    removed the older {old}");
        }
    }
}

/// The tags of `listed` (one `repository:tag` per line) other than `keep`, untagged ones aside.
fn superseded<'a>(listed: &'a str, keep: &str) -> Vec<&'a str> {
    listed
        .lines()
        .map(str::trim)
        .filter(|t| !t.is_empty() && *t != keep && !t.ends_with(":<none>"))
        .collect()
}

/// Untagged images of the project's own Dockerfiles: what a rebuild under the same tag
/// (`localhost/cacheme/api:0.1.0`) left behind. Nothing else is untagged by us.
pub fn remove_untagged_own(docker: &Docker) {
    for title in OWN_TITLES {
        let ids = docker
            .output(&[
                "images",
                "--quiet",
                "--filter",
                "dangling=true",
                "--filter",
                &format!("label=org.opencontainers.image.title={title}"),
            ])
            .unwrap_or_default();
        for id in ids.lines().map(str::trim).filter(|id| !id.is_empty()) {
            if docker.output(&["rmi", id]).is_ok() {
                eprintln!("    removed an older, untagged {title} image ({id})");
            }
        }
    }
}

/// Where Docker keeps its images.
fn docker_root(docker: &Docker) -> String {
    docker
        .output(&["info", "--format", "{{.DockerRootDir}}"])
        .map(|d| d.trim().to_owned())
        .unwrap_or_else(|_| "/var/lib/docker".to_owned())
}

/// GiB free where Docker keeps its images, when `df` can tell.
pub fn free_gib(docker: &Docker) -> anyhow::Result<Option<u64>> {
    let dir = docker_root(docker);
    let out = std::process::Command::new("df")
        .args(["--output=avail", "-k", &dir])
        .output()
        .context("cannot run df")?;
    Ok(parse_df_avail_kib(&String::from_utf8_lossy(&out.stdout)).map(|kib| kib / (1024 * 1024)))
}

fn parse_df_avail_kib(df: &str) -> Option<u64> {
    df.lines().nth(1).and_then(|l| l.trim().parse().ok())
}

/// Fails before `purpose` starts unless `needed_gib` are free, after dropping BuildKit's
/// cache and then Go's build cache when they are not (both only speed rebuilds up). The message says what holds the
/// space, so the user frees it rather than meeting `no space left on device` half-way.
pub fn ensure_room(docker: &Docker, needed_gib: u64, purpose: &str) -> anyhow::Result<()> {
    let Some(free) = free_gib(docker)? else {
        return Ok(());
    };
    if free >= needed_gib {
        return Ok(());
    }
    eprintln!(
        "==> {free} GiB free for Docker, {purpose} needs about {needed_gib}: dropping BuildKit's cache"
    );
    match docker.output(&["builder", "prune", "--force"]) {
        Ok(out) => eprintln!("    {}", out.lines().last().unwrap_or_default()),
        Err(e) => eprintln!("    could not prune the build cache: {e:#}"),
    }
    remove_untagged_own(docker);
    let free = free_gib(docker)?.unwrap_or(needed_gib);
    if free >= needed_gib {
        return Ok(());
    }
    // Go's build cache (12 GB on a machine that built the control plane, the node's tools,
    // Traefik and Jaeger) only speeds up rebuilding tools whose binaries are already kept
    // in the tools cache; CI once stopped here with 3 GiB free while it held that much.
    drop_go_build_cache(&docker_root(docker));
    let free = free_gib(docker)?.unwrap_or(needed_gib);
    let usage = docker.output(&["system", "df"]).unwrap_or_default();
    anyhow::bail!(
        "Docker's disk has {free} GiB free; {purpose} needs about {needed_gib} GiB. \
         What Docker holds:\n{usage}\nFree some: `docker image prune`, old clones' target/ \
         folders (their incremental/ alone can hold many GB)"
    )
}

/// Empties Go's build cache when it sits on the file system of `docker_root` (freeing
/// elsewhere does not help Docker). Never the module cache: rebuilding
/// from it needs no network, and the proxy is not always reachable.
fn drop_go_build_cache(docker_root: &str) {
    let Ok(out) = std::process::Command::new("go")
        .args(["env", "GOCACHE"])
        .env("GOTOOLCHAIN", "local")
        .output()
    else {
        return;
    };
    let cache = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if cache.is_empty() || cache == "off" || !std::path::Path::new(&cache).is_dir() {
        return;
    }
    if !same_file_system(&cache, docker_root) {
        return;
    }
    let size = std::process::Command::new("du")
        .args(["-sh", &cache])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()
                .unwrap_or("?")
                .to_owned()
        })
        .unwrap_or_else(|_| "?".to_owned());
    eprintln!(
        "    still short: emptying Go's build cache ({size} in {cache}; the built tools stay \
         cached, a changed recipe rebuilds slower once)"
    );
    match std::process::Command::new("go")
        .args(["clean", "-cache"])
        .env("GOTOOLCHAIN", "local")
        .status()
    {
        Ok(s) if s.success() => {}
        Ok(s) => eprintln!("    go clean -cache failed ({s})"),
        Err(e) => eprintln!("    cannot run go clean -cache: {e}"),
    }
}

#[cfg(unix)]
fn same_file_system(a: &str, b: &str) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        // Docker's root is often readable by root only: assume the common single disk.
        _ => true,
    }
}

#[cfg(not(unix))]
fn same_file_system(_: &str, _: &str) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_other_tags_of_the_repository_are_superseded() {
        let listed = "localhost/cacheme-kind/node:v1.36.1-aaa\n\
                      localhost/cacheme-kind/node:v1.36.1-bbb\n\
                      localhost/cacheme-kind/node:<none>\n";
        assert_eq!(
            superseded(listed, "localhost/cacheme-kind/node:v1.36.1-bbb"),
            ["localhost/cacheme-kind/node:v1.36.1-aaa"]
        );
        assert!(superseded("", "localhost/x:1").is_empty());
    }

    #[test]
    fn df_output_gives_the_available_kib() {
        assert_eq!(
            parse_df_avail_kib("    Avail\n 82263456\n"),
            Some(82_263_456)
        );
        assert_eq!(parse_df_avail_kib("Avail\n"), None);
    }
}
