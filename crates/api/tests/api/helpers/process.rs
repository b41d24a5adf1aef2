//! Waiting: `eventually`, the API as a child process (`api_binary`,
//! `wait_until_listening`) and a hook that holds a request at one point (`pause_once`).

use std::time::Duration;

use futures::FutureExt as _;
use tokio::sync::oneshot;

use super::*;

/// Polls `check` every 100 ms for up to 10 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 10 s");
}

/// The real `cacheme-api` binary on `port` with a clean environment: the test database,
/// the shared Redis under `key_prefix`, no migration. Add settings, then spawn it.
pub fn api_binary(database_url: &str, port: u16, key_prefix: &str) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_cacheme-api"));
    command
        .env_clear()
        .env("DATABASE_URL", database_url)
        .env("REDIS_URL", &stores().redis_url)
        .env("CACHE_KEY_PREFIX", key_prefix)
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("MIGRATE_ON_START", "false")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    command
}

/// Waits up to 10 s for something to listen on `port`.
pub async fn wait_until_listening(port: u16) {
    for _ in 0..200 {
        if cacheme_testsupport::port_open(port) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listened on port {port} within 10 s");
}

/// A one-shot pause of the first call of a hook for `id`: says when it got there, waits
/// for the release.
pub fn pause_once(id: i32) -> (cacheme_api::Hook, Reached, oneshot::Sender<()>) {
    pause_call(id, 1)
}

/// A one-shot pause of the `nth` call (from 1) of a hook for `id`; the others pass.
pub fn pause_call(id: i32, nth: usize) -> (cacheme_api::Hook, Reached, oneshot::Sender<()>) {
    let (reached_tx, reached_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let slot = std::sync::Arc::new(std::sync::Mutex::new(Some((reached_tx, release_rx))));
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let hook: cacheme_api::Hook = std::sync::Arc::new(move |called: i32| {
        let taken =
            if called == id && calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == nth {
                slot.lock().ok().and_then(|mut s| s.take())
            } else {
                None
            };
        async move {
            if let Some((reached, release)) = taken {
                let _ = reached.send(());
                let _ = release.await;
            }
        }
        .boxed()
    });
    (hook, Reached(reached_rx), release_tx)
}

/// A pause point's "got there". Awaited within 30 s: a pause point the code never
/// reaches fails its test instead of hanging the suite.
#[derive(Debug)]
pub struct Reached(oneshot::Receiver<()>);

impl std::future::IntoFuture for Reached {
    type Output = Result<(), String>;
    type IntoFuture = futures::future::BoxFuture<'static, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        async move {
            match tokio::time::timeout(Duration::from_secs(30), self.0).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err("the pause point's hook was dropped".to_owned()),
                Err(_) => Err("the pause point was not reached within 30 s".to_owned()),
            }
        }
        .boxed()
    }
}
