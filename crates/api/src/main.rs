use cacheme_api::{
    app::{App, shutdown_signal},
    config::{Cli, Command},
    db,
};
use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Err(e) = cacheme_telemetry::init("cacheme-api") {
        eprintln!("cacheme-api: {e}");
        return std::process::ExitCode::from(2);
    }
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "cacheme-api stopped");
            eprintln!("cacheme-api: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            db::migrate(&cli.config.database_url).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Serve => {
            let app = App::build(&cli.config).await?;
            tracing::info!(addr = %app.local_addr()?, "cacheme-api listening");
            app.run_until(shutdown_signal()).await
        }
    }
}
