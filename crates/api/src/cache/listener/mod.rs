//! Keeps L1 in step with other replicas through Redis pub/sub.
//!
//! While subscribed, every announced id is dropped from L1. When the subscription is
//! lost (connection closed, or the server stops answering pings) messages may have been
//! missed, so L1 is flushed and bypassed until the subscription is back.
//!
//! One Redis: one channel on one connection. A cluster: one sharded channel per bucket,
//! subscribed on the master that owns its slot (`cluster`).

use std::time::{Duration, Instant};

use futures::{FutureExt as _, StreamExt};

use super::redis_tier::{Backend, RedisTier, admin::eviction_policy_supported};

mod cluster;

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

/// Runs for the life of the app.
pub async fn listen_for_invalidations(redis: RedisTier, target: impl InvalidationTarget) {
    match redis.backend().clone() {
        Backend::Single(single) => listen_single(redis, single.client().clone(), target).await,
        Backend::Cluster(cluster) => cluster::listen(redis, cluster, target).await,
    }
}

async fn listen_single(redis: RedisTier, client: redis::Client, target: impl InvalidationTarget) {
    let channel = redis.keys().invalidation_channel(0);
    let mut backoff = Duration::from_millis(100);
    loop {
        let sent_at = Instant::now();
        let subscribed = async {
            let pubsub = tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub())
                .await
                .ok()?
                .ok()?;
            let (mut sink, stream) = pubsub.split();
            tokio::time::timeout(CONNECT_TIMEOUT, sink.subscribe(&channel))
                .await
                .ok()?
                .ok()?;
            Some((sink, stream))
        }
        .await;

        if let Some((mut sink, mut stream)) = subscribed {
            target.subscribed();
            target.vouched(sent_at);
            backoff = Duration::from_millis(100);
            tracing::info!(%channel, "subscribed to cache invalidations; L1 in use");
            // Beside the messages, not before them: it waits on the data connection.
            let for_warning = redis.clone();
            tokio::spawn(async move { warn_about_eviction_policy(&for_warning).await });
            let mut ticks = tokio::time::interval(PING_INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            'session: loop {
                tokio::select! {
                    message = stream.next() => match message {
                        Some(message) => apply_message(&target, &message).await,
                        None => break,
                    },
                    _ = ticks.tick() => {
                        let sent_at = Instant::now();
                        // In subscribed mode Redis answers PING with an array, not "PONG".
                        let pong = tokio::time::timeout(CONNECT_TIMEOUT, sink.ping::<redis::Value>()).await;
                        if !matches!(pong, Ok(Ok(_))) {
                            break;
                        }
                        // Every message published before the ping arrived before its reply:
                        // apply those still queued, then L1 is vouched for.
                        while let Some(message) = stream.next().now_or_never() {
                            match message {
                                Some(message) => apply_message(&target, &message).await,
                                None => break 'session,
                            }
                        }
                        target.vouched(sent_at);
                    }
                }
            }
            redis.withdraw_trust();
            target.lost();
            tracing::warn!(
                "cache invalidation channel lost; L1 flushed and bypassed until it is back"
            );
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
