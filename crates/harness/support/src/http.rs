//! A tiny blocking HTTP/1.1 client for the harness's own calls (readiness, stats, cache clear)
//! and the stampede, where every request must leave at the same moment.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    sync::{Arc, Barrier},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// One request on a fresh connection (`Connection: close`): status and body.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(format_request(method, path, body).as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

pub fn format_request(method: &str, path: &str, body: Option<&str>) -> String {
    match body {
        Some(b) => format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        ),
        None => format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
    }
}

/// Status and body of a whole response read until the server closed (chunked bodies decoded).
pub fn parse_response(raw: &[u8]) -> anyhow::Result<(u16, String)> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").context("no end of headers")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status code")?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").context("bad chunk header")?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .context("bad chunk size")?;
        if size == 0 {
            return Ok(out);
        }
        if rest.len() < size {
            bail!("chunk shorter than announced");
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
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
    let request = Arc::new(format_request("GET", path, None));
    let mut handles = Vec::with_capacity(n);
    for _ in 0..n {
        let barrier = Arc::clone(&barrier);
        let request = Arc::clone(&request);
        let handle = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(move || -> Result<f64, String> {
                let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10));
                barrier.wait();
                let mut stream = stream.map_err(|e| e.to_string())?;
                let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                let start = Instant::now();
                stream
                    .write_all(request.as_bytes())
                    .map_err(|e| e.to_string())?;
                let mut raw = Vec::new();
                stream.read_to_end(&mut raw).map_err(|e| e.to_string())?;
                let elapsed = start.elapsed().as_secs_f64() * 1000.0;
                match parse_response(&raw) {
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
    fn reads_plain_and_chunked_responses() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain).expect("plain"), (200, "{}".into()));
        let chunked =
            b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked).expect("chunked"),
            (503, "abcdefg".into())
        );
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn formats_requests_with_and_without_body() {
        let get = format_request("GET", "/readyz", None);
        assert!(get.starts_with("GET /readyz HTTP/1.1\r\n"));
        assert!(get.ends_with("\r\n\r\n"));
        let patch = format_request("PATCH", "/products/1", Some(r#"{"name":"x"}"#));
        assert!(patch.contains("Content-Length: 12\r\n"));
        assert!(patch.ends_with(r#"{"name":"x"}"#));
    }
}
