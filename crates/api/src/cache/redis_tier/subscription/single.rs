//! The subscription to one Redis: one channel on one connection of its own, pinged so a
//! frozen server is noticed.

use std::time::{Duration, Instant};

use futures::{FutureExt as _, StreamExt};

use super::{
    CONNECT_TIMEOUT, InvalidationTarget, MAX_BACKOFF, PING_INTERVAL, apply_message,
    warn_about_eviction_policy,
};
use crate::cache::redis_tier::RedisTier;

pub(super) async fn listen(
    redis: RedisTier,
    client: redis::Client,
    target: impl InvalidationTarget,
) {
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
