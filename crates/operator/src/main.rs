//! `cacheme-operator`: run the operator (default), print the CRD, check custom objects
//! against a CRD, or render a CacheMe file.

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
    /// Check the custom objects in YAML files against a CRD's schema and CEL rules,
    /// as the API server does at creation (offline). Exits 1 on any violation.
    Validate {
        /// The CustomResourceDefinition(s); default: this operator's own CRD.
        #[arg(long)]
        crd: Option<PathBuf>,
        /// YAML files (several documents each); objects of other kinds are skipped.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
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
        Some(Command::Validate { crd, files }) => validate(crd.as_deref(), &files),
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

fn validate(crd: Option<&std::path::Path>, files: &[PathBuf]) -> anyhow::Result<()> {
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
    };
    let crd_yaml = match crd {
        Some(path) => read(path)?,
        None => cacheme_operator::crd::crd_yaml()?,
    };
    let schemas = cacheme_operator::validate::crd_schemas(&crd_yaml).map_err(anyhow::Error::msg)?;
    let (mut checked, mut errors) = (0, Vec::new());
    for file in files {
        let mut docs = Vec::new();
        for doc in yaml_serde::Deserializer::from_str(&read(file)?) {
            let doc: serde_json::Value = serde::Deserialize::deserialize(doc)
                .map_err(|e| anyhow::anyhow!("{}: not YAML: {e}", file.display()))?;
            if !doc.is_null() {
                docs.push(doc);
            }
        }
        let (n, found) = cacheme_operator::validate::custom_objects(
            &schemas,
            &docs,
            &file.display().to_string(),
        );
        checked += n;
        errors.extend(found);
    }
    anyhow::ensure!(errors.is_empty(), "{}", errors.join("\n"));
    println!("{checked} custom objects match the CRD schema and its CEL rules");
    Ok(())
}
