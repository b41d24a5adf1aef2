//! The matrix's rows: each mechanism the API can switch off (its `mutations` feature),
//! the faults meant to expose it, and what counts as catching it.

/// A mechanism switched off, the faults that should expose it, and whether the checker
/// is expected to: each a mutation of the API's `mutations` feature
/// (`crates/api/src/mutation.rs`; the API refuses unknown names).
pub(super) struct Mutation {
    pub(super) name: &'static str,
    /// `--faults` for its run (empty: the whole deck).
    pub(super) faults: &'static [&'static str],
    /// A tighter `--coherence-bound-ms` than the default, where the mechanism promises
    /// more than the 1 s bound (the unmutated build is checked to keep it: see
    /// docs/testing.md).
    pub(super) coherence_bound_ms: Option<u64>,
    /// More readers than the default 8, where the race the mechanism closes needs
    /// concurrent misses (a CI run of the fill check's mutation with 8 caught nothing).
    pub(super) readers: Option<usize>,
    /// More readers of the cold products than the default 4, where the mechanism is
    /// seen only when an entry past its TTL is read during a fault.
    pub(super) cold_readers: Option<usize>,
    /// A longer run than `--duration`, where what exposes the mechanism is rare.
    pub(super) duration_s: Option<u64>,
    /// Which failure counts as catching it: only what the removed mechanism lets
    /// through, so that an unrelated failure (convergence, availability) cannot pass for
    /// a catch and hide a gap.
    pub(super) caught_by: CaughtBy,
}

/// What a mutation breaks that a check sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CaughtBy {
    /// The checker's consistency violations: stale reads, a seeded product answered
    /// 404, ...
    Violations,
    /// The checker's cache share under its floor: consistent, but the cache silently off.
    CacheShare,
    /// Not the checker (`why_not_the_checker`): the ordinary integration test `test` of
    /// the API (`crates/api/tests/api`, by its path there), which fails with the mutation.
    Test {
        test: &'static str,
        /// Text its failure must show: the assertion that sees the mechanism missing (a
        /// failure of another step, say a setup's, is not a catch).
        expect: &'static str,
        why_not_the_checker: &'static str,
    },
}

impl CaughtBy {
    /// Why a checker run with `violations` and `cache_share` catches the mutation, if it
    /// does (never for a test's row: the checker does not answer for it).
    pub(super) fn judge(self, violations: usize, cache_share: f64) -> Option<String> {
        match self {
            CaughtBy::Test { .. } => None,
            CaughtBy::Violations => {
                (violations > 0).then(|| format!("{violations} consistency violations"))
            }
            CaughtBy::CacheShare => (cache_share < crate::verdict::MIN_CACHE_SHARE).then(|| {
                format!(
                    "only {:.1} % of reads were answered by a cache",
                    cache_share * 100.0
                )
            }),
        }
    }
}

/// What a row leaves unsaid: every fault kind, the default bounds, readers and duration.
const PLAIN: Mutation = Mutation {
    name: "",
    faults: &[],
    coherence_bound_ms: None,
    readers: None,
    cold_readers: None,
    duration_s: None,
    caught_by: CaughtBy::Violations,
};

