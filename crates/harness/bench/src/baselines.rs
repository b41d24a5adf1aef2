//! The machine's ceilings, measured in the same run as the scenarios so every figure is
//! a ratio: nginx answering a static body, `redis-benchmark` GET, pgbench's prepared
//! primary-key select.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use cacheme_testsupport::{free_port, port_open};

use super::{
    CONNECTIONS, DB_MAX_CONNECTIONS, http,
    procs::terminate,
    report::Row,
    scenarios::Ctx,
    step, write,
    wrk::{self, LoadResult},
};

/// The machine's ceilings the scenarios are compared with.
#[derive(Debug)]
pub struct Baselines {
    pub nginx: Row,
    pub redis: Row,
    pub postgres: Row,
}

/// nginx's static answer under the hit scenarios' wrk command, `redis-benchmark` GET on
/// `redis_port`, and pgbench's prepared primary-key select on ids `1..=last_id`.
pub fn measure(
    ctx: &Ctx<'_>,
    redis_port: u16,
    database_url: &str,
    last_id: u64,
) -> anyhow::Result<Baselines> {
    step("baseline: nginx static 200-byte answer");
    let nginx = {
        let server = Nginx::start(&ctx.programs.nginx, &ctx.out.join("nginx"))?;
        let mut row = Row::new("nginx static 200 B", "baseline", "wrk");
        row.connections = CONNECTIONS;
        row.load = ctx.wrk(
            &format!("http://127.0.0.1:{}/", server.port),
            CONNECTIONS,
            &ctx.script("static.lua", &wrk::static_script())?,
        )?;
        row
    };
    step("baseline: redis-benchmark GET");
    let mut redis = Row::new("redis-benchmark GET", "baseline", "redis-benchmark");
    redis.connections = CONNECTIONS;
    redis.load = redis_benchmark(
        &ctx.programs.redis_benchmark,
        redis_port,
        CONNECTIONS,
        ctx.duration_s,
    )?;
    step("baseline: pgbench prepared primary-key select");
    let mut postgres = Row::new("pgbench PK select", "baseline", "pgbench");
    postgres.connections = DB_MAX_CONNECTIONS;
    postgres.load = pgbench(
        &ctx.programs.pgbench,
        database_url,
        last_id,
        DB_MAX_CONNECTIONS,
        ctx.duration_s,
        ctx.out,
    )?;
    Ok(Baselines {
        nginx,
        redis,
        postgres,
    })
}

impl Baselines {
    /// A path's composite limit: the rate of doing each of its parts one after another,
    /// `1 / Σ count/rate`, each part's rate being its baseline's in this run.
    pub fn composite(parts: &[(u32, f64)]) -> Option<f64> {
        let seconds_per_request: f64 = parts
            .iter()
            .map(|&(count, rate)| {
                if rate > 0.0 {
                    f64::from(count) / rate
                } else {
                    f64::INFINITY
                }
            })
            .sum();
        (seconds_per_request.is_finite() && seconds_per_request > 0.0)
            .then(|| 1.0 / seconds_per_request)
    }

    /// A Redis hit: HTTP (nginx) and one Redis round trip.
    pub fn redis_hit_limit(&self) -> Option<f64> {
        Self::composite(&[(1, self.nginx.load.rps), (1, self.redis.load.rps)])
    }

    /// A miss: HTTP, two Redis round trips (lookup, fill) and one PostgreSQL query.
    pub fn miss_limit(&self) -> Option<f64> {
        Self::composite(&[
            (1, self.nginx.load.rps),
            (2, self.redis.load.rps),
            (1, self.postgres.load.rps),
        ])
    }
}

/// nginx answering a fixed 200-byte body on a free loopback port.
#[derive(Debug)]
struct Nginx {
    child: Child,
    port: u16,
}

pub fn static_body() -> String {
    let head = r#"{"id":1,"source":"nginx","pad":""#;
    let tail = r#""}"#;
    format!("{head}{}{tail}", "x".repeat(200 - head.len() - tail.len()))
}

fn nginx_conf(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "worker_processes auto;\n\
         daemon off;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         events {{ worker_connections 8192; }}\n\
         http {{\n\
         \x20 access_log off;\n\
         \x20 keepalive_requests 1000000;\n\
         \x20 client_body_temp_path {d}/tmp/body;\n\
         \x20 proxy_temp_path {d}/tmp/proxy;\n\
         \x20 fastcgi_temp_path {d}/tmp/fastcgi;\n\
         \x20 uwsgi_temp_path {d}/tmp/uwsgi;\n\
         \x20 scgi_temp_path {d}/tmp/scgi;\n\
         \x20 server {{\n\
         \x20   listen 127.0.0.1:{port};\n\
         \x20   location / {{ default_type application/json; return 200 '{}'; }}\n\
         \x20 }}\n\
         }}\n",
        static_body()
    )
}

impl Nginx {
    fn start(nginx: &Path, dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir.join("tmp"))?;
        let port = free_port()?;
        let conf = dir.join("nginx.conf");
        write(&conf, &nginx_conf(dir, port))?;
        let mut child = Command::new(nginx)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start nginx")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !port_open(port) {
            if let Some(status) = child.try_wait()? {
                let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                bail!("nginx exited with {status}:\n{log}");
            }
            if Instant::now() > deadline {
                bail!("nginx did not listen on {port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let (status, body) = http::request(port, "GET", "/", None)?;
        anyhow::ensure!(
            status == 200 && body.len() == 200,
            "nginx answered {status} with {} bytes",
            body.len()
        );
        Ok(Self { child, port })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

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

fn redis_benchmark(
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

fn pgbench(
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
    fn a_composite_limit_adds_the_time_of_its_parts() {
        // 1/(1/100k + 1/100k) = 50k: HTTP and one round trip, each alone at 100k/s.
        let both = Baselines::composite(&[(1, 100_000.0), (1, 100_000.0)]).expect("rate");
        assert!((both - 50_000.0).abs() < 1e-6, "{both}");
        let miss =
            Baselines::composite(&[(1, 200_000.0), (2, 100_000.0), (1, 20_000.0)]).expect("rate");
        // 5 + 20 + 50 µs = 75 µs.
        assert!((miss - 1e6 / 75.0).abs() < 1e-6, "{miss}");
        assert_eq!(Baselines::composite(&[(1, 0.0)]), None);
        assert_eq!(Baselines::composite(&[]), None);
    }

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

    #[test]
    fn static_body_is_200_bytes_of_json() {
        let body = static_body();
        assert_eq!(body.len(), 200);
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["source"], "nginx");
        let conf = nginx_conf(Path::new("/tmp/n"), 8081);
        assert!(conf.contains("listen 127.0.0.1:8081;"));
        assert!(conf.contains(&format!("return 200 '{body}';")));
        assert!(conf.contains("daemon off;"));
    }
}
