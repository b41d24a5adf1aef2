//! The connection both modes share (one handle, the mode inside it) and the bounds every
//! call is made under.

use std::time::Duration;

use redis::{
    Cmd, FromRedisValue, RedisFuture, Value,
    aio::{ConnectionLike, ConnectionManager},
    cluster_async::ClusterConnection,
};

use super::{CacheError, cluster::NodeAddress};

/// Administrative calls (clear, INFO) may scan many keys, so they get more time than a
/// lookup; also the longest a single Redis's response may take before the connection
/// counts as lost.
pub const ADMIN_TIMEOUT_FLOOR: Duration = Duration::from_secs(5);

/// One connection handle for either mode; both are cheap clones of a shared, reconnecting
/// connection.
#[derive(Clone)]
pub enum RedisConnection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Single(_) => "RedisConnection::Single",
            Self::Cluster(_) => "RedisConnection::Cluster",
        })
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

impl RedisConnection {
    /// Runs `cmd` on one master of a cluster (`Some`), or wherever the connection sends
    /// it (`None`; the single Redis).
    pub async fn on_node<T: FromRedisValue>(
        &mut self,
        node: Option<&NodeAddress>,
        cmd: &Cmd,
    ) -> Result<T, CacheError> {
        let value = match (node, self) {
            (Some(node), Self::Cluster(conn)) => {
                conn.route_command(cmd.clone(), node.routing()).await?
            }
            (_, conn) => conn.req_packed_command(cmd).await?,
        };
        Ok(redis::from_redis_value(value)?)
    }
}
