//! What a run records: every client operation and every fault window, on one clock
//! (microseconds since the run started).

use std::time::Instant;

use serde::Serialize;

/// The run's clock: microseconds since it started, shared by every thread.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    /// A clock that starts now.
    pub fn start() -> Self {
        Self(Instant::now())
    }

    pub fn us(&self) -> u64 {
        self.0.elapsed().as_micros() as u64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    Read,
    Write,
}

/// What a write does to its product.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// `PATCH` (or the first write of a seeded product): the product exists with this
    /// value.
    #[default]
    Set,
    /// `POST`: the product comes into existence (its id known once acknowledged).
    Create,
    /// `DELETE`: the product is gone; a read may answer 404 from here on.
    Delete,
}

impl Effect {
    fn is_set(&self) -> bool {
        *self == Effect::Set
    }
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outcome {
    /// 200 (201, 204 for a create, a delete): a write is acknowledged; a read carries
    /// its value.
    Ok,
    /// A read answered 404: the product does not exist, as far as that replica knows.
    NotFound,
    /// Any other HTTP status.
    Status { code: u16 },
    /// The client closed the socket before reading the answer, on purpose.
    Abandoned,
    /// Connect, send or receive failed (a timeout included).
    Io { error: String },
}

/// One client operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Op {
    pub kind: OpKind,
    pub product: u32,
    pub replica: usize,
    pub invoke_us: u64,
    pub complete_us: u64,
    pub outcome: Outcome,
    /// The seq a write wrote, or the seq parsed from a read's `name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// A read's raw `name`, kept when it does not parse as `chaos:{id}:{seq}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_tier: Option<&'static str>,
    #[serde(skip_serializing_if = "Effect::is_set")]
    pub effect: Effect,
}

impl Op {
    /// A write sent to `replica` between `invoke_us` and `complete_us`.
    pub fn write(
        effect: Effect,
        product: u32,
        seq: u64,
        replica: usize,
        (invoke_us, complete_us): (u64, u64),
        outcome: Outcome,
    ) -> Self {
        Self {
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
            effect,
        }
    }

    pub fn is_ok(&self) -> bool {
        self.outcome == Outcome::Ok
    }

    /// Answered as a healthy service answers: 200, or 404 for a read.
    pub fn answered(&self) -> bool {
        matches!(self.outcome, Outcome::Ok | Outcome::NotFound)
    }

    /// A write that may or may not have committed.
    pub fn is_indeterminate_write(&self) -> bool {
        self.kind == OpKind::Write && !self.is_ok()
    }

    pub fn latency_ms(&self) -> f64 {
        self.complete_us.saturating_sub(self.invoke_us) as f64 / 1000.0
    }
}

/// A fault, from the moment it was applied to the moment it was healed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultWindow {
    pub kind: String,
    pub detail: String,
    pub start_us: u64,
    pub end_us: u64,
}

impl FaultWindow {
    pub fn contains(&self, t_us: u64) -> bool {
        (self.start_us..=self.end_us).contains(&t_us)
    }

    pub fn overlaps(&self, from_us: u64, to_us: u64) -> bool {
        self.start_us <= to_us && from_us <= self.end_us
    }
}

/// The value a writer puts in `name`.
pub fn value_for(product: u32, seq: u64) -> String {
    format!("chaos:{product}:{seq}")
}

/// The value a `POST` creates with: its id is not known yet, so a token stands for it.
pub fn creation_value(token: u64) -> String {
    format!("{CREATION_PREFIX}{token}")
}

pub const CREATION_PREFIX: &str = "chaos:new:";

/// `chaos:{id}:{seq}` back into its parts.
pub fn parse_value(name: &str) -> Option<(u32, u64)> {
    let rest = name.strip_prefix("chaos:")?;
    let (id, seq) = rest.split_once(':')?;
    Some((id.parse().ok()?, seq.parse().ok()?))
}

/// Test helpers: ops built by hand.
#[cfg(test)]
pub mod build {
    use super::*;

    pub fn write(product: u32, replica: usize, seq: u64, from_ms: u64, to_ms: u64) -> Op {
        Op {
            kind: OpKind::Write,
            product,
            replica,
            invoke_us: from_ms * 1000,
            complete_us: to_ms * 1000,
            outcome: Outcome::Ok,
            seq: Some(seq),
            raw: None,
            source: None,
            cache_tier: None,
            effect: Effect::Set,
        }
    }

    pub fn read(product: u32, replica: usize, seq: u64, from_ms: u64, to_ms: u64) -> Op {
        Op {
            kind: OpKind::Read,
            source: Some("cache"),
            cache_tier: Some("memory"),
            ..write(product, replica, seq, from_ms, to_ms)
        }
    }

    pub fn with(mut op: Op, outcome: Outcome) -> Op {
        op.outcome = outcome;
        op
    }

    /// `op` with this effect (a create or a delete).
    pub fn effect(mut op: Op, effect: Effect) -> Op {
        op.effect = effect;
        op
    }

    /// A read that answered 404.
    pub fn not_found(product: u32, replica: usize, from_ms: u64, to_ms: u64) -> Op {
        Op {
            seq: None,
            source: None,
            cache_tier: None,
            ..with(read(product, replica, 0, from_ms, to_ms), Outcome::NotFound)
        }
    }

    /// A read that answered `raw` (a creation token).
    pub fn read_raw(product: u32, replica: usize, raw: &str, from_ms: u64, to_ms: u64) -> Op {
        Op {
            seq: None,
            raw: Some(raw.to_owned()),
            ..read(product, replica, 0, from_ms, to_ms)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_foreign_names_do_not_parse() {
        assert_eq!(parse_value(&value_for(3, 17)), Some((3, 17)));
        assert_eq!(parse_value("Wireless Mouse"), None);
        assert_eq!(parse_value("chaos:x:1"), None);
        assert_eq!(parse_value("chaos:1:-2"), None);
    }
}
