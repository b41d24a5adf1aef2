//! Calls for people rather than requests: clearing, `INFO`, health pings and the view of
//! one entry. Bounded by a longer timeout, never by the breaker.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use redis::AsyncCommands;
use serde::Serialize;
use utoipa::ToSchema;

pub use super::info::{aggregate_info, eviction_policy_supported, parse_info};
use super::{
    ABSENT, CacheError, RedisTier,
    cluster::NodeAddress,
    error::{bounded, within},
};
use crate::cache::{breaker::BreakerState, keys::key_slot};

/// Whether a cluster master answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    Up,
    Down,
}

/// One master of a Redis Cluster, as `/health` and `/cache/stats` report it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct NodeHealth {
    /// `host:port` as the cluster announces it.
    #[schema(example = "10.0.0.7:6379")]
    pub node: String,
    pub status: NodeStatus,
    /// Why it is down, as a kind (`timeout`, `breaker open`, `unreachable`, `server
    /// error`): the answer is public, the cause goes to the log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// This process's breaker for the node.
    pub breaker: BreakerState,
}

/// How long one `INFO` read answers every caller.
pub const INFO_REUSE: Duration = Duration::from_secs(1);

/// `INFO`'s fields, shared by the callers of one read.
pub type Info = Arc<BTreeMap<String, String>>;

/// The last `INFO` read and when it was made; a failure is kept as its message.
#[derive(Debug, Default)]
pub struct RecentInfo {
    /// One read at a time; callers that waited take its result.
    turn: tokio::sync::Mutex<()>,
    last: parking_lot::Mutex<Option<(Instant, Result<Info, String>)>>,
}

impl RecentInfo {
    fn fresh(&self) -> Option<Result<Info, CacheError>> {
        let last = self.last.lock();
        let (at, read) = last.as_ref()?;
        if at.elapsed() >= INFO_REUSE {
            return None;
        }
        Some(read.clone().map_err(CacheError::Recent))
    }

    fn keep(&self, read: &Result<Info, CacheError>) {
        let kept = match read {
            Ok(info) => Ok(Arc::clone(info)),
            Err(e) => Err(e.to_string()),
        };
        *self.last.lock() = Some((Instant::now(), kept));
    }
}

/// Keys per SCAN page and per UNLINK batch when clearing.
const CLEAR_BATCH: usize = 500;

/// What `GET /cache/entries/{id}` shows.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryInfo {
    pub key: String,
    pub cached: bool,
    pub absent_marker: bool,
    pub ttl: Option<Duration>,
    pub generation: u64,
}

impl RedisTier {
    /// The masters of a cluster, read now (the topology is refreshed too); `None` for
    /// one Redis.
    pub async fn masters(&self) -> Result<Option<Vec<NodeAddress>>, CacheError> {
        self.backend.masters(self.admin_timeout()).await
    }

    /// Runs `cmd` on one node (`Some`) or on the single Redis (`None`).
    async fn on_node<T: redis::FromRedisValue>(
        &self,
        node: Option<&NodeAddress>,
        cmd: &redis::Cmd,
        limit: Duration,
    ) -> Result<T, CacheError> {
        let mut conn = self.conn.clone();
        within(limit, conn.on_node(node, cmd)).await
    }

    /// Reserves the next `interval` for one clear of the whole fleet (`SET NX PX`): `None`
    /// when this caller got it, else how long until the current reservation ends. Per
    /// replica, N replicas would allow N clears (each a SCAN of the keyspace) per interval.
    pub async fn reserve_clear(&self, interval: Duration) -> Result<Option<Duration>, CacheError> {
        let key = self.keys.clear_reservation();
        let millis = u64::try_from(interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut conn = self.conn.clone();
        let work = async {
            let taken: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg("1")
                .arg("NX")
                .arg("PX")
                .arg(millis)
                .query_async(&mut conn)
                .await?;
            if taken.is_some() {
                return Ok(None);
            }
            // -2 (gone since) or -1 (no expiry, never set by us): wait a moment and retry.
            let left: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await?;
            let left = u64::try_from(left).unwrap_or(0).max(1);
            Ok(Some(Duration::from_millis(left)))
        };
        within(self.admin_timeout(), work).await
    }

    /// Removes every entry under this service's prefix (SCAN + UNLINK; never KEYS or
    /// FLUSHALL), on every master of a cluster.
    pub async fn clear(&self) -> Result<u64, CacheError> {
        let work = async {
            let mut cleared = 0;
            match self.masters().await? {
                None => cleared += self.clear_node(None).await?,
                Some(masters) => {
                    for node in &masters {
                        cleared += self.clear_node(Some(node)).await?;
                    }
                }
            }
            Ok(cleared)
        };
        within(self.admin_timeout() * 4, work).await
    }

    async fn clear_node(&self, node: Option<&NodeAddress>) -> Result<u64, CacheError> {
        let pattern = self.keys.all_keys_pattern();
        let mut conn = self.conn.clone();
        let mut cursor: u64 = 0;
        let mut cleared: u64 = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(CLEAR_BATCH);
            let (next, keys): (u64, Vec<String>) =
                self.on_node(node, &scan, self.admin_timeout()).await?;
            // Generation counters and epochs stay, so a fill that was in flight still
            // compares against the right numbers; only entries are cleared and counted.
            let values: Vec<&String> = keys.iter().filter(|k| !self.keys.is_counter(k)).collect();
            // In a cluster one UNLINK may only name keys of one slot.
            let mut by_slot: HashMap<u16, Vec<&String>> = HashMap::new();
            for key in values {
                let slot = if node.is_some() {
                    key_slot(key.as_bytes())
                } else {
                    0
                };
                by_slot.entry(slot).or_default().push(key);
            }
            for keys in by_slot.values() {
                for batch in keys.chunks(CLEAR_BATCH) {
                    let removed: u64 = bounded(self.admin_timeout(), conn.unlink(batch)).await?;
                    cleared += removed;
                }
            }
            if next == 0 {
                return Ok(cleared);
            }
            cursor = next;
        }
    }

