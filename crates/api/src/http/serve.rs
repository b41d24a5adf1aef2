//! The accept loop: hyper's connection builders with a timer, so a client that sends its
//! headers slowly (slowloris), sends nothing at all or keeps an idle connection open is
//! cut off, and a cap on the connections served at once, so such clients cannot take
//! every file descriptor. (`axum::serve` builds hyper without a timer: hyper's header
//! timeout is then ignored, and nothing bounds the number of connections.)
//!
//! Which protocol a connection speaks (HTTP/1, or HTTP/2 with prior knowledge) is read
//! here from its first bytes without consuming them, rather than by hyper-util's `auto`
//! builder, for two reasons: the `auto` sniff waits for the first byte with no deadline
//! (a client that never sent one held its slot for ever), and it hands HTTP/1 the 24
//! bytes it read ahead apart from the rest, so hyper's read buffer, reserving its 8 KiB
//! again with those bytes in it, grew to 16 KiB on every connection (heaptrack: 16 MiB of
//! the 51 MiB peak at 1000 connections).
use std::{sync::Arc, time::Duration};

use axum::Router;
use hyper::server::conn::{http1, http2};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Semaphore, watch},
};

/// Requests one HTTP/2 connection may have in flight at once (RFC 9113 advises no fewer
/// than 100). Named rather than left to hyper's default (200), because it is half of the
/// bound on queued work that docs/architecture.md states: connections × streams.
pub const HTTP2_MAX_CONCURRENT_STREAMS: u32 = 100;

/// How the accept loop bounds clients.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Longest wait for a request's headers, the wait for the next request on an idle
    /// keep-alive connection included.
    pub header_read_timeout: Duration,
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// How long a shutdown waits for open connections to finish.
    pub shutdown_patience: Duration,
}

/// Serves `router` on `listener` until `shutdown` completes, then lets open connections
/// finish for at most `limits.shutdown_patience`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut http1 = http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // A client may shut its sending side after its request and still read the
        // answer. Without this hyper also reads mid-request to notice a client gone,
        // and as the request's headers still share the read buffer, that read took a
        // second 8 KiB buffer per request. The price: a request whose client vanished
        // runs on until answered (within REQUEST_TIMEOUT_MS) instead of being dropped,
        // its connection slot still taken, so the cap still bounds such work; loads
        // and writes run to their end either way.
        .half_close(true);
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.header_read_timeout)
        .keep_alive_timeout(limits.header_read_timeout)
        .max_concurrent_streams(HTTP2_MAX_CONCURRENT_STREAMS);
    let builders = Arc::new(Builders { http1, http2 });
    // Tells connections still waiting for their first bytes that shutdown began: they
    // have no request to finish, and would otherwise hold it up (GracefulShutdown waits
    // for every watcher) until their header deadline.
    let (stopping, _) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let service = TowerToHyperService::new(router);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_closed) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of file descriptors (EMFILE) or a connection reset before it
                    // was accepted: wait a little rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let builders = Arc::clone(&builders);
        let service = service.clone();
        let watcher = graceful.watcher();
        let mut stopping = stopping.subscribe();
        let header_deadline = limits.header_read_timeout;
        tokio::spawn(async move {
            let sniffed = tokio::select! {
                sniffed = tokio::time::timeout(header_deadline, sniff(&stream)) => sniffed,
                _ = stopping.wait_for(|stopping| *stopping) => return,
            };
            let protocol = match sniffed {
                Ok(Ok(Some(protocol))) => protocol,
                Ok(Ok(None)) => return, // closed before its first byte
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "connection failed before its first byte");
                    return;
                }
                Err(_silent) => return, // nothing within the header deadline
            };
            let io = TokioIo::new(stream);
            let served = match protocol {
                Protocol::Http1 => {
                    watcher
                        .watch(builders.http1.serve_connection(io, service))
                        .await
                }
                Protocol::Http2 => {
                    watcher
                        .watch(builders.http2.serve_connection(io, service))
                        .await
                }
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    stopping.send_replace(true);
    if tokio::time::timeout(limits.shutdown_patience, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            patience = ?limits.shutdown_patience,
            "connections still open at shutdown; closing them"
        );
    }
}

/// hyper's connection builders, set up once for every connection.
#[derive(Debug)]
struct Builders {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

/// What a connection speaks, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    /// HTTP/2 with prior knowledge (h2c), as gRPC-style clients and some proxies speak it.
    Http2,
}

/// How every HTTP/2 connection starts (RFC 9113, section 3.4: `PRI * HTTP/2.0...`). No
/// HTTP/1 method is `PRI` (the RFC reserves it for this), so three bytes decide; hyper's
/// HTTP/2 server checks the rest of the preface itself.
const H2_PREFACE_START: &[u8] = b"PRI";

/// The protocol `first` (a connection's first bytes, at least one) shows, or `None` while
/// they could still be the start of HTTP/2's preface (`P`, `PR`).
fn protocol_of(first: &[u8]) -> Option<Protocol> {
    let n = first.len().min(H2_PREFACE_START.len());
    if first[..n] != H2_PREFACE_START[..n] {
        Some(Protocol::Http1)
    } else if n == H2_PREFACE_START.len() {
        Some(Protocol::Http2)
    } else {
        None
    }
}

/// Waits for enough of the connection's first bytes to tell its protocol, leaving them
/// unread for hyper; `None` if the client closed before sending any.
async fn sniff(stream: &TcpStream) -> std::io::Result<Option<Protocol>> {
    let mut first = [0_u8; H2_PREFACE_START.len()];
    let mut pause = Duration::from_millis(1);
    loop {
        let n = stream.peek(&mut first).await?;
        if n == 0 {
            return Ok(None);
        }
        if let Some(protocol) = protocol_of(&first[..n]) {
            return Ok(Some(protocol));
        }
        // A lone `P` or `PR`: the rest is on its way. A peek leaves the socket readable,
        // so it would find the same bytes at once: look again after a pause that
        // doubles, so a client that stops there costs a few wake-ups a second, not a
        // busy loop (the header deadline ends it).
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bytes_tell_the_protocol() {
        assert_eq!(protocol_of(b"GET / HTTP/1.1\r\n"), Some(Protocol::Http1));
        assert_eq!(protocol_of(b"G"), Some(Protocol::Http1));
        // POST, PUT and PATCH share only the `P` with the preface.
        assert_eq!(protocol_of(b"PUT /products/1"), Some(Protocol::Http1));
        assert_eq!(protocol_of(b"PATCH"), Some(Protocol::Http1));
        assert_eq!(protocol_of(b"P"), None);
        assert_eq!(protocol_of(b"PR"), None);
        assert_eq!(protocol_of(b"PRI"), Some(Protocol::Http2));
        assert_eq!(
            protocol_of(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\x12\x04"),
            Some(Protocol::Http2)
        );
    }
}
