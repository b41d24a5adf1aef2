//! A collector that accepts OTLP/HTTP exports and drops them, so the cost of tracing
//! with an endpoint can be measured without a Jaeger: it answers `200` with an empty
//! body (an empty `ExportTraceServiceResponse`) and counts what it was sent.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use anyhow::Context as _;

/// The sink's address and its counters; it runs until the process ends.
#[derive(Debug, Clone)]
pub struct OtlpSink {
    pub endpoint: String,
    exports: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

impl OtlpSink {
    pub fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind the OTLP sink")?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let sink = Self {
            endpoint,
            exports: Arc::default(),
            bytes: Arc::default(),
        };
        let counters = sink.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counters = counters.clone();
                std::thread::spawn(move || counters.serve(stream));
            }
        });
        Ok(sink)
    }

    /// Export requests and body bytes received so far.
    pub fn received(&self) -> (u64, u64) {
        (
            self.exports.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    /// HTTP/1.1 requests with a `Content-Length` body, kept alive until the client closes.
    fn serve(&self, stream: TcpStream) {
        let Ok(mut writer) = stream.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(stream);
        loop {
            let mut length = 0usize;
            let mut line = String::new();
            // The request line, then headers up to the blank line.
            let mut first = true;
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let trimmed = line.trim_end();
                if trimmed.is_empty() && !first {
                    break;
                }
                first = false;
                if let Some((name, value)) = trimmed.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            self.exports.fetch_add(1, Ordering::Relaxed);
            self.bytes.fetch_add(length as u64, Ordering::Relaxed);
            let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
            if writer.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_answers_exports_on_one_connection_and_counts_them() {
        let sink = OtlpSink::start().expect("starts");
        let address = sink.endpoint.trim_start_matches("http://").to_owned();
        let mut stream = TcpStream::connect(&address).expect("connects");
        for body in ["abc", "defgh"] {
            write!(
                stream,
                "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .expect("sent");
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut status = String::new();
            reader.read_line(&mut status).expect("status");
            assert!(status.starts_with("HTTP/1.1 200"), "{status}");
            let mut rest = String::new();
            while reader.read_line(&mut rest).expect("header") > 2 {
                rest.clear();
            }
        }
        assert_eq!(sink.received(), (2, 8));
    }
}
