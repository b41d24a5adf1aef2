//! How a test reaches the app's Redis, in either mode.

use cacheme_api::{Config, RedisMode};

/// How a test reaches the app's Redis, in either mode.
#[derive(Debug, Clone)]
pub enum TestRedisClient {
    Single(redis::Client),
    Cluster(Box<redis::cluster::ClusterClient>),
}

impl TestRedisClient {
    pub(crate) fn new(config: &Config) -> Self {
        match config.redis.mode {
            RedisMode::Single => Self::Single(
                redis::Client::open(config.redis.url.expose()).expect("valid redis url"),
            ),
            RedisMode::Cluster => Self::Cluster(Box::new(
                redis::cluster::ClusterClient::new(config.redis.url.expose().split(','))
                    .expect("valid urls"),
            )),
        }
    }

    pub async fn connect(&self) -> TestRedis {
        match self {
            Self::Single(client) => TestRedis::Single(
                client
                    .get_multiplexed_async_connection()
                    .await
                    .expect("test connects to Redis"),
            ),
            Self::Cluster(client) => TestRedis::Cluster(
                client
                    .get_async_connection()
                    .await
                    .expect("test connects to the Redis Cluster"),
            ),
        }
    }
}

/// A connection to the app's Redis: commands route by key in a cluster.
#[derive(Clone)]
pub enum TestRedis {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for TestRedis {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        0
    }
}
