//! Integration tests: the real service against real PostgreSQL and Redis.

mod binary;
mod cache;
mod correctness;
mod disorder;
mod docs;
mod failure;
mod health;
mod helpers;
mod products;
mod security;
mod telemetry;
mod writes;
