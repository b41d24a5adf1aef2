//! The clients: one sequential writer per hot product, several readers, some of them
//! abandoning requests half-way.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::{
    Clock,
    client::{CONNECT_FAILED, Conn, Reply},
    history::{Op, OpKind, Outcome, parse_value, value_for},
    rng::Rng,
};

#[derive(Debug, Clone)]
pub struct Workload {
    pub ports: Vec<u16>,
    pub products: u32,
    pub readers: usize,
    pub abandon_percent: f64,
    pub quarantine: Duration,
    /// After half the acknowledged writes, writers pause 1..=this many ms, so that writes
    /// spread over the run instead of coming in bursts between quarantines.
    pub write_think_ms: u64,
    pub seed: u64,
}

/// Counters the progress line shows while the run goes on.
#[derive(Debug, Default)]
pub struct Progress {
    pub stop: AtomicBool,
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub failed: AtomicU64,
}

impl Progress {
    fn count(&self, op: &Op) {
        let counter = match op.kind {
            OpKind::Read => &self.reads,
            OpKind::Write => &self.writes,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if !op.is_ok() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Writes seq 0 of every product through the first replica, retrying until each is acknowledged.
pub fn initial_writes(w: &Workload, clock: Clock) -> anyhow::Result<Vec<Op>> {
    let port = *w.ports.first().context("no replica")?;
    let mut conn = Conn::new(port);
    let mut ops = Vec::new();
    for product in 1..=w.products {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let op = write(&mut conn, 0, product, 0, None, clock);
            let ok = op.is_ok();
            let outcome = op.outcome.clone();
            ops.push(op);
            if ok {
                break;
            }
            if Instant::now() > deadline {
                bail!("seq 0 of product {product} was never acknowledged: {outcome:?}");
            }
            // Another attempt must not race the failed one.
            std::thread::sleep(w.quarantine);
        }
    }
    Ok(ops)
}

/// Starts every client thread; each returns its own operations when `progress.stop` is set.
pub fn spawn(
    w: &Workload,
    clock: Clock,
    progress: &Arc<Progress>,
) -> anyhow::Result<Vec<JoinHandle<Vec<Op>>>> {
    let mut handles = Vec::new();
    for product in 1..=w.products {
        let (w, progress) = (w.clone(), Arc::clone(progress));
        let mut rng = Rng::fork(w.seed, u64::from(product));
        handles.push(
            std::thread::Builder::new()
                .name(format!("writer-{product}"))
                .spawn(move || writer(&w, product, &mut rng, clock, &progress))
                .context("cannot start a writer thread")?,
        );
    }
    for reader_index in 0..w.readers {
        let (w, progress) = (w.clone(), Arc::clone(progress));
        let mut rng = Rng::fork(w.seed, 1000 + reader_index as u64);
        handles.push(
            std::thread::Builder::new()
                .name(format!("reader-{reader_index}"))
                .spawn(move || reader(&w, &mut rng, clock, &progress))
                .context("cannot start a reader thread")?,
        );
    }
    Ok(handles)
}

fn abandon(w: &Workload, rng: &mut Rng) -> Option<Duration> {
    rng.chance(w.abandon_percent)
        .then(|| Duration::from_millis(rng.between(0, 50)))
}

enum Pause {
    Think,
    Backoff,
    Quarantine,
}

fn writer(w: &Workload, product: u32, rng: &mut Rng, clock: Clock, progress: &Progress) -> Vec<Op> {
    let mut conns: Vec<Conn> = w.ports.iter().map(|&p| Conn::new(p)).collect();
    let mut ops = Vec::new();
    let mut seq = 1;
    while !progress.stop.load(Ordering::Relaxed) {
        let replica = rng.below(conns.len() as u64) as usize;
        let give_up = abandon(w, rng);
        let op = write(&mut conns[replica], replica, product, seq, give_up, clock);
        seq += 1;
        progress.count(&op);
        // A refused connection never carried the request: nothing to wait for.
        let pause = match &op.outcome {
            Outcome::Ok => Pause::Think,
            Outcome::Io { error } if error.starts_with(CONNECT_FAILED) => Pause::Backoff,
            _ => Pause::Quarantine,
        };
        ops.push(op);
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
        while Instant::now() < until && !progress.stop.load(Ordering::Relaxed) {
            std::thread::sleep(
                until
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(20)),
            );
        }
    }
    ops
}

fn write(
    conn: &mut Conn,
    replica: usize,
    product: u32,
    seq: u64,
    give_up: Option<Duration>,
    clock: Clock,
) -> Op {
    let body = format!(r#"{{"name":"{}"}}"#, value_for(product, seq));
    let invoke_us = clock.us();
    let reply = conn.send(
        "PATCH",
        &format!("/products/{product}"),
        Some(&body),
        give_up,
    );
    let complete_us = clock.us();
    let outcome = match reply {
        Reply::Answer { status: 200, .. } => Outcome::Ok,
        Reply::Answer { status, .. } => Outcome::Status { code: status },
        Reply::Abandoned => Outcome::Abandoned,
        Reply::Io(error) => Outcome::Io { error },
    };
    Op {
        kind: OpKind::Write,
        product,
        replica,
        invoke_us,
        complete_us,
        outcome,
        seq: Some(seq),
        raw: None,
        source: None,
        cache_tier: None,
    }
}

fn reader(w: &Workload, rng: &mut Rng, clock: Clock, progress: &Progress) -> Vec<Op> {
    let mut conns: Vec<Conn> = w.ports.iter().map(|&p| Conn::new(p)).collect();
    let mut ops = Vec::new();
    while !progress.stop.load(Ordering::Relaxed) {
        let replica = rng.below(conns.len() as u64) as usize;
        let product = 1 + rng.below(u64::from(w.products)) as u32;
        let give_up = abandon(w, rng);
        let invoke_us = clock.us();
        let reply = conns[replica].send("GET", &format!("/products/{product}"), None, give_up);
        let complete_us = clock.us();
        let mut op = Op {
            kind: OpKind::Read,
            product,
            replica,
            invoke_us,
            complete_us,
            outcome: Outcome::Ok,
            seq: None,
            raw: None,
            source: None,
            cache_tier: None,
        };
        match reply {
            Reply::Answer { status: 200, body } => read_value(&mut op, &body),
            Reply::Answer { status, .. } => op.outcome = Outcome::Status { code: status },
            Reply::Abandoned => op.outcome = Outcome::Abandoned,
            Reply::Io(error) => op.outcome = Outcome::Io { error },
        }
        progress.count(&op);
        // A dead replica refuses at once: do not spin on it.
        let backoff = matches!(op.outcome, Outcome::Io { .. });
        ops.push(op);
        if backoff {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    ops
}

/// `name`, `source` and `cache_tier` of a 200 answer into the op.
pub fn read_value(op: &mut Op, body: &str) {
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let name = json["name"].as_str();
    match name.and_then(parse_value) {
        Some((id, seq)) if id == op.product => op.seq = Some(seq),
        _ => op.raw = Some(name.map_or_else(|| body.chars().take(200).collect(), str::to_owned)),
    }
    op.source = json["source"].as_str().map(|s| match s {
        "cache" => "cache",
        "database" => "database",
        _ => "other",
    });
    op.cache_tier = json["cache_tier"].as_str().map(|s| match s {
        "memory" => "memory",
        "redis" => "redis",
        _ => "other",
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::history::build;

    #[test]
    fn answers_are_parsed_into_the_read() {
        let mut op = build::read(3, 0, 0, 0, 1);
        op.seq = None;
        read_value(
            &mut op,
            r#"{"id":3,"name":"chaos:3:41","source":"cache","cache_tier":"redis"}"#,
        );
        assert_eq!((op.seq, op.raw.as_deref()), (Some(41), None));
        assert_eq!((op.source, op.cache_tier), (Some("cache"), Some("redis")));
        let mut other = build::read(3, 0, 0, 0, 1);
        other.seq = None;
        read_value(&mut other, r#"{"name":"chaos:4:41","source":"database"}"#);
        assert_eq!(
            (other.seq, other.raw.as_deref()),
            (None, Some("chaos:4:41"))
        );
        assert_eq!((other.source, other.cache_tier), (Some("database"), None));
        let mut garbage = build::read(3, 0, 0, 0, 1);
        garbage.seq = None;
        read_value(&mut garbage, "not json");
        assert_eq!(garbage.raw.as_deref(), Some("not json"));
    }
}
