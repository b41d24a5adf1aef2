//! Keeps L1 in step with other replicas through Redis pub/sub.
//!
//! While subscribed, every announced id is dropped from L1. When the subscription is
//! lost (connection closed, or the server stops answering pings) messages may have been
//! missed, so L1 is flushed and bypassed until the subscription is back.
//!
//! One Redis: one channel on one connection. A cluster: one sharded channel per bucket,
//! subscribed on the master that owns its slot (`cluster`).

use std::time::{Duration, Instant};

use super::{Backend, RedisTier, admin::eviction_policy_supported};

mod cluster;
mod single;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The subscription is pinged this often: each reply renews L1's lease
/// (`memory::L1_LEASE`), and a frozen server is noticed.
const PING_INTERVAL: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the subscription keeps in step: the owner of L1 and of the loads in flight.
pub trait InvalidationTarget {
    /// The subscription is up: L1 may be trusted again.
    fn subscribed(&self);
    /// Every message published before `sent_at` has been applied.
    fn vouched(&self, sent_at: Instant);
    /// What another replica (or this one) announced: `*` for everything, else one id.
    fn apply(&self, message: &str) -> impl Future<Output = ()> + Send;
    /// The subscription was lost: announcements may have been missed.
    fn lost(&self);
}

/// Says so loudly when Redis may evict the keys that keep fills honest.
async fn warn_about_eviction_policy(redis: &RedisTier) {
    if let Ok(info) = redis.read_info().await
        && let Some(policy) = info.get("maxmemory_policy")
        && !eviction_policy_supported(policy)
    {
        tracing::warn!(
            policy,
            "Redis maxmemory-policy may evict generation counters: a stale row can come back \
             after an eviction; use noeviction or a volatile-* policy"
        );
    }
}

async fn apply_message(target: &impl InvalidationTarget, message: &redis::Msg) {
    match message.get_payload::<String>() {
        Ok(payload) => target.apply(&payload).await,
        Err(e) => tracing::warn!(error = %e, "undecodable invalidation message"),
    }
}

/// Runs for the life of the app: the backend's one choice of how to subscribe.
pub async fn listen_for_invalidations(redis: RedisTier, target: impl InvalidationTarget) {
    match redis.backend().clone() {
        Backend::Single(single) => single::listen(redis, single.client().clone(), target).await,
        Backend::Cluster(cluster) => cluster::listen(redis, cluster, target).await,
    }
}
