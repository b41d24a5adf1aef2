//! The project as its users run it without a cluster: the three images built from the
//! project's Dockerfiles (`cargo xtask images`) and the compose stack
//! (`cargo xtask compose`), on a real Docker engine.
//!
//! - [`engine`]: the engine and the compose binary.
//! - [`bases`]: upstream base images, or stand-ins made here from packages.
//! - [`build`]: the three images, on the host's release binaries.
//! - [`checks`]: a test per image; [`disk`]: superseded images removed, room checked.
//! - [`compose`]: `cargo xtask compose`; [`suite`]: docker-compose.yml brought up and
//!   driven; [`admin_tools`]: pgAdmin, Redis Commander and Jaeger checked in it.

pub mod admin_tools;
pub mod bases;
pub mod build;
pub mod checks;
pub mod compose;
pub mod disk;
pub mod engine;
pub use cacheme_harness::files;
pub mod http;
pub mod suite;

use std::path::Path;

use bases::{BaseSource, Bases};
use engine::Docker;

use cacheme_packaging::Tools;

/// `cargo xtask images`.
#[derive(Debug, clap::Args)]
pub struct ImagesArgs {
    /// Where the base images come from: `auto` pulls the API's runtime base and, when no
    /// registry answers, makes stand-ins from Debian's packages, npm, PyPI and Go modules.
    #[arg(long, value_enum, default_value = "auto")]
    pub bases: BaseSource,
    /// Then test each image (size, user, shell, a running container) against throwaway
    /// PostgreSQL and Redis.
    #[arg(long)]
    pub check: bool,
    /// Only test the images already built (implies --check).
    #[arg(long)]
    pub check_only: bool,
}

/// The engine, through the pinned compose binary.
pub fn docker(root: &Path) -> anyhow::Result<(Docker, Tools)> {
    let tools = Tools::ensure(root)?;
    Ok((Docker::connect(tools.docker_compose())?, tools))
}

/// The bases chosen by `source`, made when they are stand-ins.
pub fn bases(docker: &Docker, root: &Path, source: BaseSource) -> anyhow::Result<Bases> {
    if bases::choose(docker, source)? {
        bases::local_bases(docker, root)
    } else {
        Ok(bases::upstream())
    }
}

pub fn images(args: &ImagesArgs) -> anyhow::Result<()> {
    let root = cacheme_harness::workspace_root();
    cacheme_harness::prereqs::check(&root, "images", cacheme_harness::prereqs::IMAGES)?;
    let (docker, _tools) = docker(&root)?;
    if !args.check_only {
        let bases = bases(&docker, &root, args.bases)?;
        build::build_images(&docker, &root, &bases)?;
    }
    if args.check || args.check_only {
        let stores = cacheme_harness::find_stores()?;
        checks::check_images(&docker, &root, &stores)?;
    }
    Ok(())
}

/// The suite's part: images built and checked, then the compose stack driven.
pub fn test(root: &Path, stores: &cacheme_testsupport::Stores) -> anyhow::Result<()> {
    let (docker, _tools) = docker(root)?;
    let bases = bases(&docker, root, BaseSource::Auto)?;
    build::build_images(&docker, root, &bases)?;
    checks::check_images(&docker, root, stores)?;
    suite::test(&docker, root, bases.local)
}

/// `cargo xtask compose`: the suite with `--test`, else docker compose with the user's
/// arguments, after building what is missing.
pub fn compose(args: &compose::ComposeArgs) -> anyhow::Result<()> {
    let root = cacheme_harness::workspace_root();
    cacheme_harness::prereqs::check(&root, "compose", cacheme_harness::prereqs::IMAGES)?;
    let (docker, _tools) = docker(&root)?;
    if args.test {
        let bases = bases(&docker, &root, args.bases)?;
        build::build_images(&docker, &root, &bases)?;
        return suite::test(&docker, &root, bases.local);
    }
    compose::run(&docker, &root, args)
}
