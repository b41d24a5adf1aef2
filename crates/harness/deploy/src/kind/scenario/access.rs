//! How the scenario reaches into the cluster: a Secret's value, and the README's way in
//! without a front door (`kubectl port-forward`).

use std::{
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, ensure};

use super::NAMESPACE;
use crate::kind::cluster::Cluster;

pub(super) fn secret(cluster: &Cluster, name: &str, key: &str) -> anyhow::Result<String> {
    let encoded = cluster.kubectl_output(&[
        "-n",
        NAMESPACE,
        "get",
        "secret",
        name,
        "-o",
        &format!("jsonpath={{.data.{key}}}"),
    ])?;
    let bytes = base64_decode(encoded.trim()).with_context(|| format!("secret {name}/{key}"))?;
    String::from_utf8(bytes).context("a secret that is not UTF-8")
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = text.bytes().filter(|b| *b != b'=').collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            n |= value(*b)? << (18 - 6 * i);
        }
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

/// The README's way in without an Ingress: `kubectl port-forward svc/...`.
pub(super) struct PortForward {
    child: Child,
    port: u16,
}

impl PortForward {
    pub(super) fn start(cluster: &Cluster, target: &str, remote: u16) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = cluster
            .kubectl()
            .args([
                "-n",
                NAMESPACE,
                "port-forward",
                "--address",
                "127.0.0.1",
                target,
            ])
            .arg(format!("{port}:{remote}"))
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start kubectl port-forward")?;
        let forward = Self { child, port };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            ensure!(
                started.elapsed() < Duration::from_secs(30),
                "kubectl port-forward {target} did not listen in 30 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(forward)
    }

    pub(super) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_decoded() {
        assert_eq!(base64_decode("aGVsbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(base64_decode("YWJj").as_deref(), Some(&b"abc"[..]));
        assert_eq!(base64_decode("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(base64_decode("!!"), None);
    }
}
