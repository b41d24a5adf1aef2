//! What a run records: every client operation and every fault window, on one clock
//! (microseconds since the run started).

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    Read,
    Write,
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outcome {
    /// 200: a write is acknowledged; a read carries its value.
    Ok,
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
}

impl Op {
    pub fn is_ok(&self) -> bool {
        self.outcome == Outcome::Ok
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
