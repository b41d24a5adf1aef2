//! `cargo xtask e2e` runs this: the options parsed, the suite in the library.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    cacheme_harness::exit("e2e", cacheme_e2e::e2e(cacheme_e2e::Options::parse()))
}
