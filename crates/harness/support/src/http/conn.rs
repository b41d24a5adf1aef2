//! One keep-alive connection to a server on loopback (the chaos run's readers and
//! writers), able to abandon a request half-way, and the response reader every request
//! of this client shares.

use std::{
    io::{BufReader, Write as _},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How an I/O error starts when the connection was never made (the request was not sent).
pub const CONNECT_FAILED: &str = "connect:";

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Answer { status: u16, body: String },
    Abandoned,
    Io(String),
}

/// One connection to one server, reopened when it breaks.
#[derive(Debug)]
pub struct Conn {
    port: u16,
    stream: Option<BufReader<TcpStream>>,
}

impl Conn {
    pub fn new(port: u16) -> Self {
        Self { port, stream: None }
    }

    /// Sends one request. With `abandon_after`, the socket is closed that long after the
    /// request was sent, without reading the answer. A GET that fails on a reused connection
    /// before any byte of the answer is retried once on a fresh one (the server may have
    /// closed an idle connection); other requests are never retried.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
        abandon_after: Option<Duration>,
    ) -> Reply {
        let reused = self.stream.is_some();
        match self.attempt(method, path, body, abandon_after) {
            Err(Failure::BeforeAnswer(_)) if reused && method == "GET" => {
                self.stream = None;
                self.attempt(method, path, body, abandon_after)
                    .unwrap_or_else(Failure::into_reply)
            }
            other => other.unwrap_or_else(Failure::into_reply),
        }
    }

    fn attempt(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
        abandon_after: Option<Duration>,
    ) -> Result<Reply, Failure> {
        let result = self.exchange(method, path, body, abandon_after);
        if !matches!(result, Ok(Reply::Answer { .. })) {
            self.stream = None;
        }
        result
    }

    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
        abandon_after: Option<Duration>,
    ) -> Result<Reply, Failure> {
        if self.stream.is_none() {
            let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
            let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
                .map_err(|e| Failure::BeforeAnswer(format!("{CONNECT_FAILED} {e}")))?;
            let _ = stream.set_nodelay(true);
            stream
                .set_read_timeout(Some(READ_TIMEOUT))
                .map_err(|e| Failure::BeforeAnswer(e.to_string()))?;
            self.stream = Some(BufReader::new(stream));
        }
        let reader = self
            .stream
            .as_mut()
            .ok_or_else(|| Failure::BeforeAnswer("no connection".into()))?;
        let request = format_request(method, path, body, false);
        reader
            .get_mut()
            .write_all(request.as_bytes())
            .map_err(|e| Failure::BeforeAnswer(format!("send: {e}")))?;
        if let Some(delay) = abandon_after {
            std::thread::sleep(delay);
            return Ok(Reply::Abandoned);
        }
        let (status, body, close) = read_response(reader)?;
        if close {
            self.stream = None;
        }
        Ok(Reply::Answer { status, body })
    }
}

#[derive(Debug)]
pub(super) enum Failure {
    /// Nothing of the answer arrived.
    BeforeAnswer(String),
    /// The answer was cut or malformed.
    During(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::BeforeAnswer(e) | Failure::During(e) => f.write_str(e),
        }
    }
}

impl Failure {
    fn into_reply(self) -> Reply {
        match self {
            Failure::BeforeAnswer(e) | Failure::During(e) => Reply::Io(e),
        }
    }
}

/// A request with `body` as JSON; `close` asks the server to close the connection after
/// its answer (a one-shot request), else the connection is kept for the next.
pub(super) fn format_request(method: &str, path: &str, body: Option<&str>, close: bool) -> String {
    let connection = if close { "Connection: close\r\n" } else { "" };
    match body {
        Some(b) => format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{connection}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        ),
        None => format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{connection}\r\n"),
    }
}

/// Status, body, and whether the server closes the connection after it.
pub(super) fn read_response<R: std::io::BufRead>(
    reader: &mut R,
) -> Result<(u16, String, bool), Failure> {
    let mut line = String::new();
    let n = reader
        .read_line(&mut line)
        .map_err(|e| Failure::BeforeAnswer(format!("receive: {e}")))?;
    if n == 0 {
        return Err(Failure::BeforeAnswer(
            "connection closed before the answer".into(),
        ));
    }
    let bad = |what: &str| Failure::During(what.to_owned());
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status code"))?;
    let (mut length, mut chunked, mut close) = (None, false, false);
    loop {
        line.clear();
        reader
            .read_line(&mut line)
            .map_err(|e| Failure::During(format!("headers: {e}")))?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(bad("bad header line"));
        };
        let (name, value) = (
            name.trim().to_ascii_lowercase(),
            value.trim().to_ascii_lowercase(),
        );
        match name.as_str() {
            "content-length" => length = Some(value.parse().map_err(|_| bad("bad length"))?),
            "transfer-encoding" => chunked = value.contains("chunked"),
            "connection" => close = value.contains("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    // No body, whatever the headers say (RFC 9112, 6.3): 1xx, 204, 304.
    if status < 200 || status == 204 || status == 304 {
        return Ok((status, String::new(), close));
    }
    if chunked {
        loop {
            line.clear();
            reader
                .read_line(&mut line)
                .map_err(|e| Failure::During(format!("chunk: {e}")))?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad("bad chunk size"))?;
            let mut chunk = vec![0; size + 2];
            reader
                .read_exact(&mut chunk)
                .map_err(|e| Failure::During(format!("chunk: {e}")))?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = length {
        body.resize(length, 0);
        reader
            .read_exact(&mut body)
            .map_err(|e| Failure::During(format!("body: {e}")))?;
    } else {
        reader
            .read_to_end(&mut body)
            .map_err(|e| Failure::During(format!("body: {e}")))?;
        close = true;
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned(), close))
}

/// One GET on a fresh connection: the status, or None when it failed.
pub fn get_status(port: u16, path: &str) -> Option<(u16, String)> {
    match Conn::new(port).send("GET", path, None, None) {
        Reply::Answer { status, body } => Some((status, body)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_length_chunked_and_close_delimited_answers() {
        let mut two = std::io::Cursor::new(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx".to_vec(),
        );
        let first = read_response(&mut two).expect("first");
        assert_eq!(first, (200, "{}".into(), false));
        assert_eq!(
            read_response(&mut two).expect("second"),
            (404, "x".into(), true)
        );
        let mut chunked = std::io::Cursor::new(
            b"HTTP/1.1 503 X\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n".to_vec(),
        );
        assert_eq!(
            read_response(&mut chunked).expect("chunked"),
            (503, "abcdefg".into(), false)
        );
        // A 204 has no body even without a length, and the next answer follows it.
        let mut no_content = std::io::Cursor::new(
            b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"
                .to_vec(),
        );
        assert_eq!(
            read_response(&mut no_content).expect("204"),
            (204, String::new(), false)
        );
        assert_eq!(read_response(&mut no_content).expect("after"), first);
        let mut empty = std::io::Cursor::new(Vec::new());
        assert!(matches!(
            read_response(&mut empty),
            Err(Failure::BeforeAnswer(_))
        ));
        let mut cut =
            std::io::Cursor::new(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nab".to_vec());
        assert!(matches!(read_response(&mut cut), Err(Failure::During(_))));
    }
}
