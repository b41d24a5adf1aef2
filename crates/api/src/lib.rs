//! CacheMe product service: Redis cache-aside in front of PostgreSQL.
//!
//! `main.rs` only parses settings and calls [`app::App`]; everything else lives here.

pub mod access;
pub mod app;
pub mod cache;
pub mod catalog;
pub mod config;
pub mod db;
pub mod error;
pub mod http_trace;
pub mod input;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod seed;
pub mod state;
pub mod stats;
pub mod timing;
