//! What the service tells about itself: request and query metrics for `/metrics`
//! (`metrics`), the cache counters behind `/cache/stats` (`stats`), per-request
//! `Server-Timing` (`timing`) and the request middleware that ties them to a trace.

pub mod metrics;
pub mod middleware;
pub mod stats;
pub mod timing;
