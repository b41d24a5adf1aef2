//! `cargo xtask chaos` options.

use std::path::PathBuf;

use anyhow::{Context as _, bail};

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub duration_s: u64,
    pub seed: u64,
    pub replicas: usize,
    pub readers: usize,
    pub products: u32,
    pub coherence_bound_ms: u64,
    pub release: bool,
    pub unsafe_skip_fill_check: bool,
    pub expect_violations: bool,
    pub abandon_percent: f64,
    pub quarantine_ms: u64,
    pub write_think_ms: u64,
    pub api_bin: Option<PathBuf>,
    pub history: bool,
}

const OPTIONS: &str = "--duration SECS, --seed N, --replicas N, --readers N, --products N, \
--coherence-bound-ms MS, --abandon-percent P, --quarantine-ms MS, --write-think-ms MS, --release, --api-bin PATH, \
--history, --unsafe-skip-fill-check, --expect-violations";

pub fn parse_options(args: &[String], default_seed: u64) -> anyhow::Result<Options> {
    let mut o = Options {
        duration_s: 60,
        seed: default_seed,
        replicas: 2,
        readers: 8,
        products: 6,
        coherence_bound_ms: 1000,
        release: false,
        unsafe_skip_fill_check: false,
        expect_violations: false,
        abandon_percent: 5.0,
        quarantine_ms: 4000,
        write_think_ms: 100,
        api_bin: None,
        history: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> anyhow::Result<&String> {
            it.next().with_context(|| format!("{name} needs a value"))
        };
        fn num<T: std::str::FromStr>(name: &str, v: &str) -> anyhow::Result<T> {
            v.parse()
                .map_err(|_| anyhow::anyhow!("{name} takes a number, not {v:?}"))
        }
        match arg.as_str() {
            "--duration" => o.duration_s = num(arg, value(arg)?)?,
            "--seed" => o.seed = num(arg, value(arg)?)?,
            "--replicas" => o.replicas = num(arg, value(arg)?)?,
            "--readers" => o.readers = num(arg, value(arg)?)?,
            "--products" => o.products = num(arg, value(arg)?)?,
            "--coherence-bound-ms" => o.coherence_bound_ms = num(arg, value(arg)?)?,
            "--abandon-percent" => o.abandon_percent = num(arg, value(arg)?)?,
            "--quarantine-ms" => o.quarantine_ms = num(arg, value(arg)?)?,
            "--write-think-ms" => o.write_think_ms = num(arg, value(arg)?)?,
            "--api-bin" => o.api_bin = Some(PathBuf::from(value(arg)?)),
            "--release" => o.release = true,
            "--history" => o.history = true,
            "--unsafe-skip-fill-check" => o.unsafe_skip_fill_check = true,
            "--expect-violations" => o.expect_violations = true,
            other => bail!("unknown chaos option {other:?} (options: {OPTIONS})"),
        }
    }
    anyhow::ensure!(
        (10..=3600).contains(&o.duration_s),
        "--duration must be 10..=3600 seconds"
    );
    anyhow::ensure!((2..=8).contains(&o.replicas), "--replicas must be 2..=8");
    anyhow::ensure!((1..=64).contains(&o.readers), "--readers must be 1..=64");
    // The 15 seed products are the hot set's candidates.
    anyhow::ensure!((1..=15).contains(&o.products), "--products must be 1..=15");
    anyhow::ensure!(
        (0.0..=100.0).contains(&o.abandon_percent),
        "--abandon-percent must be 0..=100"
    );
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn options_have_defaults_and_are_checked() -> anyhow::Result<()> {
        let o = parse_options(&[], 9)?;
        assert_eq!(
            (o.duration_s, o.seed, o.replicas, o.readers, o.products),
            (60, 9, 2, 8, 6)
        );
        assert_eq!(
            (o.coherence_bound_ms, o.quarantine_ms, o.write_think_ms),
            (1000, 4000, 100)
        );
        assert!(!o.release && !o.unsafe_skip_fill_check && !o.expect_violations);
        let o = parse_options(
            &args(
                "--duration 30 --seed 5 --replicas 3 --readers 2 --products 4 --coherence-bound-ms 500 --release --unsafe-skip-fill-check --expect-violations",
            ),
            9,
        )?;
        assert_eq!(
            (o.duration_s, o.seed, o.replicas, o.readers, o.products),
            (30, 5, 3, 2, 4)
        );
        assert!(o.release && o.unsafe_skip_fill_check && o.expect_violations);
        assert_eq!(o.coherence_bound_ms, 500);
        for bad in [
            "--replicas 1",
            "--products 16",
            "--duration x",
            "--seed",
            "--what",
        ] {
            assert!(parse_options(&args(bad), 9).is_err(), "{bad}");
        }
        Ok(())
    }
}
