//! `cargo xtask images | compose | kind` run this, and `cargo xtask test` its suites.

use cacheme_deploy::{containers, kind};
use cacheme_harness::workspace_root;
use clap::{Parser, Subcommand};

/// CacheMe as users run it: images, docker compose, kind.
#[derive(Debug, Parser)]
#[command(name = "deploy", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Build the three images (api, operator, page) with the project's Dockerfiles.
    Images(containers::ImagesArgs),
    /// Run CacheMe with docker compose (docker-compose.yml), images built when missing.
    Compose(containers::compose::ComposeArgs),
    /// CacheMe on a real kind cluster.
    Kind(kind::KindArgs),
    /// The suite's checks of the images and the compose stack (part of `cargo xtask test`).
    ContainersSuite,
    /// The suite's kind scenario (part of `cargo xtask test`).
    KindSuite,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let (name, result) = match cli.task {
        Task::Images(args) => ("images", containers::images(&args)),
        Task::Compose(args) => ("compose", containers::compose::compose(&args)),
        Task::Kind(args) => ("kind", kind::kind(&args)),
        Task::ContainersSuite => (
            "containers",
            cacheme_harness::find_stores()
                .and_then(|stores| containers::test(&workspace_root(), &stores)),
        ),
        Task::KindSuite => ("kind", kind::test(&workspace_root())),
    };
    cacheme_harness::exit(name, result)
}
