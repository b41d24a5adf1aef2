//! A Redis Cluster's topology: which master owns each bucket's slot, and one circuit
//! breaker per master, so a failing shard only switches off the buckets it owns.
//!
//! The client (redis-rs `cluster-async`) follows MOVED/ASK and failovers by itself; the
//! topology serves what the client does not do: breakers per node, per-node admin calls
//! (clear, INFO, health), the replication wait and the listener's subscriptions.

use std::{collections::HashMap, sync::Arc};

use parking_lot::RwLock;
use redis::{
    ConnectionAddr, ConnectionInfo, ProtocolVersion, RedisResult, Value,
    cluster_async::ClusterConnection,
    cluster_routing::{RoutingInfo, SingleNodeRoutingInfo},
};

use crate::cache::{
    breaker::{BreakerSettings, BreakerState, CircuitBreaker},
    keys::{BUCKETS, bucket_slot},
};

/// A master, by the address the cluster announces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeAddress {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for NodeAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl NodeAddress {
    /// Routes a command to this node only.
    pub fn routing(&self) -> RoutingInfo {
        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
            host: self.host.clone(),
            port: self.port,
        })
    }

    /// How to reach this node directly with the seed's credentials and TLS, over RESP3
    /// (which delivers sharded pub/sub messages as pushes).
    pub fn connection_info(&self, seed: &ConnectionInfo) -> ConnectionInfo {
        let addr = match seed.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host: self.host.clone(),
                port: self.port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(self.host.clone(), self.port),
        };
        let settings = seed
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        seed.clone().set_addr(addr).set_redis_settings(settings)
    }
}

/// A slot range and the master serving it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRange {
    pub start: u16,
    pub end: u16,
    pub master: NodeAddress,
    /// How many replicas the master has.
    pub replicas: usize,
}

/// Parses `CLUSTER SLOTS`: `[[start, end, [host, port, id, ...], replica...], ...]`.
pub fn parse_cluster_slots(reply: &Value) -> Option<Vec<SlotRange>> {
    let Value::Array(ranges) = reply else {
        return None;
    };
    ranges
        .iter()
        .map(|range| {
            let Value::Array(fields) = range else {
                return None;
            };
            let int = |v: &Value| match v {
                Value::Int(n) => u16::try_from(*n).ok(),
                _ => None,
            };
            let Some(Value::Array(master)) = fields.get(2) else {
                return None;
            };
            let host = match master.first()? {
                Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok()?,
                Value::SimpleString(s) => s.clone(),
                _ => return None,
            };
            Some(SlotRange {
                start: int(fields.first()?)?,
                end: int(fields.get(1)?)?,
                master: NodeAddress {
                    host,
                    port: int(master.get(1)?)?,
                },
                replicas: fields.len().saturating_sub(3),
            })
        })
        .collect()
}

/// Who serves each bucket, and a breaker per master.
#[derive(Debug, Default)]
pub struct Topology {
    /// The masters, sorted by address.
    pub masters: Vec<NodeAddress>,
    breakers: Vec<Arc<CircuitBreaker>>,
    /// Index into `masters` for each bucket, `None` for an unserved slot.
    owners: Vec<Option<usize>>,
    /// Replicas of each master.
    replicas: Vec<usize>,
}

impl Topology {
    /// How many replicas the master of `bucket` has (0 when unknown).
    pub fn replicas_of(&self, bucket: u16) -> usize {
        self.owners
            .get(usize::from(bucket))
            .copied()
            .flatten()
            .and_then(|index| self.replicas.get(index))
            .copied()
            .unwrap_or(0)
    }

    pub fn owner(&self, bucket: u16) -> Option<&NodeAddress> {
        let index = (*self.owners.get(usize::from(bucket))?)?;
        self.masters.get(index)
    }
}

/// The cluster's last known topology, refreshed by the listener every second and by the
/// admin calls. Until the first refresh every bucket shares one breaker.
#[derive(Debug)]
pub struct ClusterState {
    topology: RwLock<Arc<Topology>>,
    unknown: Arc<CircuitBreaker>,
    settings: BreakerSettings,
}

