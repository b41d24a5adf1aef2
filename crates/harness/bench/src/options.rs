//! `cargo xtask bench`'s command line, and what it means for the run.

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub smoke: bool,
    pub duration_s: u64,
    pub products: u64,
    pub json: bool,
    pub scale: bool,
    /// `--compare`: the other revision and the rounds.
    pub compare: Option<(String, u32)>,
    pub traced: Option<f64>,
    pub record: bool,
    /// `--original`: against the rebuilt FastAPI backend, with these rounds.
    pub original: Option<u32>,
}

/// Load tests of the release build (wrk), next to nginx, redis-benchmark and pgbench
/// baselines; report in target/bench/.
#[derive(Debug, Clone, PartialEq, clap::Parser)]
#[command(name = "bench", bin_name = "cargo xtask bench")]
pub struct Args {
    /// A few seconds per scenario on fewer products; the targets are not asserted.
    #[arg(long)]
    pub smoke: bool,
    /// Seconds per scenario (1..=600) [default: 10, 2 with --smoke].
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
    /// Products seeded (20..=10000000) [default: 100000, 50000 with --compare, 10000 with --scale, 2000 with --smoke].
    #[arg(long, value_name = "N")]
    pub products: Option<u64>,
    /// Also write target/bench/report.json.
    #[arg(long)]
    pub json: bool,
    /// Only the scale points: Redis hits through 1 and 2 API processes against one Redis
    /// and a 3-master Redis Cluster, L1 hits through 1 and 2 (target/bench/scale.md).
    #[arg(long)]
    pub scale: bool,
    /// A/B against another git revision (`main`, `HEAD~1`, a commit): builds it in its own
    /// target directory and runs both builds interleaved, round after round, in the same
    /// minutes (target/bench/compare.md). Every performance claim should come from this.
    #[arg(long, value_name = "REV", conflicts_with_all = ["scale", "json"])]
    pub compare: Option<String>,
    /// Rounds of --compare (2..=50) [default: 6, 2 with --smoke].
    #[arg(long, value_name = "N")]
    pub rounds: Option<u32>,
    /// With --compare: side B (this tree) exports spans to a discarding OTLP sink,
    /// tracing this share of requests (0..=1): `--compare HEAD --traced 0.01` measures
    /// what tracing at 1 % costs.
    #[arg(long, value_name = "RATIO", requires = "compare")]
    pub traced: Option<f64>,
    /// Keep this full run's ratios as the recorded run (docs/benchmarks/recorded.json), the
    /// one later runs flag drops against.
    #[arg(long, conflicts_with_all = ["smoke", "compare", "scale"])]
    pub record: bool,
    /// Cache hits through CacheMe against the original demo's backend (FastAPI + Uvicorn,
    /// rebuilt from its description, installed from PyPI into target/bench/original),
    /// interleaved round after round (target/bench/original.md); takes --rounds.
    #[arg(long, conflicts_with_all = ["compare", "scale", "json", "record"])]
    pub original: bool,
}