pub(super) const MUTATIONS: [Mutation; 11] = [
    Mutation {
        name: "no-l1-epoch-check",
        readers: Some(12),
        // The race it lets through (a Redis answer read before a write's invalidation,
        // put into L1 after it) is met a few to a few hundred times in 30 s: a CI run on
        // 2026-12-07 met it on neither of two 30 s seeds (195475962, 195475963; the first
        // caught 22 when rerun alone). Twice the time, twice the chances.
        duration_s: Some(60),
        caught_by: CaughtBy::Violations,
        ..PLAIN
    },
    Mutation {
        name: "nothing-pending",
        // Invalidations that never run (a partition) or wait while reads go on (a
        // write pause): other replicas must bypass Redis for the ids owed.
        faults: &["redis-client-pause-write", "redis-partition"],
        // With pending ids, another replica bypasses its caches for an owed id within a
        // poll (250 ms), and L1 is used at most 750 ms after the listener's last answered
        // ping; without them, the id is served stale until the relay's 1 s grace has
        // passed, which lands either side of a 1 s bound (seen: caught in 2 of 3 seeds).
        coherence_bound_ms: Some(850),
        caught_by: CaughtBy::Violations,
        ..PLAIN
    },
    Mutation {
        name: "outbox-never-deleted",
        caught_by: CaughtBy::CacheShare,
        ..PLAIN
    },
    Mutation {
        // Not a feature switch: `UNSAFE_SKIP_FILL_CHECK`, both checks of the fill script.
        name: "skip-fill-check",
        readers: Some(12),
        caught_by: CaughtBy::Violations,
        ..PLAIN
    },
    Mutation {
        name: "no-invalidate-on-delete",
        caught_by: CaughtBy::Violations,
        ..PLAIN
    },
    Mutation {
        // Needs entries past their stale-while-revalidate window while PostgreSQL is
        // down: the cold products (issue #22, C3) and faults that stop PostgreSQL.
        name: "sie-answers-absent",
        faults: &["pg-partition", "pg-restart"],
        // Each read that meets PostgreSQL down waits up to its 1 s pool timeout: with 4
        // cold readers a seed caught 1 (seeds 1-3: 6-12).
        cold_readers: Some(12),
        // 0 caught on one 30 s seed (29575296; 108 on the next): twice the time, twice the
        // chances of an aged entry read during a PostgreSQL fault.
        duration_s: Some(60),
        caught_by: CaughtBy::Violations,
        ..PLAIN
    },
    Mutation {
        // Issue #22, C5: without pub/sub, another replica's L1 copy of a written id
        // lives out its TTL (5 s), past the 1 s bound. (With an L1 TTL under the bound
        // nothing would notice: the bound would then rest on the TTL, not on pub/sub.)
        name: "listener-ignores-messages",
        caught_by: CaughtBy::Violations,
        ..PLAIN
    },
    Mutation {
        name: "no-invalidate-on-create",
        caught_by: CaughtBy::Test {
            test: "writes::creating_an_id_remembered_as_absent_makes_it_visible",
            // The created id read back as absent.
            expect: "left: 404",
            why_not_the_checker: "a creation's id is new, and a negative entry is kept only \
             for ids below the highest: one exists for the new id only if a higher id \
             committed first and a read landed in between; the creation's outbox row then \
             makes every replica bypass its caches for the id within a poll (250 ms) and \
             the relay drops the entry. Two concurrent creators, readers of the ids around \
             the highest and slow inserts on one replica did not line that up in 40 s",
        },
        ..PLAIN
    },
    Mutation {
        name: "no-second-l1-drop",
        caught_by: CaughtBy::Test {
            test: "disorder::a_write_is_never_followed_by_an_old_read_on_its_own_replica",
            // The read after the write answered the old name.
            expect: "read after the write returned",
            why_not_the_checker: "the race it closes (a read's epoch taken after the \
             write's first L1 drop, its Redis GET queued before the write's script on the \
             same connection) is a few microseconds wide",
        },
        ..PLAIN
    },
    Mutation {
        name: "lost-does-nothing",
        caught_by: CaughtBy::Test {
            test: "memory_tier::losing_the_invalidation_channel_flushes_and_bypasses_the_memory_tier",
            // L1 still held its entry after the loss was noticed.
            expect: "right: 0",
            why_not_the_checker: "L1's lease (750 ms after the last answered ping) stops \
             L1 anyway, inside the 1 s bound: flushing at once on a lost channel shortens \
             the window from up to 750 ms to none, which a 1 s bound cannot see",
        },
        ..PLAIN
    },
    Mutation {
        name: "no-flight-forget-on-write",
        caught_by: CaughtBy::Test {
            test: "joined_loads::a_read_after_a_write_never_joins_a_load_begun_before_it",
            expect: "a read begun after the write was acknowledged answered",
            why_not_the_checker: "loads are tagged with the Redis generation, which the \
             write bumps, and the write's own announcement forgets its loads a few \
             milliseconds later: only a load begun without Redis, outliving the write, \
             joined in those milliseconds by a read whose Redis lookup also failed while \
             the write's invalidation succeeded, is at risk; overlapping Redis and \
             PostgreSQL latency did not line that up",
        },
        ..PLAIN
    },
];
