//! One Redis: one reconnecting connection, one breaker, and the client the listener
//! subscribes with.

use std::{sync::Arc, time::Duration};

use redis::{
    AsyncCommands as _, Client,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use super::{CacheError, connection::ADMIN_TIMEOUT_FLOOR, error::bounded};
use crate::cache::breaker::{BreakerSettings, CircuitBreaker};

#[derive(Debug, Clone)]
pub struct Single {
    /// For the listener's subscription (a connection of its own).
    client: Client,
    breaker: Arc<CircuitBreaker>,
    conn: ConnectionManager,
}

impl Single {
    /// Does not connect: the first call does, so the service starts while Redis is down.
    pub fn connect(
        url: &str,
        timeout: Duration,
        breakers: BreakerSettings,
    ) -> redis::RedisResult<Self> {
        let client = Client::open(url)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(250))))
            .set_response_timeout(Some(timeout.max(ADMIN_TIMEOUT_FLOOR)))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)?;
        let breaker = Arc::new(breakers.build());
        Ok(Self {
            client,
            breaker,
            conn,
        })
    }

    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }

    /// Tells every replica to drop its whole L1, on the one channel.
    pub async fn announce_flush(&self, channel: String, limit: Duration) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        let _: i64 = bounded(limit, conn.publish(channel, "*")).await?;
        Ok(())
    }
}
