//! wrk: the Lua scripts the scenarios need, running it, and reading its output.

use std::{fmt::Write as _, path::Path, process::Command};

use anyhow::{Context as _, bail};

/// What one load run measured (wrk, or a baseline tool brought to the same shape).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LoadResult {
    pub requests: u64,
    pub duration_s: f64,
    pub rps: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub errors: Errors,
}

/// wrk's error counters: `status` is "Non-2xx or 3xx responses", the rest are socket errors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Errors {
    pub connect: u64,
    pub read: u64,
    pub write: u64,
    pub timeout: u64,
    pub status: u64,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout + self.status
    }
}

/// The `done` hook every script ends with: one line wrk's text output does not have (p99.9, exact counts).
const DONE_HOOK: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d connect=%d read=%d write=%d timeout=%d status=%d p50_us=%d p99_us=%d p999_us=%d max_us=%d\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
"#;

/// A fixed request (wrk's fastest path) plus the result hook.
pub fn static_script() -> String {
    format!("-- cargo xtask bench: fixed request\n{DONE_HOOK}")
}

/// GETs of distinct ids `first..=last`, split between threads; a thread stops when its share is used up,
/// so every request is a miss as long as the cache was cleared before.
pub fn distinct_ids_script(first: u64, last: u64, threads: u32) -> String {
    format!(
        r#"-- cargo xtask bench: misses on distinct ids
local first, last, threads = {first}, {last}, {threads}
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
function init(args)
  nextid = first + (tid or 0)
end
request = function()
  local id = nextid
  if id > last then
    wrk.thread:stop()
    id = last
  end
  nextid = nextid + threads
  return wrk.format("GET", "/products/" .. id)
end
{DONE_HOOK}"#
    )
}

/// Replays `sequence` (positive: GET that id; negative: PATCH its name), each thread from its own offset.
pub fn mix_script(sequence: &[i64]) -> String {
    let mut ops = String::with_capacity(sequence.len() * 6);
    for (i, id) in sequence.iter().enumerate() {
        if i > 0 {
            ops.push(',');
        }
        let _ = write!(ops, "{id}");
    }
    format!(
        r#"-- cargo xtask bench: Zipf-skewed reads with a share of writes
local ops = "{ops}"
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
function init(args)
  seq = {{}}
  for v in string.gmatch(ops, "[^,]+") do seq[#seq + 1] = tonumber(v) end
  pos = ((tid or 0) * 7919) % #seq
  writes = 0
end
request = function()
  pos = pos % #seq + 1
  local id = seq[pos]
  if id < 0 then
    writes = writes + 1
    local body = '{{"name":"bench ' .. (tid or 0) .. '-' .. writes .. '"}}'
    return wrk.format("PATCH", "/products/" .. -id, {{["Content-Type"] = "application/json"}}, body)
  end
  return wrk.format("GET", "/products/" .. id)
end
{DONE_HOOK}"#
    )
}

/// One wrk run's settings.
#[derive(Debug, Clone)]
pub struct WrkRun<'a> {
    pub url: String,
    pub connections: u32,
    pub duration_s: u64,
    pub script: &'a Path,
}

pub fn threads_for(connections: u32) -> u32 {
    connections.clamp(1, 2)
}

/// Runs wrk (raising the open-file limit for the child when the connections need it).
pub fn run(wrk: &Path, spec: &WrkRun<'_>, soft_nofile: u64) -> anyhow::Result<LoadResult> {
    let args = vec![
        "-t".to_owned(),
        threads_for(spec.connections).to_string(),
        "-c".to_owned(),
        spec.connections.to_string(),
        "-d".to_owned(),
        format!("{}s", spec.duration_s),
        "--timeout".to_owned(),
        "10s".to_owned(),
        "--latency".to_owned(),
        "-s".to_owned(),
        spec.script.display().to_string(),
        spec.url.clone(),
    ];
    let needed = u64::from(spec.connections) + 64;
    let mut cmd = if needed > soft_nofile {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(r#"ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$0" "$@""#)
            .arg(wrk)
            .args(&args);
        c
    } else {
        let mut c = Command::new(wrk);
        c.args(&args);
        c
    };
    let output = cmd.output().context("cannot run wrk")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed ({}): {}{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse(&stdout).with_context(|| format!("cannot read wrk's output:\n{stdout}"))
}

/// A wrk duration such as `812.00us`, `1.23ms`, `2.00s` or `1.50m`, in milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let factor = match unit {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return None,
    };
    Some(value * factor)
}

