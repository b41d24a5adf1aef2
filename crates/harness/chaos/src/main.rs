//! `cargo xtask chaos` runs this: the options as typed, the check in the library.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let typed: Vec<String> = std::env::args().skip(1).collect();
    let args = cacheme_chaos::Args::parse();
    cacheme_harness::exit("chaos", cacheme_chaos::chaos(args, &typed))
}
