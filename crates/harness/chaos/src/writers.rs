//! The sequential writers: one per hot product (writing at once or after a think time),
//! one per cold product (every few seconds), and the pauses every sequential writer
//! keeps, so that each product's versions stay in seq order.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use super::{
    history::Clock,
    history::{Effect, Op, Outcome, value_for},
    rng::Rng,
    workload::{Progress, Workload},
};
use cacheme_harness::http::{CONNECT_FAILED, Conn, Reply};

/// A cold product's writer waits this long between writes: at least L1's 5 s and mostly
/// longer than the chaos settings' TTL (2–6 s), so readers find its entries fresh, stale
/// (served while one refresh runs) and past that (served only when PostgreSQL fails). Each
/// replica looks a cold product up in Redis only when its L1 copy expires, so there are
/// as many of them as the seed file allows.
const COLD_WRITE_PAUSE_MS: (u64, u64) = (5000, 15000);

pub(super) fn abandon(w: &Workload, rng: &mut Rng) -> Option<Duration> {
    rng.chance(w.abandon_percent)
        .then(|| Duration::from_millis(rng.between(0, 50)))
}

enum Pause {
    Think,
    Backoff,
    Quarantine,
}

/// How often a product's writer writes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Cadence {
    /// At once or after a think time (up to `--write-think-ms`).
    Hot,
    /// Every `COLD_WRITE_PAUSE_MS`.
    Cold,
}

pub(super) fn writer(
    w: &Workload,
    product: u32,
    cadence: Cadence,
    rng: &mut Rng,
    clock: Clock,
    progress: &Progress,
) -> Vec<Op> {
    let mut writer = SequentialWriter::new(w, rng, progress);
    let (least, most) = COLD_WRITE_PAUSE_MS;
    // A cold product's first write comes sooner: every product was filled at the start,
    // so their L1 copies would otherwise expire together, every 5 s, and a PostgreSQL
    // fault between two such instants would meet no entry past its TTL.
    let mut pause = match cadence {
        Cadence::Cold => writer.rng.between(0, least),
        Cadence::Hot => 0,
    };
    let mut seq = 1;
    while !writer.stopped() {
        if let Cadence::Cold = cadence {
            sleep_until(Instant::now() + Duration::from_millis(pause), progress);
            pause = writer.rng.between(least, most);
            if writer.stopped() {
                break;
            }
        }
        writer.step(|conn, replica, give_up| write(conn, replica, product, seq, give_up, clock));
        seq += 1;
    }
    writer.ops
}

/// A client whose writes follow one another: each sent to a random replica (maybe
/// abandoned half-way), counted and recorded, then the pause its outcome calls for.
pub(super) struct SequentialWriter<'a> {
    w: &'a Workload,
    conns: Vec<Conn>,
    pub rng: &'a mut Rng,
    progress: &'a Progress,
    pub ops: Vec<Op>,
}

impl<'a> SequentialWriter<'a> {
    pub fn new(w: &'a Workload, rng: &'a mut Rng, progress: &'a Progress) -> Self {
        Self {
            w,
            conns: w.ports.iter().map(|&p| Conn::new(p)).collect(),
            rng,
            progress,
            ops: Vec::new(),
        }
    }

    /// The run is over.
    pub fn stopped(&self) -> bool {
        self.progress.stop.load(Ordering::Relaxed)
    }

    /// One operation; returns it.
    pub fn step(&mut self, send: impl FnOnce(&mut Conn, usize, Option<Duration>) -> Op) -> &Op {
        let replica = self.rng.below(self.conns.len() as u64) as usize;
        let give_up = abandon(self.w, self.rng);
        let op = send(&mut self.conns[replica], replica, give_up);
        self.progress.count(&op);
        let pause = pause_after(&op.outcome);
        self.ops.push(op);
        wait(self.w, pause, self.rng, self.progress);
        let last = self.ops.len() - 1;
        &self.ops[last]
    }
}

fn pause_after(outcome: &Outcome) -> Pause {
    // A refused connection never carried the request: nothing to wait for.
    match outcome {
        Outcome::Ok => Pause::Think,
        Outcome::Io { error } if error.starts_with(CONNECT_FAILED) => Pause::Backoff,
        _ => Pause::Quarantine,
    }
}

fn wait(w: &Workload, pause: Pause, rng: &mut Rng, progress: &Progress) {
    let until = Instant::now()
        + match pause {
            // Half the writes follow at once (a fill of the previous value may still be
            // in flight: the race a cache must survive), the others after a pause.
            Pause::Think if rng.chance(50.0) => Duration::ZERO,
            Pause::Think => Duration::from_millis(rng.between(1, w.write_think_ms.max(1))),
            Pause::Backoff => Duration::from_millis(10),
            // Until this write surely committed or failed, no later write may start.
            Pause::Quarantine => w.quarantine,
        };
    sleep_until(until, progress);
}

/// Sleeps until `until`, or until the run stops.
fn sleep_until(until: Instant, progress: &Progress) {
    while Instant::now() < until && !progress.stop.load(Ordering::Relaxed) {
        std::thread::sleep(
            until
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(20)),
        );
    }
}

pub(super) fn write(
    conn: &mut Conn,
    replica: usize,
    product: u32,
    seq: u64,
    give_up: Option<Duration>,
    clock: Clock,
) -> Op {
    let body = format!(r#"{{"name":"{}"}}"#, value_for(product, seq));
    let path = format!("/products/{product}");
    let (reply, span) = timed(conn, clock, "PATCH", &path, Some(&body), give_up);
    Op::write(
        Effect::Set,
        product,
        seq,
        replica,
        span,
        outcome_of(reply, 200),
    )
}

/// Sends one write; its reply, and when it was invoked and completed on `clock`.
pub(super) fn timed(
    conn: &mut Conn,
    clock: Clock,
    method: &str,
    path: &str,
    body: Option<&str>,
    give_up: Option<Duration>,
) -> (Reply, (u64, u64)) {
    let invoke_us = clock.us();
    let reply = conn.send(method, path, body, give_up);
    (reply, (invoke_us, clock.us()))
}

pub(super) fn outcome_of(reply: Reply, ok: u16) -> Outcome {
    match reply {
        Reply::Answer { status, .. } if status == ok => Outcome::Ok,
        Reply::Answer { status, .. } => Outcome::Status { code: status },
        Reply::Abandoned => Outcome::Abandoned,
        Reply::Io(error) => Outcome::Io { error },
    }
}
