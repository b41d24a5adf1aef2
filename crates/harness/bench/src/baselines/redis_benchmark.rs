//! `redis-benchmark` GET: the ceiling of one Redis round trip here.

use std::{
    path::Path,
    process::{Command, Stdio},
};

use anyhow::Context as _;

use crate::wrk::LoadResult;

/// One row of `redis-benchmark --csv` by test name, as `LoadResult`.
fn parse_redis_csv(csv: &str, test: &str) -> anyhow::Result<LoadResult> {
    let unquote = |s: &str| s.trim().trim_matches('"').to_owned();
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .context("empty redis-benchmark output")?
        .split(',')
        .map(unquote)
        .collect();
    let row: Vec<String> = lines
        .map(|l| l.split(',').map(unquote).collect::<Vec<_>>())
        .find(|cells| cells.first().is_some_and(|c| c == test))
        .with_context(|| format!("no {test} line in redis-benchmark output:\n{csv}"))?;
    let field = |name: &str| -> Option<f64> {
        let i = header.iter().position(|h| h == name)?;
        row.get(i)?.parse().ok()
    };
    Ok(LoadResult {
        rps: field("rps").context("no rps column")?,
        p50_ms: field("p50_latency_ms"),
        p99_ms: field("p99_latency_ms"),
        max_ms: field("max_latency_ms"),
        ..LoadResult::default()
    })
}

pub fn redis_benchmark(
    bin: &Path,
    port: u16,
    connections: u32,
    duration_s: u64,
) -> anyhow::Result<LoadResult> {
    let run = |tests: &str, n: u64| -> anyhow::Result<String> {
        let output = Command::new("timeout")
            .arg(format!("{}", duration_s * 3 + 30))
            .arg(bin)
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-c", &connections.to_string(), "-n", &n.to_string()])
            .args(["-d", "200", "-t", tests, "--csv"])
            .stdin(Stdio::null())
            .output()
            .context("cannot run redis-benchmark")?;
        anyhow::ensure!(
            output.status.success(),
            "redis-benchmark failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    // The key GET reads must exist, with a product-sized value; a short run calibrates -n.
    run("set", 1000)?;
    let probe = parse_redis_csv(&run("get", 20_000)?, "GET")?;
    let n = ((probe.rps * duration_s as f64) as u64).clamp(10_000, 50_000_000);
    let mut result = parse_redis_csv(&run("get", n)?, "GET")?;
    result.requests = n;
    result.duration_s = n as f64 / result.rps.max(1.0);
    eprintln!(
        "    {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
        result.rps,
        result.p50_ms.unwrap_or_default(),
        result.p99_ms.unwrap_or_default()
    );
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_redis_benchmark_csv() {
        let csv = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                   \"GET\",\"61349.69\",\"0.431\",\"0.096\",\"0.415\",\"0.607\",\"0.783\",\"2.039\"\n";
        let r = parse_redis_csv(csv, "GET").expect("csv");
        assert!((r.rps - 61_349.69).abs() < 1e-6);
        assert_eq!(r.p50_ms, Some(0.415));
        assert_eq!(r.p99_ms, Some(0.783));
        assert_eq!(r.max_ms, Some(2.039));
        assert!(parse_redis_csv(csv, "SET").is_err());
        assert!(parse_redis_csv("", "GET").is_err());
    }
}
