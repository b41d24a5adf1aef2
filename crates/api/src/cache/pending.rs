//! Product ids whose invalidation may not have reached Redis yet: reads of them bypass
//! both cache tiers.
//!
//! The set mirrors the outbox table (so every replica learns of every pending id, not
//! only the writer), plus ids this process marked itself since its last look at the
//! table. Pure bookkeeping, so it is tested without a database.

use std::collections::HashMap;

/// Marks of ids that came from the table; local marks carry the round they were made in.
const FROM_TABLE: u64 = 0;

#[derive(Debug)]
pub struct PendingSet {
    /// id → the round it was marked locally in, or [`FROM_TABLE`].
    ids: HashMap<i32, u64>,
    /// Starts above [`FROM_TABLE`].
    round: u64,
    /// The table has been read once: until then any id may be owed (a replica that
    /// starts while the outbox cannot be read must not trust what Redis holds).
    known: bool,
}

impl Default for PendingSet {
    fn default() -> Self {
        Self {
            ids: HashMap::new(),
            round: FROM_TABLE + 1,
            known: false,
        }
    }
}

impl PendingSet {
    /// Whether reads of `id` must bypass the caches: it is owed, or nothing is known yet.
    pub fn contains(&self, id: i32) -> bool {
        !self.known || self.ids.contains_key(&id)
    }

    /// Whether the table has been read at least once.
    pub fn is_known(&self) -> bool {
        self.known
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Marks `id` (its invalidation failed here). Returns whether it is new.
    pub fn mark(&mut self, id: i32) -> bool {
        self.ids.insert(id, self.round).is_none()
    }

    /// The last read of the table is too old to vouch for what is owed now (the poll is
    /// failing or slow): until the next read, every id counts as owed, as at start.
    pub fn expire(&mut self) {
        self.known = false;
    }

    /// Called before reading the table; pass the result to [`PendingSet::replace`].
    pub fn begin_round(&mut self) -> u64 {
        self.round += 1;
        self.round
    }

    /// The table as read in `round`: keeps what it holds and what was marked locally
    /// while it was being read (those rows may have committed after the read began), drops
    /// the rest. Returns the ids that became pending.
    pub fn replace(&mut self, round: u64, table: impl IntoIterator<Item = i32>) -> Vec<i32> {
        let table: std::collections::HashSet<i32> = table.into_iter().collect();
        self.known = true;
        self.ids
            .retain(|id, mark| table.contains(id) || (*mark != FROM_TABLE && *mark >= round));
        let mut added = Vec::new();
        for id in table {
            if self.ids.insert(id, FROM_TABLE).is_none() {
                added.push(id);
            }
        }
        added.sort_unstable();
        added
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_is_pending_until_the_table_was_read_once() {
        let mut set = PendingSet::default();
        assert!(set.contains(42) && !set.is_known());
        let round = set.begin_round();
        set.replace(round, [7]);
        assert!(set.is_known() && !set.contains(42) && set.contains(7));
    }

    #[test]
    fn an_expired_read_vouches_for_nothing_until_the_next() {
        let mut set = PendingSet::default();
        let round = set.begin_round();
        set.replace(round, [7]);
        set.expire();
        assert!(!set.is_known() && set.contains(42) && set.contains(7));
        let round = set.begin_round();
        set.replace(round, []);
        assert!(set.is_known() && !set.contains(42) && !set.contains(7));
    }

    #[test]
    fn the_table_decides_except_for_marks_made_while_it_was_read() {
        let mut set = PendingSet::default();
        let round = set.begin_round();
        set.replace(round, []);
        assert!(set.mark(1));
        assert!(!set.mark(1));
        let round = set.begin_round();
        assert!(set.mark(2), "marked while the table is being read");
        let added = set.replace(round, [3, 1]);
        assert_eq!(added, vec![3]);
        assert!(set.contains(1) && set.contains(2) && set.contains(3));

        let round = set.begin_round();
        let added = set.replace(round, []);
        assert!(added.is_empty());
        assert_eq!(
            set.len(),
            0,
            "rows gone from the table and older marks are dropped"
        );
    }

    #[test]
    fn a_mark_made_before_the_round_needs_its_row() {
        let mut set = PendingSet::default();
        let round = set.begin_round();
        set.replace(round, []);
        set.mark(7);
        let round = set.begin_round();
        set.replace(round, [7]);
        assert!(set.contains(7), "its row is still there");
        let round = set.begin_round();
        set.replace(round, []);
        assert!(!set.contains(7), "its row was relayed");
        assert_eq!(set.len(), 0);
    }
}
