use super::*;
use crate::history::{Effect, Outcome, build::*};

const BOUND: u64 = 1_000_000;

fn kinds(history: &[Op]) -> Vec<ViolationKind> {
    check(history, BOUND)
        .violations
        .iter()
        .map(|v| v.kind)
        .collect()
}

#[test]
fn a_valid_history_passes() {
    let h = vec![
        write(1, 0, 0, 0, 5),
        read(1, 0, 0, 6, 7),
        write(1, 1, 1, 10, 20),
        // Concurrent with the write: either value is fine.
        read(1, 0, 0, 12, 14),
        read(1, 1, 1, 15, 16),
        // Another replica within the coherence bound may still answer 0.
        read(1, 0, 0, 500, 501),
        read(1, 1, 1, 21, 22),
        read(1, 0, 1, 1100, 1101),
    ];
    let checked = check(&h, BOUND);
    assert_eq!(checked.reads_checked, 6);
    assert!(checked.violations.is_empty(), "{:?}", checked.violations);
}

#[test]
fn a_stale_read_on_the_replica_that_acknowledged_the_write_is_caught() {
    let h = vec![
        write(1, 0, 0, 0, 5),
        write(1, 1, 1, 10, 20),
        read(1, 1, 0, 21, 22),
    ];
    let checked = check(&h, BOUND);
    assert_eq!(kinds(&h), [ViolationKind::StaleSameReplica]);
    assert_eq!(checked.violations[0].newer_write, Some(1));
    assert_eq!(checked.violations[0].read, 2);
    assert_eq!(checked.violations[0].missed_by_ms, Some(1.0));
}

#[test]
fn a_stale_read_elsewhere_counts_only_past_the_coherence_bound() {
    let h = vec![
        write(2, 0, 0, 0, 5),
        write(2, 1, 1, 10, 20),
        read(2, 0, 0, 1019, 1030),
        read(2, 0, 0, 1021, 1030),
    ];
    let checked = check(&h, BOUND);
    assert_eq!(checked.violations.len(), 1);
    assert_eq!(checked.violations[0].kind, ViolationKind::StaleCrossReplica);
    assert_eq!(checked.violations[0].read, 3);
}

#[test]
fn indeterminate_writes_are_never_required_but_may_be_seen() {
    let h = vec![
        write(1, 0, 0, 0, 5),
        with(write(1, 0, 1, 10, 20), Outcome::Abandoned),
        with(write(1, 1, 2, 5000, 5010), Outcome::Status { code: 503 }),
        with(
            write(1, 1, 3, 9000, 9010),
            Outcome::Io {
                error: "reset".into(),
            },
        ),
        read(1, 0, 0, 9500, 9501),
        read(1, 1, 2, 9502, 9503),
        read(1, 0, 1, 9504, 9505),
    ];
    assert!(kinds(&h).is_empty(), "{:?}", kinds(&h));
}

#[test]
fn a_write_of_unknown_outcome_binds_other_replicas_once_a_read_saw_it() {
    let base = || {
        vec![
            write(1, 0, 0, 0, 5),
            with(write(1, 0, 1, 10, 20), Outcome::Abandoned),
            // Seen at 100 ms: it committed.
            read(1, 0, 1, 90, 100),
        ]
    };
    // Within the bound of that sighting, the older value may still be served elsewhere.
    let mut h = base();
    h.push(read(1, 1, 0, 1050, 1051));
    assert!(kinds(&h).is_empty(), "{:?}", kinds(&h));
    // Past it, not.
    let mut h = base();
    h.push(read(1, 1, 0, 1150, 1151));
    assert_eq!(kinds(&h), [ViolationKind::StaleCrossReplica]);
    // Never seen: never required.
    let h = vec![
        write(1, 0, 0, 0, 5),
        with(write(1, 0, 1, 10, 20), Outcome::Abandoned),
        read(1, 1, 0, 5000, 5001),
    ];
    assert!(kinds(&h).is_empty(), "{:?}", kinds(&h));
}

#[test]
fn values_that_were_never_written_are_caught() {
    let mut foreign = read(1, 0, 0, 30, 31);
    foreign.seq = None;
    foreign.raw = Some("Wireless Mouse".into());
    let mut other_product = read(1, 0, 0, 32, 33);
    other_product.seq = None;
    other_product.raw = Some("chaos:2:0".into());
    let h = vec![
        write(1, 0, 0, 0, 5),
        write(1, 0, 1, 10, 20),
        // seq 2 was not invoked before this read completed.
        read(1, 0, 2, 21, 22),
        foreign,
        other_product,
        write(1, 0, 2, 40, 50),
        // Invoked, not yet acknowledged: may be seen.
        read(1, 1, 2, 41, 42),
    ];
    assert_eq!(kinds(&h), [ViolationKind::NeverWritten; 3]);
}

#[test]
fn a_404_for_an_existing_product_is_caught() {
    let h = vec![
        write(1, 0, 0, 0, 5),
        not_found(1, 1, 6, 7),
        read(1, 0, 0, 8, 9),
    ];
    assert_eq!(kinds(&h), [ViolationKind::Missing]);
}

#[test]
fn failed_and_abandoned_reads_are_not_checked() {
    let h = vec![
        write(1, 0, 0, 0, 5),
        write(1, 0, 1, 10, 20),
        with(read(1, 0, 0, 30, 31), Outcome::Status { code: 503 }),
        with(read(1, 0, 0, 30, 31), Outcome::Abandoned),
    ];
    let checked = check(&h, BOUND);
    assert_eq!(checked.reads_checked, 0);
    assert!(checked.violations.is_empty());
}

#[test]
fn products_are_checked_separately() {
    let h = vec![
        write(1, 0, 5, 0, 5),
        write(2, 0, 0, 0, 5),
        read(2, 0, 0, 30, 31),
    ];
    assert!(kinds(&h).is_empty());
}

