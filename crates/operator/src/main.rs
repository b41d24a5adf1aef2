//! `cacheme-operator`: run the operator (default), print the CRD, or render a CacheMe file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cacheme-operator",
    version,
    about = "Kubernetes operator for CacheMe",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Options of `run`, the default command.
    #[command(flatten)]
    run: cacheme_operator::run::RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the operator (the default).
    Run(cacheme_operator::run::RunArgs),
    /// Print the CustomResourceDefinition as YAML.
    Crd,
    /// Print the objects the operator would apply for a CacheMe file (offline).
    Render {
        /// A YAML file with one CacheMe.
        file: PathBuf,
        /// Namespace used when the file names none.
        #[arg(long, default_value = "default")]
        namespace: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Crd) => cacheme_operator::crd::crd_yaml()
            .map(|yaml| print!("{yaml}"))
            .map_err(anyhow::Error::from),
        Some(Command::Render { file, namespace }) => render(&file, &namespace),
        Some(Command::Run(args)) => cacheme_operator::run::main(args),
        None => cacheme_operator::run::main(cli.run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cacheme-operator: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn render(file: &PathBuf, namespace: &str) -> anyhow::Result<()> {
    let yaml = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let cm = cacheme_operator::render::cacheme_from_yaml(&yaml, namespace)?;
    print!("{}", cacheme_operator::render::render_yaml(&cm)?);
    Ok(())
}
