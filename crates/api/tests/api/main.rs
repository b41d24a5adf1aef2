//! Integration tests: the real service against real PostgreSQL and Redis.

mod binary;
mod cache;
mod docs;
mod failure;
mod health;
mod helpers;
mod products;
