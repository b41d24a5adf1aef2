//! The listener in cluster mode: every bucket's sharded channel (`SSUBSCRIBE`), each on
//! the master that owns the bucket's slot, over one RESP3 connection per master (sharded
//! messages then arrive as pushes).
//!
//! The subscription counts as up only while *every* channel is subscribed. It is lost,
//! and L1 flushed and bypassed until all are back, when any master's connection closes,
//! a master tells us it unsubscribed us (`sunsubscribe`: it gave the slot away), or the
//! check every second finds a master that does not answer, is no longer a master, has a
//! bucket's slot migrating (an invalidation may then run on the importing node, whose
//! messages we do not hear), or serves other buckets than when we subscribed.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use redis::{AsyncConnectionConfig, Client, PushInfo, PushKind, Value, aio::MultiplexedConnection};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::{
    CONNECT_TIMEOUT, InvalidationTarget, MAX_BACKOFF, PING_INTERVAL, warn_about_eviction_policy,
};
use futures::FutureExt as _;
use futures::future::FusedFuture as _;

use crate::cache::keys::{BUCKETS, bucket_slot};
use crate::cache::redis_tier::{
    RedisTier,
    cluster::{Cluster, ClusterState, NodeAddress, SlotRange, Topology, fetch_slots},
};

/// Connections to every master, each subscribed to the channels of the buckets it owns.
struct Session {
    masters: Vec<(NodeAddress, MultiplexedConnection)>,
    pushes: UnboundedReceiver<PushInfo>,
    /// The slot map the subscriptions follow.
    topology: Arc<Topology>,
    /// When the check that accepted the subscriptions began.
    checked_at: Instant,
}

