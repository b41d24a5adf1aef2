use cacheme_api::{App, Cli, Command};
use clap::Parser;

// glibc's malloc and free were 21-23 % of the API's CPU on the hit and miss paths
// (perf, `b1e9cd1`); mimalloc's thread-local free lists avoid its locking and
// consolidation (BENCHMARKS.md has the A/B).
#[global_allocator]
static ALLOCATOR: cacheme_allocator::MiMalloc = cacheme_allocator::MiMalloc;

fn main() -> std::process::ExitCode {
    // First, while this is the only thread (see the function).
    cacheme_allocator::give_back_freed_memory_promptly();
    let cli = Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if cli.config.http.worker_threads > 0 {
        runtime.worker_threads(usize::from(cli.config.http.worker_threads));
    }
    match runtime.build() {
        Ok(runtime) => runtime.block_on(serve_or_migrate(cli)),
        Err(e) => {
            eprintln!("cacheme-api: cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve_or_migrate(cli: Cli) -> std::process::ExitCode {
    let telemetry =
        match cacheme_telemetry::init_for_requests("cacheme-api", env!("CARGO_PKG_VERSION")) {
            Ok(guard) => guard,
            Err(e) => {
                eprintln!("cacheme-api: {e}");
                return std::process::ExitCode::from(2);
            }
        };
    let result = run(cli).await;
    if let Err(e) = &result {
        tracing::error!(error = format!("{e:#}"), "cacheme-api stopped");
        eprintln!("cacheme-api: {e:#}");
    }
    // Export the last spans before exiting; the exporter blocks, so off the runtime's threads.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    if result.is_ok() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            cacheme_api::migrate(cli.config.database.url.expose()).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Serve => {
            cacheme_api::install_mutation_from_env().map_err(anyhow::Error::msg)?;
            let app = App::build(&cli.config).await?;
            tracing::info!(
                addr = %app.local_addr()?,
                worker_threads = tokio::runtime::Handle::current().metrics().num_workers(),
                "cacheme-api listening"
            );
            app.run_until(async {
                cacheme_runtime::shutdown_signal().await;
                tracing::info!("shutdown signal received; draining in-flight requests");
            })
            .await
        }
    }
}
