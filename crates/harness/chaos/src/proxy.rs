//! A TCP proxy between one replica and Redis or PostgreSQL, so a fault can cut or slow
//! that one link while every other stays healthy (issue #22, C6): what a network
//! partition or a congested path does, which no signal to a server can.
//!
//! - **Cut** ([`FaultProxy::cut`]): bytes in both directions are read and thrown away,
//!   as packets into a partition are; new connections are accepted and never reach the
//!   server. A command sent meanwhile never runs, unlike under SIGSTOP, where it runs late.
//! - **Heal** ([`FaultProxy::heal`]): every connection that lost bytes is closed (its
//!   stream has a hole, as a connection that timed out during a partition has); the
//!   others carry on.
//! - **Latency** ([`FaultProxy::set_jitter`]): each chunk waits a random 0..=N ms before
//!   it is passed on, per direction, so order within a connection is kept.

use std::{
    io::{Read as _, Write as _},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;

use super::rng::Rng;

/// A proxy on 127.0.0.1 to `upstream`, until dropped.
#[derive(Debug)]
pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    cut: AtomicBool,
    jitter_ms: AtomicU64,
    links: Mutex<Vec<Weak<Link>>>,
    stop: AtomicBool,
}

/// One proxied connection: the client's side and, unless it arrived during a cut, the
/// server's.
#[derive(Debug)]
struct Link {
    client: TcpStream,
    server: Option<TcpStream>,
    /// Bytes were thrown away: the stream is broken, close it on heal.
    broken: AtomicBool,
}

impl Link {
    fn close(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        if let Some(server) = &self.server {
            let _ = server.shutdown(Shutdown::Both);
        }
    }
}

impl FaultProxy {
    pub fn start(upstream_port: u16) -> anyhow::Result<Self> {
        let listener =
            TcpListener::bind(("127.0.0.1", 0)).context("cannot bind the fault proxy")?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            upstream: SocketAddr::from(([127, 0, 0, 1], upstream_port)),
            cut: AtomicBool::new(false),
            jitter_ms: AtomicU64::new(0),
            links: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let accepting = Arc::clone(&shared);
        std::thread::Builder::new()
            .name(format!("proxy-{port}"))
            .spawn(move || accept_loop(&listener, &accepting))
            .context("cannot start the fault proxy")?;
        Ok(Self { port, shared })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Partitions the link: nothing gets through in either direction until [`Self::heal`].
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
    }

    /// Ends a cut: connections that lost bytes are closed, new ones reach the server.
    pub fn heal(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
        let mut links = self
            .shared
            .links
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        links.retain(|weak| {
            let Some(link) = weak.upgrade() else {
                return false;
            };
            if link.broken.load(Ordering::SeqCst) {
                link.close();
                return false;
            }
            true
        });
    }

