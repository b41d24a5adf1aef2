//! The listener in cluster mode: every bucket's sharded channel (`SSUBSCRIBE`), each on
//! the master that owns the bucket's slot, over one RESP3 connection per master (sharded
//! messages then arrive as pushes).
//!
//! The subscription counts as up only while *every* channel is subscribed. It is lost,
//! and L1 flushed and bypassed until all are back, when any master's connection closes,
//! a master stops answering pings, a master tells us it unsubscribed us (`sunsubscribe`:
//! it gave the slot away in a resharding or a failover) or the slot map changed, which
//! is checked every second: an invalidation published on a master we do not listen to
//! would otherwise be missed.

use std::{sync::Arc, time::Duration};

use redis::{
    AsyncConnectionConfig, Client, ConnectionInfo, PushInfo, PushKind, Value,
    aio::MultiplexedConnection,
};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::{
    CONNECT_TIMEOUT, InvalidationTarget, MAX_BACKOFF, PING_INTERVAL, warn_about_eviction_policy,
};
use crate::cache::keys::BUCKETS;
use crate::cache::redis_tier::{
    RedisTier,
    cluster::{ClusterState, NodeAddress, RedisConnection, Topology, fetch_slots},
};

/// Connections to every master, each subscribed to the channels of the buckets it owns.
struct Session {
    masters: Vec<(NodeAddress, MultiplexedConnection)>,
    pushes: UnboundedReceiver<PushInfo>,
    /// The slot map the subscriptions follow.
    topology: Arc<Topology>,
}

pub(super) async fn listen(
    redis: RedisTier,
    seeds: Arc<Vec<ConnectionInfo>>,
    state: Arc<ClusterState>,
    target: impl InvalidationTarget,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match subscribe_all(&redis, &seeds, &state).await {
            Ok(session) => {
                target.subscribed();
                backoff = Duration::from_millis(100);
                tracing::info!(
                    masters = session.masters.len(),
                    "subscribed to every bucket's sharded invalidation channel; L1 in use"
                );
                warn_about_eviction_policy(&redis).await;
                let reason = session.run(&redis, &state, &target).await;
                target.lost();
                tracing::warn!(
                    reason,
                    "cache invalidation channels lost; L1 flushed and bypassed until they are back"
                );
            }
            Err(reason) => tracing::debug!(reason, "cannot subscribe to the cluster yet"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Reads the slot map, then subscribes every bucket's channel on its master.
async fn subscribe_all(
    redis: &RedisTier,
    seeds: &[ConnectionInfo],
    state: &ClusterState,
) -> Result<Session, String> {
    let RedisConnection::Cluster(mut cluster) = redis.connection() else {
        return Err("not a cluster connection".into());
    };
    let seed = seeds.first().ok_or("no seed node")?;
    let ranges = tokio::time::timeout(CONNECT_TIMEOUT, fetch_slots(&mut cluster))
        .await
        .map_err(|_| "CLUSTER SLOTS timed out".to_owned())?
        .map_err(|e| format!("CLUSTER SLOTS: {e}"))?;
    state.install(&ranges);
    let topology = state.topology();
    let channels = redis.keys().invalidation_channels();
    let (sender, pushes) = unbounded_channel();
    let mut masters = Vec::with_capacity(topology.masters.len());
    for master in &topology.masters {
        let client = Client::open(master.connection_info(seed)).map_err(|e| e.to_string())?;
        let config = AsyncConnectionConfig::new()
            .set_push_sender(sender.clone())
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(CONNECT_TIMEOUT));
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| format!("{master}: {e}"))?;
        // One command per channel: SSUBSCRIBE may only name channels of one slot.
        for (bucket, (channel, _slot)) in (0u16..).zip(&channels) {
            if topology.owner(bucket) == Some(master) {
                redis::cmd("SSUBSCRIBE")
                    .arg(channel)
                    .exec_async(&mut conn)
                    .await
                    .map_err(|e| format!("{master}: SSUBSCRIBE {channel}: {e}"))?;
            }
        }
        masters.push((master.clone(), conn));
    }
    let unserved = (0..u16::try_from(channels.len()).unwrap_or(u16::MAX))
        .filter(|&bucket| topology.owner(bucket).is_none())
        .count();
    if unserved > 0 {
        return Err(format!("{unserved} buckets are in slots no master serves"));
    }
    Ok(Session {
        masters,
        pushes,
        topology,
    })
}

/// The text of a sharded message's payload (`smessage channel payload`).
fn payload(push: &PushInfo) -> Option<String> {
    match push.data.get(1)? {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}

impl Session {
    /// Applies messages until the subscription is lost; returns why.
    async fn run(
        mut self,
        redis: &RedisTier,
        state: &ClusterState,
        target: &impl InvalidationTarget,
    ) -> String {
        let mut ticks = tokio::time::interval(PING_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            tokio::select! {
                push = self.pushes.recv() => match push {
                    None => return "every connection closed".into(),
                    Some(push) => match push.kind {
                        PushKind::SMessage => match payload(&push) {
                            Some(message) => target.apply(&message).await,
                            None => tracing::warn!("undecodable invalidation message"),
                        },
                        PushKind::SUnsubscribe => {
                            return "a master unsubscribed us from a channel (its slot moved)".into();
                        }
                        PushKind::Disconnection => return "a master's connection closed".into(),
                        _ => {}
                    },
                },
                _ = ticks.tick() => {
                    if let Some(reason) = self.check(redis, state).await {
                        return reason;
                    }
                }
            }
        }
    }

    /// Every master still answers and still owns the buckets it had.
    async fn check(&mut self, redis: &RedisTier, state: &ClusterState) -> Option<String> {
        let pings = self.masters.iter_mut().map(|(node, conn)| async move {
            let pong = tokio::time::timeout(
                CONNECT_TIMEOUT,
                redis::cmd("PING").query_async::<Value>(conn),
            )
            .await;
            (!matches!(pong, Ok(Ok(_)))).then(|| format!("master {node} stopped answering"))
        });
        if let Some(reason) = futures::future::join_all(pings)
            .await
            .into_iter()
            .flatten()
            .next()
        {
            return Some(reason);
        }
        let RedisConnection::Cluster(mut cluster) = redis.connection() else {
            return None;
        };
        // Compared with the map subscribed to, not the shared one: admin calls refresh
        // that too.
        let Ok(Ok(ranges)) = tokio::time::timeout(CONNECT_TIMEOUT, fetch_slots(&mut cluster)).await
        else {
            return None;
        };
        state.install(&ranges);
        let now = state.topology();
        (0..BUCKETS)
            .any(|bucket| now.owner(bucket) != self.topology.owner(bucket))
            .then(|| "the slot map changed".into())
    }
}
