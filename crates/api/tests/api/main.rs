//! Integration tests: the real service against real PostgreSQL and Redis.

mod acknowledged_writes;
mod binary;
mod breaker;
mod cache;
mod cluster;
mod correctness;
mod database_disorder;
mod disorder;
mod docs;
mod expiry;
mod failure;
mod flood;
mod health;
mod helpers;
mod joined_loads;
mod memory_tier;
mod products;
mod router;
mod security;
mod telemetry;
mod timing;
mod writes;
