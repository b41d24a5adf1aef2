//! The clients: one sequential writer per hot product, one per cold product (written
//! every few seconds, so its entries age past their TTL and the stale windows are used),
//! two writers that create products, rename and delete them, several readers (of the hot
//! and cold products, of the created ones, and of the id the next creation will get),
//! some of them abandoning requests half-way. The sequential writers are in `writers`.

use std::{
    sync::{Arc, atomic::Ordering},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::{
    history::Clock,
    history::{Effect, Op, OpKind, Outcome, parse_value},
    rng::Rng,
    workload::{LIFECYCLE_READS, Progress, Workload},
    writers::{Cadence, abandon, write, writer},
};
use cacheme_harness::http::{Conn, Reply};

/// Writes seq 0 of every product through the first replica, retrying until each is acknowledged.
pub fn initial_writes(w: &Workload, clock: Clock) -> anyhow::Result<Vec<Op>> {
    let port = *w.ports.first().context("no replica")?;
    let mut conn = Conn::new(port);
    let mut ops = Vec::new();
    for product in 1..=w.written_products() {
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
                .spawn(move || writer(&w, product, Cadence::Hot, &mut rng, clock, &progress))
                .context("cannot start a writer thread")?,
        );
    }
    for product in w.products + 1..=w.written_products() {
        let (w, progress) = (w.clone(), Arc::clone(progress));
        let mut rng = Rng::fork(w.seed, u64::from(product));
        handles.push(
            std::thread::Builder::new()
                .name(format!("cold-writer-{product}"))
                .spawn(move || writer(&w, product, Cadence::Cold, &mut rng, clock, &progress))
                .context("cannot start a writer thread")?,
        );
    }
    // Two, so creations also commit out of id order now and then.
    for writer_index in 0..2u64 {
        let (w, progress) = (w.clone(), Arc::clone(progress));
        let mut rng = Rng::fork(w.seed, 500 + writer_index);
        handles.push(
            std::thread::Builder::new()
                .name(format!("lifecycle-writer-{writer_index}"))
                .spawn(move || {
                    super::lifecycle::writer(&w, writer_index, &mut rng, clock, &progress)
                })
                .context("cannot start a lifecycle writer")?,
        );
    }
    let cold_readers = if w.cold > 0 { w.cold_readers } else { 0 };
    for reader_index in 0..w.readers + cold_readers {
        let (w, progress) = (w.clone(), Arc::clone(progress));
        let mut rng = Rng::fork(w.seed, 1000 + reader_index as u64);
        let reads = if reader_index < w.readers {
            Reads::Hot
        } else {
            Reads::Cold
        };
        handles.push(
            std::thread::Builder::new()
                .name(format!("reader-{reader_index}"))
                .spawn(move || reader(&w, reads, &mut rng, clock, &progress))
                .context("cannot start a reader thread")?,
        );
    }
    Ok(handles)
}

/// The ids a reader reads.
#[derive(Debug, Clone, Copy)]
enum Reads {
    /// Hot products, and now and then created ones.
    Hot,
    Cold,
}

fn reader(w: &Workload, reads: Reads, rng: &mut Rng, clock: Clock, progress: &Progress) -> Vec<Op> {
    let mut conns: Vec<Conn> = w.ports.iter().map(|&p| Conn::new(p)).collect();
    let mut ops = Vec::new();
    while !progress.stop.load(Ordering::Relaxed) {
        let replica = rng.below(conns.len() as u64) as usize;
        let product = match reads {
            Reads::Cold => w.products + 1 + rng.below(u64::from(w.cold)) as u32,
            Reads::Hot if rng.chance(LIFECYCLE_READS) => progress.lifecycle_id(rng),
            Reads::Hot => 1 + rng.below(u64::from(w.products)) as u32,
        };
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
            effect: Effect::Set,
        };
        match reply {
            Reply::Answer { status: 200, body } => read_value(&mut op, &body),
            Reply::Answer { status: 404, .. } => op.outcome = Outcome::NotFound,
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
    use crate::history::build;

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
