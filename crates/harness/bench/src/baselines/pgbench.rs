//! pgbench's prepared primary-key select: the ceiling of one PostgreSQL query here.

use std::{
    path::Path,
    process::{Command, Stdio},
};

use anyhow::Context as _;

use cacheme_harness::http;

use crate::{common::write, wrk::LoadResult};

/// pgbench's summary lines and the latencies (µs, third column) of its per-transaction logs.
fn parse_pgbench(stdout: &str, latencies_us: &mut [f64]) -> anyhow::Result<LoadResult> {
    let mut result = LoadResult::default();
    for line in stdout.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("tps = ") {
            result.rps = rest
                .split_whitespace()
                .next()
                .unwrap_or("")
                .parse()
                .context("tps")?;
        } else if let Some(rest) = line.strip_prefix("number of transactions actually processed:") {
            result.requests = rest
                .split('/')
                .next()
                .unwrap_or("")
                .trim()
                .parse()
                .context("transactions")?;
        } else if let Some(rest) = line.strip_prefix("number of failed transactions:") {
            result.errors.status = rest
                .split_whitespace()
                .next()
                .unwrap_or("")
                .parse()
                .context("failed transactions")?;
        } else if let Some(rest) = line.strip_prefix("duration:") {
            result.duration_s = rest
                .split_whitespace()
                .next()
                .unwrap_or("")
                .parse()
                .unwrap_or_default();
        }
    }
    anyhow::ensure!(result.rps > 0.0, "no tps in pgbench output:\n{stdout}");
    latencies_us.sort_by(f64::total_cmp);
    let ms = |p| http::percentile(latencies_us, p).map(|us| us / 1000.0);
    result.p50_ms = ms(50.0);
    result.p99_ms = ms(99.0);
    result.p999_ms = ms(99.9);
    result.max_ms = ms(100.0);
    Ok(result)
}

fn pgbench_log_latencies(text: &str) -> impl Iterator<Item = f64> + '_ {
    text.lines()
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<f64>().ok())
}

pub fn pgbench(
    bin: &Path,
    database_url: &str,
    last_id: u64,
    clients: u32,
    duration_s: u64,
    out: &Path,
) -> anyhow::Result<LoadResult> {
    let script = out.join("pgbench-select.sql");
    write(
        &script,
        &format!(
            "\\set id random(1, {last_id})\n\
             SELECT id, name, description, price, category, created_at, updated_at FROM products WHERE id = :id;\n"
        ),
    )?;
    let logs = out.join("pgbench-logs");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs)?;
    let output = Command::new(bin)
        .args([
            "-n",
            "-M",
            "prepared",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
        ])
        .args(["-T", &duration_s.to_string(), "-l"])
        .arg(format!("--log-prefix={}", logs.join("pgbench").display()))
        .arg("-f")
        .arg(&script)
        .arg(database_url)
        .stdin(Stdio::null())
        .output()
        .context("cannot run pgbench")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "pgbench failed ({}): {stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(&logs)? {
        let text = std::fs::read_to_string(entry?.path())?;
        latencies.extend(pgbench_log_latencies(&text));
    }
    let result = parse_pgbench(&stdout, &mut latencies)?;
    let _ = std::fs::remove_dir_all(&logs);
    eprintln!(
        "    {:.0} tps, p50 {:.2} ms, p99 {:.2} ms",
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
    fn reads_pgbench_summary_and_logs() {
        let stdout = "transaction type: /tmp/x.sql\nscaling factor: 1\nquery mode: prepared\n\
                      number of clients: 10\nnumber of threads: 2\nmaximum number of tries: 1\n\
                      duration: 10 s\nnumber of transactions actually processed: 180000\n\
                      number of failed transactions: 0 (0.000%)\nlatency average = 0.55 ms\n\
                      initial connection time = 12.3 ms\ntps = 18000.123456 (without initial connection time)\n";
        let log = "0 1 420 0 1700000000 1\n1 1 510 0 1700000000 2\n0 2 600 0 1700000000 3\n";
        let mut lat: Vec<f64> = pgbench_log_latencies(log).collect();
        assert_eq!(lat, vec![420.0, 510.0, 600.0]);
        let r = parse_pgbench(stdout, &mut lat).expect("pgbench");
        assert!((r.rps - 18_000.123_456).abs() < 1e-6);
        assert_eq!(r.requests, 180_000);
        assert_eq!(r.duration_s, 10.0);
        assert_eq!(r.p50_ms, Some(0.51));
        assert_eq!(r.p999_ms, Some(0.6));
        assert!(parse_pgbench("nothing", &mut []).is_err());
    }
}