    /// The server's `INFO` fields, name → value; summed over the masters of a cluster that
    /// answer (see [`aggregate_info`]), failing only if none does. One read per
    /// [`INFO_REUSE`] at most, shared by every caller meanwhile: `/cache/stats` is public,
    /// and a flood of it must not become a flood of `INFO` (one per master) on the
    /// connection the reads use (A4 of the second consistency review).
    pub async fn info(&self) -> Result<Info, CacheError> {
        if let Some(recent) = self.recent_info.fresh() {
            return recent;
        }
        let _turn = self.recent_info.turn.lock().await;
        if let Some(recent) = self.recent_info.fresh() {
            return recent;
        }
        let read = self.read_info().await.map(Arc::new);
        self.recent_info.keep(&read);
        read
    }

    /// [`Self::info`] read now, for a caller that must not see a second-old answer (the
    /// start's eviction-policy check must not hand `/cache/stats` a snapshot either).
    pub async fn read_info(&self) -> Result<BTreeMap<String, String>, CacheError> {
        let info = redis::cmd("INFO");
        match self.masters().await? {
            None => {
                let text: String = self.on_node(None, &info, self.admin_timeout()).await?;
                Ok(parse_info(&text))
            }
            Some(masters) => {
                let reads = masters.iter().map(|node| {
                    let info = &info;
                    async move {
                        let text: Result<String, CacheError> =
                            self.on_node(Some(node), info, self.admin_timeout()).await;
                        text.map(|text| parse_info(&text))
                    }
                });
                let mut answered = Vec::with_capacity(masters.len());
                let mut first_error = None;
                for read in futures::future::join_all(reads).await {
                    match read {
                        Ok(info) => answered.push(info),
                        Err(e) => first_error = first_error.or(Some(e)),
                    }
                }
                match first_error {
                    Some(e) if answered.is_empty() => Err(e),
                    _ => Ok(aggregate_info(&answered)),
                }
            }
        }
    }

    /// Whether Redis answers; in a cluster, whether every master does (the error names
    /// the first that does not).
    pub async fn ping(&self) -> Result<(), CacheError> {
        match self.node_health().await? {
            None => Ok(()),
            Some(nodes) => match nodes.iter().find(|n| n.status != NodeStatus::Up) {
                None => Ok(()),
                Some(down) => Err(CacheError::NodeDown {
                    node: down.node.clone(),
                    error: down.error.clone().unwrap_or_default(),
                }),
            },
        }
    }

    /// Pings the single Redis (`None` when it answers) or every master of a cluster.
    pub async fn node_health(&self) -> Result<Option<Vec<NodeHealth>>, CacheError> {
        let limit = self.timeout.max(Duration::from_millis(500));
        let ping = redis::cmd("PING");
        let Some(cluster) = self.backend.cluster() else {
            let _: String = self.on_node(None, &ping, limit).await?;
            return Ok(None);
        };
        let state = cluster.state();
        // The topology the listener refreshes every second; read here only before it has
        // one, so probes do not ask the cluster for its slot map each time.
        let known = state.topology().masters.clone();
        let masters = if known.is_empty() {
            self.masters().await?.unwrap_or_default()
        } else {
            known
        };
        let checks = masters.iter().map(|node| {
            let ping = &ping;
            async move {
                let outcome: Result<String, CacheError> =
                    self.on_node(Some(node), ping, limit).await;
                NodeHealth {
                    node: node.to_string(),
                    status: if outcome.is_ok() {
                        NodeStatus::Up
                    } else {
                        NodeStatus::Down
                    },
                    error: outcome.err().map(|e| {
                        tracing::warn!(%node, error = %e, "Redis Cluster master check failed");
                        e.kind().to_owned()
                    }),
                    breaker: state.node_breaker_state(node, std::time::Instant::now()),
                }
            }
        });
        Ok(Some(futures::future::join_all(checks).await))
    }

    /// What Redis holds for a product right now.
    pub async fn entry(&self, id: i32) -> Result<EntryInfo, CacheError> {
        let key = self.keys.product(id);
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.get(&key).pttl(&key).get(self.keys.generation(id));
        // All three keys share a slot, so the pipeline goes to one node in a cluster too.
        let (raw, pttl, generation): (Option<String>, i64, Option<u64>) =
            bounded(self.admin_timeout(), pipe.query_async(&mut conn)).await?;
        Ok(EntryInfo {
            cached: raw.is_some(),
            absent_marker: raw.as_deref() == Some(ABSENT),
            ttl: u64::try_from(pttl).ok().map(Duration::from_millis),
            generation: generation.unwrap_or(0),
            key,
        })
    }
}
