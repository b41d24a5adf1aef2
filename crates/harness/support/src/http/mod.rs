//! The harnesses' one HTTP/1.1 client, blocking, to servers on loopback: one request on
//! a fresh connection (readiness, stats, cache clear), a stampede where every request
//! leaves at the same moment, and keep-alive connections that can abandon a request
//! (`conn`, the chaos run's readers and writers). Every answer is read by the same
//! reader (`conn::read_response`: a length, chunks, or until the server closes).
//!
//! Requests through an ingress or to pgAdmin (cookies, forms, any host) go through curl
//! instead (`cacheme-deploy`'s `containers/http.rs`): not a client of ours.

use std::{
    io::{BufReader, Write as _},
    net::{SocketAddr, TcpStream},
    sync::{Arc, Barrier},
    time::{Duration, Instant},
};

use anyhow::Context as _;

mod conn;

use conn::format_request;
pub use conn::{CONNECT_FAILED, Conn, Reply, get_status};

/// One request on a fresh connection (`Connection: close`): status and body. Not for
/// `HEAD`: the reader would wait for the body its `Content-Length` announces.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    send_once(stream, &format_request(method, path, body, true))
}

/// Writes `request` on `stream` and reads the one answer.
fn send_once(mut stream: TcpStream, request: &str) -> anyhow::Result<(u16, String)> {
    stream.write_all(request.as_bytes())?;
    let (status, body, _) = conn::read_response(&mut BufReader::new(stream))
        .map_err(|failure| anyhow::anyhow!("{failure}"))?;
    Ok((status, body))
}

/// The value at percentile `p` (0..=100) of `sorted` (nearest rank), or None when empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    // The epsilon keeps 99.9% of 1000 at rank 999 despite 0.999 * 1000 = 999.0000000000001.
    let rank = (p / 100.0 * sorted.len() as f64 - 1e-9).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// What a stampede of simultaneous requests saw.
#[derive(Debug, Clone, Default)]
pub struct Burst {
    pub latencies_ms: Vec<f64>,
    pub failures: u64,
    pub wall: Duration,
}

/// `n` connections opened first, then one GET each released at once by a barrier.
pub fn burst(port: u16, path: &str, n: usize) -> anyhow::Result<Burst> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let barrier = Arc::new(Barrier::new(n + 1));
    let request = Arc::new(format_request("GET", path, None, true));
    let mut handles = Vec::with_capacity(n);
    for _ in 0..n {
        let barrier = Arc::clone(&barrier);
        let request = Arc::clone(&request);
        let handle = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(move || -> Result<f64, String> {
                let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10));
                barrier.wait();
                let stream = stream.map_err(|e| e.to_string())?;
                let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                let start = Instant::now();
                let answer = send_once(stream, &request);
                let elapsed = start.elapsed().as_secs_f64() * 1000.0;
                match answer {
                    Ok((200, _)) => Ok(elapsed),
                    Ok((status, _)) => Err(format!("status {status}")),
                    Err(e) => Err(e.to_string()),
                }
            })
            .context("cannot start a stampede thread")?;
        handles.push(handle);
    }
    let start = Instant::now();
    barrier.wait();
    let mut out = Burst::default();
    for h in handles {
        match h.join() {
            Ok(Ok(ms)) => out.latencies_ms.push(ms),
            _ => out.failures += 1,
        }
    }
    out.wall = start.elapsed();
    out.latencies_ms.sort_by(f64::total_cmp);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(500.0));
        assert_eq!(percentile(&v, 99.0), Some(990.0));
        assert_eq!(percentile(&v, 99.9), Some(999.0));
        assert_eq!(percentile(&v, 100.0), Some(1000.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 99.9), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn formats_one_shot_and_keep_alive_requests() {
        let get = format_request("GET", "/readyz", None, true);
        assert!(get.starts_with("GET /readyz HTTP/1.1\r\n"));
        assert!(get.contains("Connection: close\r\n"));
        assert!(get.ends_with("\r\n\r\n"));
        let patch = format_request("PATCH", "/products/1", Some(r#"{"name":"x"}"#), false);
        assert!(patch.contains("Content-Length: 12\r\n"));
        assert!(patch.ends_with(r#"{"name":"x"}"#));
        assert!(!patch.to_ascii_lowercase().contains("connection:"));
    }

    /// The one-shot request against a server that answers in chunks and closes.
    #[test]
    fn a_one_shot_request_reads_a_chunked_answer() -> anyhow::Result<()> {
        use std::io::Read as _;
        let server = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = server.local_addr()?.port();
        let answer = std::thread::spawn(move || -> anyhow::Result<String> {
            let (mut socket, _) = server.accept()?;
            let mut seen = vec![0; 1024];
            let n = socket.read(&mut seen)?;
            socket.write_all(
                b"HTTP/1.1 503 X\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n",
            )?;
            Ok(String::from_utf8_lossy(&seen[..n]).into_owned())
        });
        assert_eq!(request(port, "GET", "/x", None)?, (503, "abcdefg".into()));
        let seen = answer
            .join()
            .map_err(|_| anyhow::anyhow!("server panicked"))??;
        assert!(seen.starts_with("GET /x HTTP/1.1\r\n"), "{seen}");
        Ok(())
    }
}
