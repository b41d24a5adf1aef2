//! `cacheme-operator run`: HTTP server, leader election, controller, graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context as _;
use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::metrics;
use crate::server::{Health, router};

/// Options of `cacheme-operator run` (each also read from the environment).
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Address of the HTTP server (`/livez`, `/readyz`, `/metrics`).
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Watch only this namespace (all namespaces when unset).
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,

    /// Namespace of the leader-election Lease (the client's namespace when unset:
    /// the operator's own namespace in a cluster).
    #[arg(long, env = "LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// Name of the leader-election Lease.
    #[arg(long, env = "LEASE_NAME", default_value = "cacheme-operator")]
    pub lease_name: String,

    /// Identity in the Lease and in Events (the pod name in a cluster).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// Seconds a lease stays valid without renewal.
    #[arg(long, env = "LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
}

/// Entry point of `run`: builds the runtime and runs until SIGTERM/Ctrl-C.
pub fn main(args: RunArgs) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(run(args))
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    // Kept until run returns, so queued spans are flushed on shutdown.
    let _telemetry = cacheme_telemetry::init("cacheme-operator", env!("CARGO_PKG_VERSION"))?;
    let health = Arc::new(Health::default());

    // Shutdown is broadcast to the server, the election loop and the controller.
    let (stop_tx, stop_rx) = watch::channel(false);
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("cannot bind {}", args.http_addr))?;
    info!(addr = %args.http_addr, "serving /livez /readyz /metrics");
    let mut server_stop = stop_rx.clone();
    let app = router(Arc::clone(&health), metrics::global());
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = server_stop.wait_for(|stop| *stop).await;
            })
            .await
    });

    let signal_tx = stop_tx.clone();
    tokio::spawn(async move {
        cacheme_runtime::shutdown_signal().await;
        info!("shutdown requested");
        let _ = signal_tx.send(true);
    });

    let result = async {
        let client = Client::try_default()
            .await
            .context("cannot configure the Kubernetes client")?;
        lead_and_reconcile(client, &args, Arc::clone(&health), stop_rx.clone()).await
    }
    .await;
    let _ = stop_tx.send(true);
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(error = %e, "HTTP server failed"),
        Err(e) => warn!(error = %e, "HTTP server task failed"),
    }
    info!("stopped");
    result
}

/// Waits for the lease, runs the controller while holding it, and stops the
/// controller (letting in-flight reconciles finish) when the lease is lost
/// or shutdown is requested. `client` is injected so tests can point it at a
/// fake API server.
async fn lead_and_reconcile(
    client: Client,
    args: &RunArgs,
    health: Arc<Health>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let lease_namespace = args
        .lease_namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("cacheme-operator-{}", std::process::id()));
    let manager = LeaseManagerBuilder::new(client.clone(), &args.lease_name)
        .with_namespace(&lease_namespace)
        .with_identity(&identity)
        .with_duration(args.lease_duration_seconds)
        .with_grace(args.lease_duration_seconds.div_ceil(3))
        .build()
        .await
        .context("cannot set up leader election")?;
    health.ready.store(true, Ordering::Relaxed);
    info!(lease = %args.lease_name, namespace = %lease_namespace, %identity, "waiting for the lease");
    let (mut leader, lease_task) = manager.watch().await;

    loop {
        // Wait to become leader, or for shutdown.
        tokio::select! {
            changed = leader.wait_for(|is_leader| *is_leader) => {
                if changed.is_err() {
                    warn!("leader election stopped");
                    break;
                }
            }
            _ = stop.wait_for(|s| *s) => break,
        }
        info!("became leader: starting the controller");
        health.leader.store(true, Ordering::Relaxed);
        metrics::leader(true);

        let (ctl_stop_tx, mut ctl_stop_rx) = watch::channel(false);
        let controller = tokio::spawn(crate::controller::wiring::run(
            client.clone(),
            args.watch_namespace.clone(),
            Some(identity.clone()),
            async move {
                let _ = ctl_stop_rx.wait_for(|s| *s).await;
            },
        ));
        let mut controller = std::pin::pin!(controller);
        let shutting_down = tokio::select! {
            lost = leader.wait_for(|is_leader| !*is_leader) => {
                warn!("lost the lease: stopping the controller");
                lost.is_err()
            }
            _ = stop.wait_for(|s| *s) => true,
            ended = &mut controller => {
                health.leader.store(false, Ordering::Relaxed);
                metrics::leader(false);
                match ended {
                    Ok(Ok(())) => anyhow::bail!("the controller stopped unexpectedly"),
                    Ok(Err(e)) => return Err(e).context("the controller failed"),
                    Err(e) => return Err(e).context("the controller task failed"),
                }
            }
        };
        let _ = ctl_stop_tx.send(true);
        if let Ok(Err(e)) = controller.await {
            warn!(error = %e, "controller ended with an error");
        }
        health.leader.store(false, Ordering::Relaxed);
        metrics::leader(false);
        if shutting_down {
            break;
        }
    }

    // Closing the channel makes the lease task stop; then give the lease up.
    drop(leader);
    match lease_task.await {
        Ok(Ok(manager)) => {
            if let Err(e) = manager.release().await {
                warn!(error = %e, "cannot release the lease");
            }
        }
        Ok(Err(e)) => warn!(error = %e, "leader election failed"),
        Err(e) => warn!(error = %e, "leader election task failed"),
    }
    Ok(())
}

#[cfg(test)]
mod tests;
