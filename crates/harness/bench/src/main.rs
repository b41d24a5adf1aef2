//! `cargo xtask bench` runs this: the options parsed, the load tests in the library.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    cacheme_harness::exit("bench", cacheme_bench::bench(cacheme_bench::Args::parse()))
}
