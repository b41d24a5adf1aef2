//! `cacheme-healthcheck [host:port] [path]`: exits 0 when `GET path` answers 200.
//!
//! The API's image is distroless (no shell, curl or wget), so docker compose's
//! healthcheck runs this instead. Standard library only, so it adds a few hundred
//! kilobytes to the image and nothing to the service's dependency tree.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

fn probe(addr: &str, path: &str) -> std::io::Result<bool> {
    let timeout = Duration::from_secs(2);
    let target = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let mut stream = TcpStream::connect_timeout(&target, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = Vec::new();
    stream.take(12).read_to_end(&mut head)?;
    Ok(is_ok_status_line(&head))
}

/// `HTTP/1.x 200` in the first 12 bytes of the answer.
fn is_ok_status_line(head: &[u8]) -> bool {
    head.len() == 12 && head.starts_with(b"HTTP/1.") && &head[8..] == b" 200"
}

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8000".to_string());
    let path = args.next().unwrap_or_else(|| "/readyz".to_string());
    let healthy = match probe(&addr, &path) {
        Ok(healthy) => healthy,
        Err(e) => {
            eprintln!("cacheme-healthcheck: {addr}{path}: {e}");
            false
        }
    };
    std::process::exit(if healthy { 0 } else { 1 });
}

#[cfg(test)]
mod tests {
    use super::is_ok_status_line;

    #[test]
    fn only_a_200_status_line_is_healthy() {
        assert!(is_ok_status_line(b"HTTP/1.1 200"));
        assert!(is_ok_status_line(b"HTTP/1.0 200"));
        assert!(!is_ok_status_line(b"HTTP/1.1 503"));
        assert!(!is_ok_status_line(b"HTTP/1.1 20"));
        assert!(!is_ok_status_line(b"SSH-2.0-Open"));
    }
}
