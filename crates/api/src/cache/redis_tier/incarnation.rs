//! Which Redis process this replica has checked the epoch against.
//!
//! A Redis that restarts from its persistence (RDB, AOF with a lost tail), is restored
//! from a backup or fails over to a lagging replica comes back holding entries,
//! generations and the epoch of some moment before writes it then forgot. Nothing in
//! those keys tells; the process does: its `run_id` is new. So the epoch is tied to the
//! process (`VERIFY_INCARNATION_SCRIPT` rotates it when the `run_id` differs from the one
//! it was checked against) and every entry records the epoch it was filled under, which a
//! lookup compares.
//!
//! A replica trusts Redis entries only after it has run that check on the current
//! connection. It stops trusting them whenever a call fails as an outage (a restart
//! always breaks the connection first), when its subscription is lost, and re-checks
//! every [`RECHECK_INTERVAL`] anyway (a restart it did not see break a connection).

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::Duration,
};

use super::{CacheError, RedisTier};
use crate::cache::expiry::random_u64;

/// How often the epoch is checked against the process even when nothing failed.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Per epoch (one, or one per bucket in cluster mode): checked against the process
/// answering now, or not.
#[derive(Debug)]
pub(super) struct Incarnation {
    checked: Box<[AtomicBool]>,
    /// Bumped whenever trust is withdrawn, so a lookup can tell whether that happened
    /// while its reply was in flight (the reply may then come from a new process).
    withdrawals: AtomicU64,
}

impl Incarnation {
    pub(super) fn new(epochs: usize) -> Self {
        Self {
            checked: (0..epochs).map(|_| AtomicBool::new(false)).collect(),
            withdrawals: AtomicU64::new(0),
        }
    }

    /// If epoch `index` is checked: a token for [`Self::still_trusted`].
    pub(super) fn trusted(&self, index: usize) -> Option<u64> {
        let token = self.withdrawals.load(Ordering::SeqCst);
        self.checked
            .get(index)
            .is_some_and(|checked| checked.load(Ordering::SeqCst))
            .then_some(token)
    }

    /// Whether nothing withdrew trust since `token` was taken.
    pub(super) fn still_trusted(&self, token: u64) -> bool {
        self.withdrawals.load(Ordering::SeqCst) == token
    }

    /// A token to take before running the check, for [`Self::checked`].
    pub(super) fn before_check(&self) -> u64 {
        self.withdrawals.load(Ordering::SeqCst)
    }

    /// The check of epoch `index` that began at `token` succeeded; it counts only if
    /// nothing withdrew trust meanwhile.
    pub(super) fn checked(&self, index: usize, token: u64) {
        if let Some(checked) = self.checked.get(index) {
            checked.store(true, Ordering::SeqCst);
            if !self.still_trusted(token) {
                checked.store(false, Ordering::SeqCst);
            }
        }
    }

    /// A connection broke or the subscription was lost: the next answers may come from
    /// another process, so every epoch is checked again before an entry is served.
    pub(super) fn withdraw(&self) {
        self.withdrawals.fetch_add(1, Ordering::SeqCst);
        for checked in &self.checked {
            checked.store(false, Ordering::SeqCst);
        }
    }
}

/// The checks, as the Redis tier runs them.
impl RedisTier {
    /// Stops serving entries until the epoch is checked against the Redis process again
    /// (the subscription was lost: the server may have restarted).
    pub fn withdraw_trust(&self) {
        self.incarnation.withdraw();
    }

    /// Checks `id`'s epoch against the Redis process answering, rotating it if that
    /// process is not the one it was checked against (see `incarnation`).
    /// Returns whether another process than the one recorded answered.
    pub(super) async fn check_incarnation(&self, id: i32) -> Result<bool, CacheError> {
        let token = self.incarnation.before_check();
        let mut conn = self.conn.clone();
        let mut invocation = self.verify_incarnation_script.prepare_invoke();
        invocation
            .key(self.keys.incarnation(id))
            .key(self.keys.epoch(id))
            .arg(random_u64());
        let outcome: i64 = self.guarded(id, invocation.invoke_async(&mut conn)).await?;
        let another_process = outcome == 1;
        if another_process {
            tracing::info!(
                epoch = %self.keys.epoch(id),
                "new Redis process (restart, restore or failover): epoch rotated, entries \
                 filled before it are not served"
            );
        }
        self.incarnation
            .checked(self.backend.epoch_index(id), token);
        Ok(another_process)
    }

    /// Runs for the life of the app: checks every epoch every [`RECHECK_INTERVAL`], so a
    /// restart no call saw fail (an idle connection re-established in between) is noticed
    /// within that interval.
    pub async fn keep_checking_incarnation(self) {
        let mut ticks = tokio::time::interval(RECHECK_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(e) = self.check_every_incarnation().await {
                tracing::debug!(error = %e, "cannot check the Redis process yet");
            }
        }
    }

    /// Checks the epoch against every Redis process (run every [`RECHECK_INTERVAL`]). In
    /// a cluster, one bucket per master stands for its master's buckets: a process seen
    /// new there makes every bucket check its own epoch again before it is served.
    pub async fn check_every_incarnation(&self) -> Result<(), CacheError> {
        let (ids, one_stands_for_many) = self.backend.incarnation_probes();
        let checks = ids.into_iter().map(|id| self.check_incarnation(id));
        let rotated = futures::future::join_all(checks)
            .await
            .into_iter()
            .collect::<Result<Vec<bool>, _>>()?;
        if one_stands_for_many && rotated.contains(&true) {
            self.incarnation.withdraw();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_trusted_until_checked_and_a_withdrawal_undoes_every_check() {
        let incarnation = Incarnation::new(2);
        assert_eq!(incarnation.trusted(0), None);
        let token = incarnation.before_check();
        incarnation.checked(0, token);
        let seen = incarnation.trusted(0).expect("checked");
        assert_eq!(
            incarnation.trusted(1),
            None,
            "each epoch is checked on its own"
        );
        assert!(incarnation.still_trusted(seen));
        incarnation.withdraw();
        assert!(
            !incarnation.still_trusted(seen),
            "a reply in flight is not used"
        );
        assert_eq!(incarnation.trusted(0), None);
        assert_eq!(
            incarnation.trusted(7),
            None,
            "out of range is never trusted"
        );
    }

    #[test]
    fn a_check_overtaken_by_a_withdrawal_does_not_count() {
        let incarnation = Incarnation::new(1);
        let token = incarnation.before_check();
        incarnation.withdraw();
        incarnation.checked(0, token);
        assert_eq!(incarnation.trusted(0), None);
    }
}
