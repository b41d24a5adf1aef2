//! Every helper a test file imports, re-exported here so there is one place to look:
//! the shared servers (`stores`), the service under test (`app`), waiting and child
//! processes (`process`), and Redis in either mode (`redis_access`).

mod app;
mod process;
mod redis_access;
mod stores;

pub use app::*;
pub use process::*;
pub use redis_access::*;
pub use stores::*;