#[test]
fn the_final_value_is_the_latest_acknowledged_or_a_later_indeterminate_one() {
    let h = vec![
        write(1, 0, 0, 0, 5),
        with(write(1, 0, 1, 10, 20), Outcome::Abandoned),
        write(1, 0, 2, 5000, 5010),
        with(write(1, 0, 3, 6000, 6010), Outcome::Status { code: 500 }),
    ];
    assert!(final_value_ok(&h, 1, 2));
    assert!(final_value_ok(&h, 1, 3));
    assert!(!final_value_ok(&h, 1, 1), "older indeterminate write");
    assert!(!final_value_ok(&h, 1, 0));
    assert!(!final_value_ok(&h, 1, 4));
    assert_eq!(latest_acked(&h, 1), Some(2));
}

#[test]
fn the_interleaving_holds_the_read_the_write_and_overlapping_faults() {
    let h = vec![
        write(1, 0, 0, 0, 5),
        write(1, 1, 1, 10, 20),
        read(1, 1, 0, 21, 22),
        read(2, 1, 0, 21, 22),
        read(1, 0, 1, 9000, 9001),
    ];
    let faults = vec![
        FaultWindow {
            kind: "redis-pause".into(),
            detail: String::new(),
            start_us: 0,
            end_us: 15_000,
        },
        FaultWindow {
            kind: "flushall".into(),
            detail: String::new(),
            start_us: 8_000_000,
            end_us: 9_000_000,
        },
    ];
    let checked = check(&h, BOUND);
    let (ops, omitted, windows) = interleaving(&h, &faults, &checked.violations[0], 2_000_000, 10);
    assert_eq!(ops, [&h[0], &h[1], &h[2]]);
    assert_eq!(omitted, 0);
    assert_eq!(windows, [&faults[0]]);
    let (ops, omitted, _) = interleaving(&h, &faults, &checked.violations[0], 2_000_000, 2);
    assert_eq!(ops.len(), 2);
    assert_eq!(omitted, 1);
}

/// Product 20 is created (token `chaos:new:7`) on replica 0, renamed, deleted on
/// replica 1.
fn lifecycle() -> Vec<Op> {
    vec![
        effect(
            Op {
                raw: Some("chaos:new:7".into()),
                ..write(20, 0, 1, 10, 20)
            },
            Effect::Create,
        ),
        write(20, 0, 2, 30, 40),
        effect(write(20, 1, 3, 50, 60), Effect::Delete),
    ]
}

#[test]
fn creations_and_deletes_explain_404s_and_stale_reads_around_them_are_caught() {
    let mut h = lifecycle();
    h.extend([
        // Before the creation was acknowledged, absent or created are both right.
        not_found(20, 1, 5, 8),
        read_raw(20, 1, "chaos:new:7", 15, 25),
        // After the delete: absent; on another replica within the bound, the rename too.
        not_found(20, 1, 61, 62),
        read(20, 0, 2, 61, 62),
    ]);
    let checked = check(&h, BOUND);
    assert!(checked.violations.is_empty(), "{:?}", checked.violations);
    assert_eq!(checked.reads_checked, 4);

    let bad = |read: Op| {
        let mut h = lifecycle();
        h.push(read);
        kinds(&h)
    };
    // The deleted product served by the replica that deleted it.
    assert_eq!(
        bad(read(20, 1, 2, 61, 62)),
        [ViolationKind::StaleSameReplica]
    );
    // ... or by another, past the bound.
    assert_eq!(
        bad(read(20, 0, 2, 1061, 1062)),
        [ViolationKind::StaleCrossReplica]
    );
    // A 404 after the creation was acknowledged, before any delete: a kept negative entry.
    assert_eq!(bad(not_found(20, 0, 21, 22)), [ViolationKind::Missing]);
    let mut undeleted = lifecycle();
    undeleted.pop();
    undeleted.push(not_found(20, 1, 1030, 1031));
    assert_eq!(kinds(&undeleted), [ViolationKind::Missing]);
    // Once the delete was invoked, a 404 is right anywhere.
    assert!(bad(not_found(20, 1, 1030, 1031)).is_empty());
    // The creation's value under another id, or before the creation was invoked.
    assert_eq!(
        bad(read_raw(21, 0, "chaos:new:7", 25, 26)),
        [ViolationKind::NeverWritten]
    );
    assert_eq!(
        bad(read_raw(20, 0, "chaos:new:7", 2, 5)),
        [ViolationKind::NeverWritten]
    );
    assert_eq!(
        bad(read_raw(20, 0, "chaos:new:8", 25, 26)),
        [ViolationKind::NeverWritten]
    );
}

#[test]
fn a_seeded_product_is_never_absent_and_a_lost_creation_may_be_seen() {
    // Seeded (seq 0): a 404 is wrong even before anything else was written.
    let h = vec![write(1, 0, 0, 0, 5), not_found(1, 1, 6, 7)];
    assert_eq!(kinds(&h), [ViolationKind::Missing]);
    // A creation whose answer was lost (id unknown, recorded as 0) may show up under an
    // id readers try.
    let lost = effect(
        with(
            Op {
                raw: Some("chaos:new:9".into()),
                ..write(0, 0, 1, 10, 20)
            },
            Outcome::Abandoned,
        ),
        Effect::Create,
    );
    let h = vec![lost.clone(), read_raw(30, 1, "chaos:new:9", 15, 16)];
    assert!(kinds(&h).is_empty());
    let h = vec![lost, read_raw(30, 1, "chaos:new:9", 5, 9)];
    assert_eq!(kinds(&h), [ViolationKind::NeverWritten]);
}
