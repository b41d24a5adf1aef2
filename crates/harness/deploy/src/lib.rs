//! CacheMe run the way its users run it: the three images built with the project's
//! Dockerfiles (`containers`), docker compose, and the chart on a real kind cluster
//! (`kind`). `cargo xtask images | compose | kind` run this crate's binary.

pub mod containers;
pub mod kind;
