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
    /// Build the three images (api, operator, page) with the project's Dockerfiles
    ///
    /// Builds the release binaries on the host once and copies them into the images
    /// (crates/Dockerfile, BINARIES=prebuilt); the page is built in its Dockerfile. With
    /// no image registry reachable, the base images are made here from Debian's packages,
    /// npm, PyPI and Go modules (crates/harness/deploy/images/), once per machine. Needs a
    /// running Docker engine.
    #[command(verbatim_doc_comment)]
    Images(containers::ImagesArgs),
    /// Run CacheMe with docker compose (docker-compose.yml), images built when missing
    ///
    /// Checks the published ports first (a taken one is named with the variable that
    /// moves it), builds the images when they are missing (`cargo xtask images`), then
    /// `docker compose up --detach --wait`. Anything after the task's name goes to docker
    /// compose instead: `cargo xtask compose down -v`, `cargo xtask compose logs api`.
    /// `--test` runs the suite's check instead: a throwaway stack on free ports, driven
    /// through the page, pgAdmin, Redis Commander and Jaeger, then removed.
    #[command(verbatim_doc_comment)]
    Compose(containers::compose::ComposeArgs),
    /// CacheMe on a real kind cluster
    ///
    /// The node image made here (cached), the cluster created, the images loaded, `helm
    /// install` into a namespace enforcing the restricted Pod Security level, then
    /// rollouts and pod kills under load, PostgreSQL restarted, pgAdmin and Redis
    /// Commander, scale, upgrade and uninstall.
    #[command(verbatim_doc_comment)]
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
        Task::Compose(args) => ("compose", containers::compose(&args)),
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