impl Args {
    /// The options, defaults filled in and checked.
    pub fn options(self) -> anyhow::Result<Options> {
        let default_duration = match (self.smoke, self.compare.is_some() || self.original) {
            (true, _) => 2,
            (false, true) => 5,
            (false, false) => 10,
        };
        let duration_s = self.duration.unwrap_or(default_duration);
        // Misses need an id each: --compare's for 5 s at ~10 k/s per side, a full run's
        // for most of its 10 s (about 7 s at 15 k/s; the rate is then taken over the time
        // the ids lasted). With 10 000 they ran out after ~1 s, so the 1000-connection
        // sweep measured its connections' ramp-up and L1 never filled. The scale points
        // read 1 000 products only.
        let default_products = match (self.smoke, self.compare.is_some(), self.scale) {
            (true, _, _) => 2_000,
            (false, true, _) => 50_000,
            (false, false, true) => 10_000,
            (false, false, false) => 100_000,
        };
        let products = self.products.unwrap_or(default_products);
        anyhow::ensure!(
            (1..=600).contains(&duration_s),
            "--duration must be 1..=600 seconds"
        );
        anyhow::ensure!(
            (20..=10_000_000).contains(&products),
            "--products must be 20..=10000000"
        );
        let rounds = self.rounds.unwrap_or(if self.smoke { 2 } else { 6 });
        anyhow::ensure!(
            self.traced.is_none_or(|r| (0.0..=1.0).contains(&r)),
            "--traced must be a ratio between 0 and 1"
        );
        anyhow::ensure!((2..=50).contains(&rounds), "--rounds must be 2..=50");
        anyhow::ensure!(
            self.rounds.is_none() || self.compare.is_some() || self.original,
            "--rounds goes with --compare or --original"
        );
        Ok(Options {
            smoke: self.smoke,
            duration_s,
            products,
            json: self.json,
            scale: self.scale,
            compare: self.compare.map(|rev| (rev, rounds)),
            record: self.record,
            traced: self.traced,
            original: self.original.then_some(rounds),
        })
    }
}

/// Parses `args` (what follows `cargo xtask bench`) into checked options.
#[cfg(test)]
fn parse_options(args: &[String]) -> anyhow::Result<Options> {
    let parsed = <Args as clap::Parser>::try_parse_from(
        std::iter::once("bench").chain(args.iter().map(String::as_str)),
    )?;
    parsed.options()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn options_defaults_smoke_and_overrides() {
        let full = parse_options(&[]).expect("defaults");
        assert_eq!(
            (full.smoke, full.duration_s, full.products, full.json),
            (false, 10, 100_000, false)
        );
        let smoke = parse_options(&args(&["--smoke", "--json"])).expect("smoke");
        assert_eq!(
            (smoke.duration_s, smoke.products, smoke.json),
            (2, 2_000, true)
        );
        let o = parse_options(&args(&["--duration", "30", "--products", "50000"])).expect("set");
        assert_eq!((o.duration_s, o.products), (30, 50_000));
        assert!(parse_options(&args(&["--duration"])).is_err());
        assert!(parse_options(&args(&["--duration", "ten"])).is_err());
        assert!(parse_options(&args(&["--duration", "0"])).is_err());
        assert!(parse_options(&args(&["--fast"])).is_err());
        let ab = parse_options(&args(&["--compare", "main"])).expect("compare");
        assert_eq!(
            (ab.compare, ab.duration_s, ab.products),
            (Some(("main".into(), 6)), 5, 50_000)
        );
        let ab = parse_options(&args(&["--compare", "HEAD~1", "--rounds", "4", "--smoke"]))
            .expect("compare");
        assert_eq!(ab.compare, Some(("HEAD~1".into(), 4)));
        assert!(parse_options(&args(&["--rounds", "4"])).is_err());
        assert!(parse_options(&args(&["--compare", "main", "--rounds", "1"])).is_err());
        assert!(parse_options(&args(&["--compare", "main", "--scale"])).is_err());
        assert!(parse_options(&args(&["--record"])).expect("record").record);
        assert_eq!(
            parse_options(&args(&["--scale"])).expect("scale").products,
            10_000
        );
        let t = parse_options(&args(&["--compare", "HEAD", "--traced", "0.01"])).expect("t");
        assert_eq!(t.traced, Some(0.01));
        assert!(parse_options(&args(&["--traced", "0.01"])).is_err());
        assert!(parse_options(&args(&["--compare", "HEAD", "--traced", "2"])).is_err());
        assert!(parse_options(&args(&["--record", "--smoke"])).is_err());
        let o = parse_options(&args(&["--original", "--rounds", "3"])).expect("original");
        assert_eq!((o.original, o.duration_s), (Some(3), 5));
        assert_eq!(
            parse_options(&args(&["--original"])).expect("o").original,
            Some(6)
        );
        assert!(parse_options(&args(&["--original", "--compare", "main"])).is_err());
        assert_eq!(parse_options(&args(&[])).expect("plain").original, None);
    }
}