    /// Delays each chunk by a random 0..=`ms` milliseconds (0: none).
    pub fn set_jitter(&self, ms: u64) {
        self.shared.jitter_ms.store(ms, Ordering::SeqCst);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees `stop`.
        let _ = TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], self.port)),
            Duration::from_millis(200),
        );
        if let Ok(links) = self.shared.links.lock() {
            for link in links.iter().filter_map(Weak::upgrade) {
                link.close();
            }
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let _ = client.set_nodelay(true);
        let cut = shared.cut.load(Ordering::SeqCst);
        // During a cut the connection reaches nothing (a SYN into a partition would
        // not be answered; here the client's connect succeeds and then nothing does).
        let server = if cut {
            None
        } else {
            match TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(2)) {
                Ok(server) => {
                    let _ = server.set_nodelay(true);
                    Some(server)
                }
                Err(_) => continue, // the client sees its connection closed
            }
        };
        let link = Arc::new(Link {
            client,
            server,
            broken: AtomicBool::new(cut),
        });
        if let Ok(mut links) = shared.links.lock() {
            links.push(Arc::downgrade(&link));
        }
        match (
            link.client.try_clone(),
            link.server.as_ref().map(TcpStream::try_clone),
        ) {
            (Ok(from_client), Some(Ok(from_server))) => {
                spawn_pump(shared, &link, from_client, Direction::ToServer);
                spawn_pump(shared, &link, from_server, Direction::ToClient);
            }
            (Ok(from_client), None) => spawn_pump(shared, &link, from_client, Direction::ToServer),
            _ => link.close(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Direction {
    ToServer,
    ToClient,
}

fn spawn_pump(shared: &Arc<Shared>, link: &Arc<Link>, from: TcpStream, direction: Direction) {
    let shared = Arc::clone(shared);
    let link = Arc::clone(link);
    let _ = std::thread::Builder::new()
        .name("proxy-pump".into())
        .spawn(move || pump(&shared, &link, from, direction));
}

/// Copies one direction until either side closes; throws bytes away during a cut.
fn pump(shared: &Shared, link: &Link, mut from: TcpStream, direction: Direction) {
    let mut rng = Rng::fork(u64::from(std::process::id()), thread_seed());
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if shared.cut.load(Ordering::SeqCst) || link.broken.load(Ordering::SeqCst) {
            link.broken.store(true, Ordering::SeqCst);
            if shared.cut.load(Ordering::SeqCst) {
                continue;
            }
            break;
        }
        let jitter = shared.jitter_ms.load(Ordering::Relaxed);
        if jitter > 0 {
            std::thread::sleep(Duration::from_millis(rng.between(0, jitter)));
        }
        let to = match direction {
            Direction::ToServer => link.server.as_ref(),
            Direction::ToClient => Some(&link.client),
        };
        let Some(mut to) = to else { continue };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    link.close();
}

fn thread_seed() -> u64 {
    use std::hash::{BuildHasher as _, RandomState};
    RandomState::new().hash_one(std::thread::current().id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead as _, BufReader};

    /// An echo server on a free port: every line comes back.
    fn echo_server() -> u16 {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                    let mut writer = stream;
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                        if writer.write_all(line.as_bytes()).is_err() {
                            return;
                        }
                        line.clear();
                    }
                });
            }
        });
        port
    }

    fn connect(port: u16) -> (BufReader<TcpStream>, TcpStream) {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        (BufReader::new(stream.try_clone().expect("clone")), stream)
    }

    fn round_trip(
        reader: &mut BufReader<TcpStream>,
        writer: &mut TcpStream,
        text: &str,
    ) -> Option<String> {
        writer.write_all(format!("{text}\n").as_bytes()).ok()?;
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(n) if n > 0 => Some(line.trim_end().to_owned()),
            _ => None,
        }
    }

    #[test]
    fn a_cut_drops_what_is_sent_and_heal_closes_the_broken_connections_only() {
        let proxy = FaultProxy::start(echo_server()).expect("proxy");
        let (mut r1, mut w1) = connect(proxy.port());
        let (mut idle_r, mut idle_w) = connect(proxy.port());
        assert_eq!(round_trip(&mut r1, &mut w1, "a").as_deref(), Some("a"));
        assert_eq!(
            round_trip(&mut idle_r, &mut idle_w, "b").as_deref(),
            Some("b")
        );

        proxy.cut();
        // Sent into the partition: never answered, during the cut or after it.
        assert_eq!(round_trip(&mut r1, &mut w1, "lost"), None);
        let (mut during_r, mut during_w) = connect(proxy.port());
        assert_eq!(round_trip(&mut during_r, &mut during_w, "c"), None);
        proxy.heal();

        // The connections that lost bytes are closed; the idle one carries on.
        assert_eq!(round_trip(&mut r1, &mut w1, "d"), None);
        assert_eq!(round_trip(&mut during_r, &mut during_w, "e"), None);
        assert_eq!(
            round_trip(&mut idle_r, &mut idle_w, "f").as_deref(),
            Some("f")
        );
        let (mut r2, mut w2) = connect(proxy.port());
        assert_eq!(round_trip(&mut r2, &mut w2, "g").as_deref(), Some("g"));
    }

    #[test]
    fn jitter_delays_but_keeps_the_order_of_a_connection() {
        let proxy = FaultProxy::start(echo_server()).expect("proxy");
        proxy.set_jitter(20);
        let (mut reader, mut writer) = connect(proxy.port());
        for i in 0..10 {
            assert_eq!(
                round_trip(&mut reader, &mut writer, &i.to_string()),
                Some(i.to_string())
            );
        }
    }
}