impl ClusterState {
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            topology: RwLock::new(Arc::new(Topology::default())),
            unknown: Arc::new(settings.build()),
            settings,
        }
    }

    pub fn topology(&self) -> Arc<Topology> {
        self.topology.read().clone()
    }

    /// The breaker of the master serving `bucket`.
    pub fn breaker(&self, bucket: u16) -> Arc<CircuitBreaker> {
        let topology = self.topology.read();
        topology
            .owners
            .get(usize::from(bucket))
            .copied()
            .flatten()
            .and_then(|index| topology.breakers.get(index))
            .unwrap_or(&self.unknown)
            .clone()
    }

    /// Open when any master's breaker is open (some buckets skip Redis), half-open when
    /// any probes, else closed.
    pub fn summary(&self, now: std::time::Instant) -> BreakerState {
        let topology = self.topology.read();
        let states = topology
            .breakers
            .iter()
            .chain(std::iter::once(&self.unknown))
            .map(|b| b.state(now));
        states.fold(BreakerState::Closed, |worst, state| match (worst, state) {
            (BreakerState::Open, _) | (_, BreakerState::Open) => BreakerState::Open,
            (BreakerState::HalfOpen, _) | (_, BreakerState::HalfOpen) => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        })
    }

    pub fn node_breaker_state(&self, node: &NodeAddress, now: std::time::Instant) -> BreakerState {
        let topology = self.topology.read();
        topology
            .masters
            .iter()
            .position(|m| m == node)
            .and_then(|i| topology.breakers.get(i))
            .map_or(BreakerState::Closed, |b| b.state(now))
    }

    /// Installs the topology `ranges` describe; a master already known keeps its breaker.
    /// Returns whether any bucket changed owner.
    pub fn install(&self, ranges: &[SlotRange]) -> bool {
        let mut masters: Vec<NodeAddress> = ranges.iter().map(|r| r.master.clone()).collect();
        masters.sort();
        masters.dedup();
        let current = self.topology();
        let known: HashMap<&NodeAddress, &Arc<CircuitBreaker>> =
            current.masters.iter().zip(&current.breakers).collect();
        let breakers = masters
            .iter()
            .map(|m| {
                known
                    .get(m)
                    .map_or_else(|| Arc::new(self.settings.build()), |b| Arc::clone(b))
            })
            .collect();
        let owners: Vec<Option<usize>> = (0..BUCKETS)
            .map(|bucket| {
                let slot = bucket_slot(bucket);
                ranges
                    .iter()
                    .find(|r| (r.start..=r.end).contains(&slot))
                    .and_then(|r| masters.iter().position(|m| *m == r.master))
            })
            .collect();
        let changed =
            (0..BUCKETS).any(|b| current.owner(b) != owners[usize::from(b)].map(|i| &masters[i]));
        let replicas = masters
            .iter()
            .map(|m| {
                ranges
                    .iter()
                    .filter(|r| r.master == *m)
                    .map(|r| r.replicas)
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        *self.topology.write() = Arc::new(Topology {
            masters,
            breakers,
            owners,
            replicas,
        });
        changed
    }
}

/// Reads the topology through any reachable node.
pub async fn fetch_slots(conn: &mut ClusterConnection) -> RedisResult<Vec<SlotRange>> {
    let reply = conn
        .route_command(
            redis::cmd("CLUSTER").arg("SLOTS").clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )
        .await?;
    parse_cluster_slots(&reply).ok_or_else(|| {
        redis::RedisError::from((redis::ErrorKind::Parse, "unexpected CLUSTER SLOTS reply"))
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cache::breaker::Thresholds;

    fn node(port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(b"127.0.0.1".to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    }

    fn range(start: i64, end: i64, port: i64) -> Value {
        Value::Array(vec![
            Value::Int(start),
            Value::Int(end),
            node(port),
            node(port + 100),
        ])
    }

    fn settings() -> BreakerSettings {
        BreakerSettings {
            thresholds: Thresholds {
                failures: 1,
                failing_for: Duration::ZERO,
            },
            cooldown: Duration::from_secs(1),
            probe_patience: Duration::from_secs(2),
        }
    }

    #[test]
    fn slots_reply_parses_into_masters() {
        let reply = Value::Array(vec![range(0, 5460, 7000), range(5461, 16383, 7001)]);
        let ranges = parse_cluster_slots(&reply).expect("parses");
        assert_eq!(ranges.len(), 2);
        assert_eq!(ranges[1].start, 5461);
        assert_eq!(ranges[1].master.to_string(), "127.0.0.1:7001");
        assert_eq!(ranges[1].replicas, 1);
        assert!(parse_cluster_slots(&Value::Int(1)).is_none());
        assert!(parse_cluster_slots(&Value::Array(vec![Value::Int(1)])).is_none());
    }

    #[test]
    fn each_master_has_its_own_breaker_and_keeps_it_across_refreshes() {
        let state = ClusterState::new(settings());
        let first = [
            SlotRange {
                start: 0,
                end: 8191,
                master: NodeAddress {
                    host: "a".into(),
                    port: 1,
                },
                replicas: 1,
            },
            SlotRange {
                start: 8192,
                end: 16383,
                master: NodeAddress {
                    host: "b".into(),
                    port: 1,
                },
                replicas: 0,
            },
        ];
        assert!(state.install(&first));
        // Bucket 0 is slot 6939 (master a), bucket 42 slot 10827 (master b).
        let a = state.breaker(0);
        let b = state.breaker(42);
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(state.topology().replicas_of(0), 1);
        assert_eq!(state.topology().replicas_of(42), 0);
        let now = std::time::Instant::now();
        a.record_failure(now);
        assert_eq!(state.breaker(0).state(now), BreakerState::Open);
        assert_eq!(state.breaker(42).state(now), BreakerState::Closed);
        assert_eq!(state.summary(now), BreakerState::Open);
        assert!(!state.install(&first), "same owners");
        assert!(Arc::ptr_eq(&a, &state.breaker(0)), "a keeps its breaker");
        // b's slots fail over to c: a new, closed breaker.
        let mut second = first.clone();
        second[1].master = NodeAddress {
            host: "c".into(),
            port: 1,
        };
        assert!(state.install(&second));
        assert_eq!(
            state
                .topology()
                .owner(42)
                .map(ToString::to_string)
                .as_deref(),
            Some("c:1")
        );
        assert!(!Arc::ptr_eq(&b, &state.breaker(42)));
    }
}
