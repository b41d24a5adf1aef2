//! Check 3: once faults and clients stop, every replica is ready, agrees on every hot product,
//! and still answers a burst of misses (no stranded connection or permit).

use std::{
    sync::{Arc, Barrier},
    time::{Duration, Instant},
};

use super::{
    checker::{final_value_ok, latest_acked},
    clients::read_value,
    cluster::Cluster,
    history::{Effect, Op, OpKind, Outcome},
    report::{Aging, Convergence},
};
use cacheme_harness::http::{Conn, Reply, get_status};

pub const PATIENCE: Duration = Duration::from_secs(5);
const BURST: usize = 50;

/// Polls until every replica answers /readyz 200 and every product's final value, or `PATIENCE`.
pub fn converge(cluster: &Cluster, history: &[Op], products: u32) -> Convergence {
    let start = Instant::now();
    let mut problems;
    loop {
        problems = Vec::new();
        for replica in &cluster.replicas {
            match get_status(replica.port, "/readyz") {
                Some((200, _)) => {}
                other => problems.push(format!(
                    "replica {}: /readyz answered {:?}",
                    replica.index,
                    other.map(|(s, _)| s)
                )),
            }
            for product in 1..=products {
                if let Some(p) = final_problem(replica.index, replica.port, history, product) {
                    problems.push(p);
                }
            }
        }
        if problems.is_empty() || start.elapsed() > PATIENCE {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let ok = problems.is_empty();
    Convergence {
        ok,
        settled_after_ms: ok.then(|| start.elapsed().as_secs_f64() * 1000.0),
        problems,
        ..Convergence::default()
    }
}

fn final_problem(replica: usize, port: u16, history: &[Op], product: u32) -> Option<String> {
    let latest = latest_acked(history, product);
    let mut op = Op {
        kind: OpKind::Read,
        product,
        replica,
        invoke_us: 0,
        complete_us: 0,
        outcome: Outcome::Ok,
        seq: None,
        raw: None,
        source: None,
        cache_tier: None,
        effect: Effect::Set,
    };
    match get_status(port, &format!("/products/{product}")) {
        Some((200, body)) => {
            read_value(&mut op, &body);
            match op.seq {
                Some(seq) if final_value_ok(history, product, seq) => None,
                _ => Some(format!(
                    "replica {replica} product {product}: answered {} from {:?}/{:?}, latest acknowledged seq {latest:?}",
                    op.raw.unwrap_or_else(|| format!("seq {:?}", op.seq)),
                    op.source,
                    op.cache_tier,
                )),
            }
        }
        other => Some(format!(
            "replica {replica} product {product}: answered {:?}",
            other.map(|(s, _)| s)
        )),
    }
}

/// `BURST` concurrent GETs of distinct unknown ids per replica; each must answer 404.
/// Returns a line per replica and whether all of them did.
pub fn burst(cluster: &Cluster) -> (Vec<String>, bool) {
    let mut lines = Vec::new();
    let mut all_ok = true;
    for replica in &cluster.replicas {
        let barrier = Arc::new(Barrier::new(BURST));
        let handles: Vec<_> = (0..BURST)
            .map(|k| {
                let barrier = Arc::clone(&barrier);
                let port = replica.port;
                let id = 1_000_000 + replica.index * 10_000 + k;
                std::thread::spawn(move || {
                    let mut conn = Conn::new(port);
                    barrier.wait();
                    match conn.send("GET", &format!("/products/{id}"), None, None) {
                        Reply::Answer { status, .. } => status.to_string(),
                        Reply::Abandoned => "abandoned".to_owned(),
                        Reply::Io(e) => format!("io error ({e})"),
                    }
                })
            })
            .collect();
        let mut answers = std::collections::BTreeMap::<String, usize>::new();
        for h in handles {
            let answer = h.join().unwrap_or_else(|_| "panicked".to_owned());
            *answers.entry(answer).or_default() += 1;
        }
        let ok = answers.len() == 1 && answers.contains_key("404");
        all_ok &= ok;
        lines.push(format!(
            "replica {}: {BURST} GETs of unknown ids answered {:?}{}",
            replica.index,
            answers,
            if ok { "" } else { " (expected all 404)" }
        ));
    }
    (lines, all_ok)
}

/// The replicas' counts of entries served past their TTL (`GET /cache/stats`).
pub fn aging(cluster: &Cluster) -> Aging {
    let mut aging = Aging::default();
    for replica in &cluster.replicas {
        let counters = get_status(replica.port, "/cache/stats")
            .filter(|(status, _)| *status == 200)
            .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok());
        let count = |json: &serde_json::Value, field: &str| json["app_stats"][field].as_u64();
        match counters.as_ref().and_then(|json| {
            Some((
                count(json, "stale_served")?,
                count(json, "stale_if_error_served")?,
            ))
        }) {
            Some((stale, if_error)) => {
                aging.stale_served += stale;
                aging.stale_if_error_served += if_error;
            }
            None => aging.unread += 1,
        }
    }
    aging
}