pub(super) async fn listen(redis: RedisTier, cluster: Cluster, target: impl InvalidationTarget) {
    let state = Arc::clone(cluster.state());
    let mut backoff = Duration::from_millis(100);
    loop {
        match subscribe_all(&redis, &cluster).await {
            Ok(session) => {
                target.subscribed();
                target.vouched(session.checked_at);
                backoff = Duration::from_millis(100);
                tracing::info!(
                    masters = session.masters.len(),
                    "subscribed to every bucket's sharded invalidation channel; L1 in use"
                );
                // Beside the messages, not before them: it reads INFO of every master.
                let for_warning = redis.clone();
                tokio::spawn(async move { warn_about_eviction_policy(&for_warning).await });
                let reason = session.run(Arc::clone(&state), &target).await;
                redis.withdraw_trust();
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
async fn subscribe_all(redis: &RedisTier, cluster: &Cluster) -> Result<Session, String> {
    let state = cluster.state();
    let mut conn = cluster.connection();
    let seed = cluster.seeds().first().ok_or("no seed node")?;
    let ranges = tokio::time::timeout(CONNECT_TIMEOUT, fetch_slots(&mut conn))
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
    // Not trusted while a bucket's slot migrates, or if the map moved meanwhile.
    let checked_at = Instant::now();
    if let Some(reason) = check(masters.clone(), Arc::clone(&topology), Arc::clone(state)).await {
        return Err(reason);
    }
    Ok(Session {
        masters,
        pushes,
        topology,
        checked_at,
    })
}

/// Applies one push; returns why the subscriptions can no longer be trusted, if so.
async fn handle(push: PushInfo, target: &impl InvalidationTarget) -> Option<String> {
    match push.kind {
        PushKind::SMessage => match payload(&push) {
            Some(message) => target.apply(&message).await,
            None => tracing::warn!("undecodable invalidation message"),
        },
        PushKind::SUnsubscribe => {
            return Some("a master unsubscribed us from a channel (its slot moved)".into());
        }
        PushKind::Disconnection => return Some("a master's connection closed".into()),
        _ => {}
    }
    None
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
    /// Applies messages until the subscription is lost; returns why. The checks run
    /// beside the messages, so a slow master never holds back the others' messages.
    async fn run(self, state: Arc<ClusterState>, target: &impl InvalidationTarget) -> String {
        let Session {
            masters,
            mut pushes,
            topology,
            checked_at: _,
        } = self;
        let mut check_started = Instant::now();
        let mut ticks = tokio::time::interval(PING_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        let checking = futures::future::Fuse::terminated();
        tokio::pin!(checking);
        loop {
            tokio::select! {
                push = pushes.recv() => match push {
                    None => return "every connection closed".into(),
                    Some(push) => {
                        if let Some(reason) = handle(push, target).await {
                            return reason;
                        }
                    }
                },
                outcome = &mut checking, if !checking.is_terminated() => {
                    if let Some(reason) = outcome {
                        return reason;
                    }
                    // Each master's reply followed every message it published before the
                    // check: apply those still queued, then L1 is vouched for.
                    while let Ok(push) = pushes.try_recv() {
                        if let Some(reason) = handle(push, target).await {
                            return reason;
                        }
                    }
                    target.vouched(check_started);
                }
                _ = ticks.tick(), if checking.is_terminated() => {
                    check_started = Instant::now();
                    checking.set(
                        check(masters.clone(), Arc::clone(&topology), Arc::clone(&state)).fuse(),
                    );
                }
            }
        }
    }
}

/// Asks every master, over the listener's own connections, what it serves (`CLUSTER
/// NODES`, its own line): why the subscriptions can no longer be trusted, if they
/// cannot. A master that does not answer, is no longer a master, has a bucket's slot
/// migrating or importing (an invalidation may then run on the other node, whose
/// sharded messages we do not receive), or serves other buckets than when we subscribed.
/// Refreshes the shared topology (breakers, replicas) on the way.
async fn check(
    masters: Vec<(NodeAddress, MultiplexedConnection)>,
    subscribed: Arc<Topology>,
    state: Arc<ClusterState>,
) -> Option<String> {
    let reports = masters.into_iter().map(|(node, mut conn)| async move {
        let text = tokio::time::timeout(
            CONNECT_TIMEOUT,
            redis::cmd("CLUSTER")
                .arg("NODES")
                .query_async::<String>(&mut conn),
        )
        .await;
        match text {
            Ok(Ok(text)) => Ok((node, text)),
            _ => Err(format!("master {node} stopped answering")),
        }
    });
    let mut ranges = Vec::new();
    for report in futures::future::join_all(reports).await {
        let (node, text) = match report {
            Ok(report) => report,
            Err(reason) => return Some(reason),
        };
        let Some(myself) = parse_myself(&text) else {
            return Some(format!("unexpected CLUSTER NODES from {node}"));
        };
        if !myself.master {
            return Some(format!("{node} is no longer a master"));
        }
        if let Some(slot) = myself
            .moving
            .iter()
            .find(|slot| (0..BUCKETS).any(|b| bucket_slot(b) == **slot))
        {
            return Some(format!(
                "slot {slot} of a bucket is migrating to or from {node}"
            ));
        }
        ranges.extend(myself.ranges.iter().map(|&(start, end)| SlotRange {
            start,
            end,
            master: node.clone(),
            replicas: myself.replicas,
        }));
    }
    state.install(&ranges);
    let now = state.topology();
    (0..BUCKETS)
        .any(|bucket| now.owner(bucket) != subscribed.owner(bucket))
        .then(|| "the slot map changed".into())
}

/// What a node says of itself in `CLUSTER NODES`.
#[derive(Debug, PartialEq, Eq)]
struct Myself {
    master: bool,
    ranges: Vec<(u16, u16)>,
    /// Slots it is migrating away or importing (`[slot->-id]`, `[slot-<-id]`).
    moving: Vec<u16>,
    /// Replicas that follow it, are not failed and have their link up.
    replicas: usize,
}

/// Parses the `myself` line of `CLUSTER NODES` (and counts its healthy replicas). Pure.
fn parse_myself(text: &str) -> Option<Myself> {
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let mine = lines
        .iter()
        .find(|f| f.len() >= 8 && f[2].split(',').any(|flag| flag == "myself"))?;
    let id = mine[0];
    let flags: Vec<&str> = mine[2].split(',').collect();
    let mut ranges = Vec::new();
    let mut moving = Vec::new();
    for token in &mine[8..] {
        if let Some(inner) = token.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            let slot = inner.split(['-', '>', '<']).next()?.parse().ok()?;
            moving.push(slot);
        } else if let Some((a, b)) = token.split_once('-') {
            ranges.push((a.parse().ok()?, b.parse().ok()?));
        } else {
            let slot = token.parse().ok()?;
            ranges.push((slot, slot));
        }
    }
    let replicas = lines
        .iter()
        .filter(|f| {
            f.len() >= 8
                && f[3] == id
                && f[7] == "connected"
                && f[2].split(',').any(|flag| flag == "slave")
                && !f[2].contains("fail")
        })
        .count();
    Some(Myself {
        master: flags.contains(&"master"),
        ranges,
        moving,
        replicas,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@40002 master - 0 1426238316232 2 connected 5461-10922
292f 127.0.0.1:30003@40003 master - 0 1426238318243 3 connected 10923-16383
6ec2 127.0.0.1:30005@40005 slave,fail 67ed 1426238316232 1426238316232 5 disconnected
824f 127.0.0.1:30006@40006 slave 292f 0 1426238317741 6 connected
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460 7000 [5461->-67ed] [93-<-292f]
9fa2 127.0.0.1:30007@40007 slave e7d1 0 1426238317741 6 disconnected
";

    #[test]
    fn a_master_reports_its_slots_moves_and_healthy_replicas() {
        let me = parse_myself(NODES).expect("parses");
        assert!(me.master);
        assert_eq!(me.ranges, vec![(0, 5460), (7000, 7000)]);
        assert_eq!(me.moving, vec![5461, 93]);
        // 07c3 follows it and is connected; 9fa2 follows it but its link is down.
        assert_eq!(me.replicas, 1);
        let demoted = NODES.replace("myself,master", "myself,slave");
        assert!(!parse_myself(&demoted).expect("parses").master);
        assert!(parse_myself("garbage").is_none());
    }
}
