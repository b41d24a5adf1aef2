//! The writers of created products: each creates one (`POST`), renames it a few times,
//! deletes it, and again, so creations, deletes and the negative entries around them
//! are checked like renames.

use std::time::Duration;

use super::{
    history::Clock,
    history::{Effect, Op, Outcome, creation_value},
    rng::Rng,
    workload::{Progress, Workload},
    writers::{SequentialWriter, outcome_of, timed, write},
};
use cacheme_harness::http::{Conn, Reply};

/// Creates a product (`POST`), renames it a few times, deletes it, and again: every
/// creation and delete must reach every replica's caches (negative entries included)
/// within the same bounds as a rename. After a write of unknown outcome it waits out the
/// quarantine; a creation whose answer was lost is abandoned (its id is unknown).
pub fn writer(
    w: &Workload,
    writer_index: u64,
    rng: &mut Rng,
    clock: Clock,
    progress: &Progress,
) -> Vec<Op> {
    let mut writer = SequentialWriter::new(w, rng, progress);
    // Tokens unique across writers.
    let mut token = writer_index * 1_000_000_000;
    while !writer.stopped() {
        token += 1;
        let created =
            writer.step(|conn, replica, give_up| create(conn, replica, token, give_up, clock));
        let (true, id @ 1..) = (created.is_ok(), created.product) else {
            continue;
        };
        let mut seq = 2;
        for _ in 0..writer.rng.between(1, 3) {
            if writer.stopped() {
                return writer.ops;
            }
            writer.step(|conn, replica, give_up| write(conn, replica, id, seq, give_up, clock));
            seq += 1;
        }
        if writer.stopped() {
            break;
        }
        writer.step(|conn, replica, give_up| delete(conn, replica, id, seq, give_up, clock));
    }
    writer.ops
}

/// `POST /products` named with a token; the op's product is the new id (0 when the
/// answer was lost).
fn create(
    conn: &mut Conn,
    replica: usize,
    token: u64,
    give_up: Option<Duration>,
    clock: Clock,
) -> Op {
    let name = creation_value(token);
    let body = format!(r#"{{"name":"{name}","category":"chaos","price":1}}"#);
    let (reply, span) = timed(conn, clock, "POST", "/products", Some(&body), give_up);
    let id = match &reply {
        Reply::Answer { status: 201, body } => serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["id"].as_u64())
            .and_then(|id| u32::try_from(id).ok()),
        _ => None,
    };
    let mut outcome = outcome_of(reply, 201);
    if outcome == Outcome::Ok && id.is_none() {
        outcome = Outcome::Status { code: 201 }; // created, but no id to follow
    }
    Op {
        raw: Some(name),
        ..Op::write(Effect::Create, id.unwrap_or(0), 1, replica, span, outcome)
    }
}

fn delete(
    conn: &mut Conn,
    replica: usize,
    product: u32,
    seq: u64,
    give_up: Option<Duration>,
    clock: Clock,
) -> Op {
    let path = format!("/products/{product}");
    let (reply, span) = timed(conn, clock, "DELETE", &path, None, give_up);
    Op::write(
        Effect::Delete,
        product,
        seq,
        replica,
        span,
        outcome_of(reply, 204),
    )
}