/// Reads wrk's output: the `BENCH_RESULT` line of our `done` hook when present (exact counts and
/// p99.9), and otherwise wrk's own text (`Requests/sec`, `--latency` table, error lines).
pub fn parse(stdout: &str) -> anyhow::Result<LoadResult> {
    let mut result = LoadResult::default();
    let mut have_text_rps = false;
    let mut text_requests = None;
    for line in stdout.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            result.rps = rest.trim().parse().context("Requests/sec")?;
            have_text_rps = true;
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            result.errors.status = rest.trim().parse().context("Non-2xx")?;
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            for part in rest.split(',') {
                let mut words = part.split_whitespace();
                let (Some(kind), Some(count)) = (words.next(), words.next()) else {
                    continue;
                };
                let count: u64 = count.parse().context("socket error count")?;
                match kind {
                    "connect" => result.errors.connect = count,
                    "read" => result.errors.read = count,
                    "write" => result.errors.write = count,
                    "timeout" => result.errors.timeout = count,
                    _ => {}
                }
            }
        } else if line.contains("requests in") {
            // "123456 requests in 10.00s, 45.67MB read"
            if let Some((count, rest)) = line.split_once(" requests in ") {
                text_requests = count.trim().parse::<u64>().ok();
                if let Some(d) = rest.split(',').next().and_then(parse_duration_ms) {
                    result.duration_s = d / 1000.0;
                }
            }
        } else if let Some((pct, value)) = line.split_once('%') {
            let value = parse_duration_ms(value);
            match pct.trim() {
                "50" => result.p50_ms = value,
                "99" => result.p99_ms = value,
                _ => {}
            }
        }
    }
    if let Some(requests) = text_requests {
        result.requests = requests;
    }
    let hook = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("BENCH_RESULT "));
    if let Some(fields) = hook {
        let get = |key: &str| -> anyhow::Result<u64> {
            fields
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
                .with_context(|| format!("BENCH_RESULT has no {key}"))?
                .parse()
                .with_context(|| format!("BENCH_RESULT {key}"))
        };
        result.requests = get("requests")?;
        let duration_us = get("duration_us")?;
        result.duration_s = duration_us as f64 / 1e6;
        result.errors = Errors {
            connect: get("connect")?,
            read: get("read")?,
            write: get("write")?,
            timeout: get("timeout")?,
            status: get("status")?,
        };
        let ms = |us: u64| Some(us as f64 / 1000.0);
        result.p50_ms = ms(get("p50_us")?);
        result.p99_ms = ms(get("p99_us")?);
        result.p999_ms = ms(get("p999_us")?);
        result.max_ms = ms(get("max_us")?);
        if duration_us > 0 {
            result.rps = result.requests as f64 / (duration_us as f64 / 1e6);
        }
    } else if !have_text_rps {
        bail!("neither a BENCH_RESULT line nor Requests/sec in wrk's output");
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
Running 10s test @ http://127.0.0.1:8080/products/1
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.05ms  412.33us  21.40ms   89.12%
    Req/Sec    24.10k     1.52k   27.80k    71.00%
  Latency Distribution
     50%  812.00us
     75%    1.20ms
     90%    1.61ms
     99%    2.50ms
  479512 requests in 10.00s, 140.27MB read
  Socket errors: connect 0, read 3, write 0, timeout 7
  Non-2xx or 3xx responses: 12
Requests/sec:  47950.12
Transfer/sec:     14.03MB
";

    #[test]
    fn parses_wrk_text_output() {
        let r = parse(TEXT).expect("parse");
        assert_eq!(r.requests, 479_512);
        assert!((r.rps - 47_950.12).abs() < 1e-6);
        assert!((r.duration_s - 10.0).abs() < 1e-9);
        assert_eq!(r.p50_ms, Some(0.812));
        assert_eq!(r.p99_ms, Some(2.5));
        assert_eq!(r.p999_ms, None);
        assert_eq!(
            r.errors,
            Errors {
                connect: 0,
                read: 3,
                write: 0,
                timeout: 7,
                status: 12
            }
        );
        assert_eq!(r.errors.total(), 22);
    }

    #[test]
    fn the_done_hook_line_wins_over_text() {
        let out = format!(
            "{TEXT}BENCH_RESULT requests=479600 duration_us=10000000 connect=1 read=3 write=0 timeout=7 status=12 p50_us=811 p99_us=2504 p999_us=9120 max_us=21400\n"
        );
        let r = parse(&out).expect("parse");
        assert_eq!(r.requests, 479_600);
        assert!((r.rps - 47_960.0).abs() < 1e-6);
        assert_eq!(r.p50_ms, Some(0.811));
        assert_eq!(r.p999_ms, Some(9.12));
        assert_eq!(r.max_ms, Some(21.4));
        assert_eq!(r.errors.connect, 1);
        assert_eq!(r.errors.total(), 23);
    }

    #[test]
    fn rejects_output_without_numbers() {
        assert!(parse("unable to connect to 127.0.0.1:1 Connection refused\n").is_err());
        let broken = "BENCH_RESULT requests=1 duration_us=x\n";
        assert!(parse(broken).is_err());
    }

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration_ms("812.00us"), Some(0.812));
        assert_eq!(parse_duration_ms(" 1.20ms"), Some(1.2));
        assert_eq!(parse_duration_ms("2.00s"), Some(2000.0));
        assert_eq!(parse_duration_ms("1.50m"), Some(90_000.0));
        assert_eq!(parse_duration_ms("12"), None);
        assert_eq!(parse_duration_ms("1.0parsecs"), None);
    }

    #[test]
    fn scripts_carry_their_parameters_and_the_hook() {
        let s = distinct_ids_script(16, 10_000, 2);
        assert!(s.contains("local first, last, threads = 16, 10000, 2"));
        assert!(s.contains("BENCH_RESULT"));
        let m = mix_script(&[3, -7, 1]);
        assert!(m.contains(r#"local ops = "3,-7,1""#));
        assert!(m.contains(r#"'{"name":"bench '"#));
        assert!(m.contains("wrk.format(\"PATCH\""));
        assert!(static_script().contains("done = function"));
    }

    #[test]
    fn threads_never_exceed_connections_or_cores() {
        assert_eq!(threads_for(1), 1);
        assert_eq!(threads_for(10), 2);
        assert_eq!(threads_for(1000), 2);
    }
}
