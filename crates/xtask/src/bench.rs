//! `cargo xtask bench`: the load benchmark of issue 8, with its baselines, in one run.
//!
//! It builds the API in release mode, starts a throwaway PostgreSQL and Redis, seeds N
//! products, starts two API processes (L1 on, L1 off) and drives them with `wrk`; in the
//! same run it measures the machine's ceilings (nginx static answer, `redis-benchmark` GET,
//! `pgbench` prepared primary-key select) so every figure is reported as a ratio.
//! Output: `target/bench/report.md`, `throughput.svg`, `latency.svg` (and `report.json` with `--json`).

mod http;
mod report;
mod wrk;
mod zipf;

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use cacheme_testsupport::{
    PostgresServer, RedisServer, free_port, port_open, require_binary, with_database,
};

use crate::{cargo, run, workspace_root};
use report::{Report, Row, Target, ratio};
use wrk::{LoadResult, WrkRun};

/// Connections of the main scenarios and of the Redis baseline.
const CONNECTIONS: u32 = 50;
const SWEEP: [u32; 4] = [10, 50, 200, 1000];
const STAMPEDE: usize = 500;
const DB_MAX_CONNECTIONS: u32 = 10;
const HOT_ID: u64 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub smoke: bool,
    pub duration_s: u64,
    pub products: u64,
    pub json: bool,
}

pub fn parse_options(args: &[String]) -> anyhow::Result<Options> {
    let mut smoke = false;
    let mut json = false;
    let mut duration = None;
    let mut products = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> anyhow::Result<u64> {
            let v = it.next().with_context(|| format!("{name} needs a value"))?;
            v.parse()
                .with_context(|| format!("{name} takes a whole number, not {v:?}"))
        };
        match arg.as_str() {
            "--smoke" => smoke = true,
            "--json" => json = true,
            "--duration" => duration = Some(value("--duration")?),
            "--products" => products = Some(value("--products")?),
            other => bail!(
                "unknown bench option {other:?} (options: --smoke, --duration SECS, --products N, --json)"
            ),
        }
    }
    let duration_s = duration.unwrap_or(if smoke { 2 } else { 10 });
    let products = products.unwrap_or(if smoke { 2_000 } else { 10_000 });
    anyhow::ensure!(
        (1..=600).contains(&duration_s),
        "--duration must be 1..=600 seconds"
    );
    anyhow::ensure!(
        (20..=10_000_000).contains(&products),
        "--products must be 20..=10000000"
    );
    Ok(Options {
        smoke,
        duration_s,
        products,
        json,
    })
}

pub fn bench(args: &[String]) -> anyhow::Result<()> {
    let opts = parse_options(args)?;
    let root = workspace_root();
    let out = root.join("target").join("bench");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;

    let tools = Tools::find()?;
    let mut build = cargo();
    build.args(["build", "--release", "--package", "cacheme-api"]);
    run("cargo build --release --package cacheme-api", build)?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let api_bin = target_dir.join("release").join("cacheme-api");

    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    // Servers first: they are dropped last, after the API processes.
    step("starting a throwaway PostgreSQL and Redis");
    let postgres = PostgresServer::start()?;
    let redis = RedisServer::start()?;
    let database_url = with_database(&postgres.admin_url(), "cacheme_bench");

    let mut ready_ms = Vec::new();
    let settings = api_settings();
    step("starting the API (L1 on); it creates and migrates the database");
    let (api, ms) = Api::start(&api_bin, "api-l1", &database_url, &redis.url(), true, &out)?;
    ready_ms.push((
        "first start, creating + migrating the database".to_owned(),
        ms,
    ));

    let last_id = seed(&tools.psql, &database_url, opts.products)?;
    step("starting a second API process with L1 off");
    let (api_l2, ms) = Api::start(&api_bin, "api-l2", &database_url, &redis.url(), false, &out)?;
    ready_ms.push(("L1-off process, schema present".to_owned(), ms));

    let nofile = soft_nofile();
    let ctx = Ctx {
        tools: &tools,
        out: &out,
        duration_s: opts.duration_s,
        nofile,
    };
    let mut rows = Vec::new();

    // Baselines.
    step("baseline: nginx static 200-byte answer");
    let nginx_row = {
        let nginx = Nginx::start(&tools.nginx, &out.join("nginx"))?;
        let mut row = Row::new("nginx static 200 B", "baseline", "wrk");
        row.connections = CONNECTIONS;
        row.load = ctx.wrk(
            &format!("http://127.0.0.1:{}/", nginx.port),
            CONNECTIONS,
            &ctx.script("static.lua", &wrk::static_script())?,
        )?;
        row
    };
    rows.push(nginx_row.clone());
    step("baseline: redis-benchmark GET");
    let mut redis_row = Row::new("redis-benchmark GET", "baseline", "redis-benchmark");
    redis_row.connections = CONNECTIONS;
    redis_row.load = redis_benchmark(
        &tools.redis_benchmark,
        redis.port(),
        CONNECTIONS,
        opts.duration_s,
    )?;
    rows.push(redis_row.clone());
    step("baseline: pgbench prepared primary-key select");
    let mut pg_row = Row::new("pgbench PK select", "baseline", "pgbench");
    pg_row.connections = DB_MAX_CONNECTIONS;
    pg_row.load = pgbench(
        &tools.pgbench,
        &database_url,
        last_id,
        DB_MAX_CONNECTIONS,
        opts.duration_s,
        &out,
    )?;
    rows.push(pg_row.clone());

    // Scenarios.
    let static_lua = ctx.script("static.lua", &wrk::static_script())?;
    let hot = format!("/products/{HOT_ID}");
    step("L1 hits (one hot product, L1 on)");
    api.warm(&hot)?;
    let mut row = ctx.measure(&api, "L1 hits", "scenario", CONNECTIONS, |c| {
        c.wrk(&api.url(&hot), CONNECTIONS, &static_lua)
    })?;
    row.baseline = Some(nginx_row.scenario.clone());
    row.ratio = ratio(row.load.rps, nginx_row.load.rps);
    let l1 = row.clone();
    rows.push(row);

    step("Redis hits (one hot product, L1 off)");
    api_l2.warm(&hot)?;
    let mut row = ctx.measure(
        &api_l2,
        "Redis hits (L1 off)",
        "scenario",
        CONNECTIONS,
        |c| c.wrk(&api_l2.url(&hot), CONNECTIONS, &static_lua),
    )?;
    row.baseline = Some(redis_row.scenario.clone());
    row.ratio = ratio(row.load.rps, redis_row.load.rps);
    let l2 = row.clone();
    rows.push(row);

    step("misses on distinct ids (cache cleared)");
    let mut row = ctx.misses(
        &api,
        "misses (distinct ids)",
        "scenario",
        CONNECTIONS,
        last_id,
    )?;
    row.baseline = Some(pg_row.scenario.clone());
    row.ratio = ratio(row.load.rps, pg_row.load.rps);
    let misses = row.clone();
    rows.push(row);

    step("Zipf-skewed mix: 95% GET, 5% PATCH");
    api.clear()?;
    let sequence = zipf::mixed_sequence(last_id as usize, 50_000, 5, 0x5eed);
    let mix_lua = ctx.script("zipf-mix.lua", &wrk::mix_script(&sequence))?;
    let mut row = ctx.measure(&api, "Zipf mix 95/5", "scenario", CONNECTIONS, |c| {
        c.wrk(&api.url("/"), CONNECTIONS, &mix_lua)
    })?;
    row.note = "Zipf s=0.99 over all products, L1 on".into();
    rows.push(row);

    step(&format!(
        "stampede: {STAMPEDE} concurrent GETs on one cold product"
    ));
    let rounds = if opts.smoke { 2 } else { 5 };
    let (row, per_round) = stampede(&api, last_id, rounds)?;
    let stampede_row = row.clone();
    rows.push(row);

    let mut sweep_hits = Vec::new();
    let mut sweep_misses = Vec::new();
    api.warm(&hot)?;
    for &c in &SWEEP {
        step(&format!("sweep: hits at {c} connections"));
        let row = ctx.measure(&api, "sweep hits", "sweep", c, |ctx| {
            ctx.wrk(&api.url(&hot), c, &static_lua)
        })?;
        sweep_hits.push(row.clone());
        rows.push(row);
    }
    for &c in &SWEEP {
        step(&format!("sweep: misses at {c} connections"));
        let row = ctx.misses(&api, "sweep misses", "sweep", c, last_id)?;
        sweep_misses.push(row.clone());
        rows.push(row);
    }

    let peak_rss = rows.iter().filter_map(|r| r.peak_rss_kib).max();
    let targets = judge(&Judged {
        l1: &l1,
        l2: &l2,
        misses: &misses,
        stampede_rounds: &per_round,
        stampede: &stampede_row,
        sweep_hits: &sweep_hits,
        sweep_misses: &sweep_misses,
        peak_rss_kib: peak_rss,
        ready_ms: ready_ms.get(1).map(|(_, ms)| *ms),
    });
    drop(api);
    drop(api_l2);

    let report = Report {
        commit: commit_description(&root),
        started_unix,
        smoke: opts.smoke,
        duration_s: opts.duration_s,
        products: last_id,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu: cpu_model(),
        api_settings: settings,
        ready_ms,
        rows,
        targets,
    };
    write(&out.join("report.md"), &report::markdown(&report))?;
    write(
        &out.join("throughput.svg"),
        &report::throughput_svg(&report.rows),
    )?;
    write(&out.join("latency.svg"), &report::latency_svg(&report.rows))?;
    eprintln!("\n{}", report::markdown_table(&report.rows));
    eprintln!("{}", report::targets_table(&report.targets));
    if opts.json {
        let json = serde_json::to_string_pretty(&report)?;
        write(&out.join("report.json"), &json)?;
        println!("{json}");
    }
    eprintln!("==> report: {}", out.join("report.md").display());
    let missed: Vec<&str> = report
        .targets
        .iter()
        .filter(|t| !t.met)
        .map(|t| t.name.as_str())
        .collect();
    if opts.smoke {
        eprintln!(
            "==> smoke run: {} target(s) not met, not asserted",
            missed.len()
        );
    } else if !missed.is_empty() {
        bail!("{} target(s) missed: {}", missed.len(), missed.join("; "));
    }
    drop(redis);
    drop(postgres);
    Ok(())
}

fn step(what: &str) {
    eprintln!("==> {what}");
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[derive(Debug)]
struct Tools {
    wrk: PathBuf,
    nginx: PathBuf,
    redis_benchmark: PathBuf,
    pgbench: PathBuf,
    psql: PathBuf,
}

impl Tools {
    fn find() -> anyhow::Result<Self> {
        Ok(Self {
            wrk: require_binary("wrk", "wrk")?,
            // Debian puts nginx in /usr/sbin, which a non-root PATH may lack.
            nginx: require_binary("nginx", "nginx").or_else(|e| {
                let sbin = PathBuf::from("/usr/sbin/nginx");
                if sbin.is_file() { Ok(sbin) } else { Err(e) }
            })?,
            redis_benchmark: require_binary("redis-benchmark", "redis-tools")?,
            pgbench: require_binary("pgbench", "postgresql")?,
            psql: require_binary("psql", "postgresql-client")?,
        })
    }
}

/// Settings the API processes get beyond DATABASE_URL, REDIS_URL, BIND_ADDR and L1_ENABLED.
const API_ENV: &[(&str, &str)] = &[
    ("RUST_LOG", "warn"),
    // Load must not trip the Redis breaker: a slow answer under load is still an answer.
    ("REDIS_TIMEOUT_MS", "1000"),
    // The Zipf mix writes and the harness clears the cache between scenarios; a throwaway
    // instance on loopback.
    ("ALLOW_ANONYMOUS_WRITES", "true"),
];

fn api_settings() -> Vec<String> {
    let mut s: Vec<String> = API_ENV.iter().map(|(k, v)| format!("{k}={v}")).collect();
    s.push(format!(
        "DB_MAX_CONNECTIONS={DB_MAX_CONNECTIONS} (default); other settings default"
    ));
    s
}

/// A `cacheme-api` process of our own.
#[derive(Debug)]
struct Api {
    child: Child,
    port: u16,
}

impl Api {
    /// Spawns it and returns with the time from spawn to the first `200` from `/readyz`.
    fn start(
        bin: &Path,
        name: &str,
        database_url: &str,
        redis_url: &str,
        l1: bool,
        out: &Path,
    ) -> anyhow::Result<(Self, f64)> {
        let port = free_port()?;
        let log_path = out.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path)?;
        let mut cmd = Command::new(bin);
        for var in [
            "ADMIN_TOKEN",
            "STATIC_DIR",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "SEED_FILE",
        ] {
            cmd.env_remove(var);
        }
        cmd.envs(API_ENV.iter().copied())
            .env("DATABASE_URL", database_url)
            .env("REDIS_URL", redis_url)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("L1_ENABLED", l1.to_string())
            .env("DB_MAX_CONNECTIONS", DB_MAX_CONNECTIONS.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let start = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let mut api = Self { child, port };
        let deadline = start + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = http::request(port, "GET", "/readyz", None) {
                break;
            }
            if let Some(status) = api.child.try_wait()? {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                bail!("{name} exited with {status} before it was ready:\n{log}");
            }
            if Instant::now() > deadline {
                bail!(
                    "{name} was not ready within 60 s (log: {})",
                    log_path.display()
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        eprintln!(
            "    {name} ready on port {port} after {ms:.0} ms (pid {})",
            api.child.id()
        );
        Ok((api, ms))
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn db_queries(&self) -> anyhow::Result<u64> {
        db_queries(self.port)
    }

    fn clear(&self) -> anyhow::Result<()> {
        let (status, body) = http::request(self.port, "DELETE", "/cache/clear", None)?;
        anyhow::ensure!(status == 200, "/cache/clear answered {status}: {body}");
        Ok(())
    }

    /// Two GETs, so the product is in every tier this process has.
    fn warm(&self, path: &str) -> anyhow::Result<()> {
        for _ in 0..2 {
            let (status, body) = http::request(self.port, "GET", path, None)?;
            anyhow::ensure!(status == 200, "GET {path} answered {status}: {body}");
        }
        Ok(())
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// `app_stats.db_queries` of the API on `port`: product queries that process made.
fn db_queries(port: u16) -> anyhow::Result<u64> {
    let (status, body) = http::request(port, "GET", "/cache/stats", None)?;
    anyhow::ensure!(status == 200, "/cache/stats answered {status}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).context("/cache/stats is not JSON")?;
    v["app_stats"]["db_queries"]
        .as_u64()
        .context("/cache/stats has no app_stats.db_queries")
}

/// Watches `db_queries` while a run lasts and tells when it last grew, since wrk keeps its clock
/// running after a script stopped its threads (the distinct ids were used up).
#[derive(Debug)]
struct QueryWatch {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Option<Duration>>,
}

impl QueryWatch {
    fn start(port: u16) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let start = Instant::now();
            let mut last = db_queries(port).ok();
            let mut last_change = None;
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(25));
                let now = db_queries(port).ok();
                if now.is_some() && now != last {
                    last = now;
                    last_change = Some(start.elapsed());
                }
            }
            last_change
        });
        Self { stop, handle }
    }

    /// Time from start to the last growth of the counter.
    fn finish(self) -> Option<Duration> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().ok().flatten()
    }
}

/// When the ids ran out well before wrk's clock stopped, the rate over the active time instead.
fn active_rate(load: &mut LoadResult, active: Option<Duration>) -> bool {
    let Some(active) = active else { return false };
    let active_s = active.as_secs_f64() + 0.025;
    if load.requests == 0 || active_s + 0.25 >= load.duration_s {
        return false;
    }
    load.duration_s = active_s;
    load.rps = load.requests as f64 / active_s;
    true
}

/// SIGTERM, up to 5 s of grace, then SIGKILL.
fn terminate(child: &mut Child) {
    cacheme_testsupport::terminate(child, Duration::from_secs(5));
}

/// Peak resident set (`VmHWM`) from a `/proc/<pid>/status` text, in KiB.
fn parse_vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .as_deref()
        .and_then(parse_vm_hwm)
}

/// Resets the peak so the next reading is this scenario's own (`5` → clear_refs resets VmHWM).
fn reset_peak_rss(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

fn soft_nofile() -> u64 {
    Command::new("sh")
        .args(["-c", "ulimit -n"])
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            if text == "unlimited" {
                Some(u64::MAX)
            } else {
                text.parse().ok()
            }
        })
        .unwrap_or(1024)
}

#[derive(Debug)]
struct Ctx<'a> {
    tools: &'a Tools,
    out: &'a Path,
    duration_s: u64,
    nofile: u64,
}

impl Ctx<'_> {
    fn script(&self, name: &str, text: &str) -> anyhow::Result<PathBuf> {
        let path = self.out.join(name);
        write(&path, text)?;
        Ok(path)
    }

    fn wrk(&self, url: &str, connections: u32, script: &Path) -> anyhow::Result<LoadResult> {
        let result = wrk::run(
            &self.tools.wrk,
            &WrkRun {
                url: url.to_owned(),
                connections,
                duration_s: self.duration_s,
                script,
            },
            self.nofile,
        )?;
        anyhow::ensure!(
            result.requests > 0,
            "wrk completed no request against {url}"
        );
        eprintln!(
            "    {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} error(s)",
            result.rps,
            result.p50_ms.unwrap_or_default(),
            result.p99_ms.unwrap_or_default(),
            result.errors.total()
        );
        Ok(result)
    }

    /// Runs `load` against `api`, counting its database queries and its own peak RSS.
    fn measure(
        &self,
        api: &Api,
        scenario: &str,
        kind: &'static str,
        connections: u32,
        load: impl FnOnce(&Self) -> anyhow::Result<LoadResult>,
    ) -> anyhow::Result<Row> {
        let before = api.db_queries()?;
        reset_peak_rss(api.pid());
        let loadavg = report::loadavg_1m();
        let result = load(self)?;
        let mut row = Row::new(scenario, kind, "wrk");
        row.loadavg_before = loadavg;
        row.connections = connections;
        row.peak_rss_kib = peak_rss_kib(api.pid());
        row.db_queries = Some(api.db_queries()?.saturating_sub(before));
        row.load = result;
        Ok(row)
    }

    /// Cache cleared, then GETs of distinct ids 1..=last_id, each once at most.
    fn misses(
        &self,
        api: &Api,
        scenario: &str,
        kind: &'static str,
        connections: u32,
        last_id: u64,
    ) -> anyhow::Result<Row> {
        api.clear()?;
        let lua = self.script(
            &format!("misses-c{connections}.lua"),
            &wrk::distinct_ids_script(1, last_id, wrk::threads_for(connections)),
        )?;
        let watch = QueryWatch::start(api.port);
        let result = self.measure(api, scenario, kind, connections, |c| {
            c.wrk(&api.url("/"), connections, &lua)
        });
        let active = watch.finish();
        let mut row = result?;
        // Only a run that used up (nearly) every id stopped early; a stall is not an early stop.
        let used_up = row.db_queries.is_some_and(|q| q * 100 >= last_id * 95);
        row.note = if used_up && active_rate(&mut row.load, active) {
            format!(
                "the {last_id} ids were used up after {:.1} s: rate over that time",
                row.load.duration_s
            )
        } else {
            format!("{:.1} s, ids left over", row.load.duration_s)
        };
        eprintln!("    {}: {:.0} req/s", row.note, row.load.rps);
        Ok(row)
    }
}

/// `rounds` bursts of [`STAMPEDE`] simultaneous GETs, each on a product nobody asked for yet.
fn stampede(api: &Api, last_id: u64, rounds: u64) -> anyhow::Result<(Row, Vec<u64>)> {
    api.clear()?;
    reset_peak_rss(api.pid());
    let loadavg = report::loadavg_1m();
    let mut per_round = Vec::new();
    let mut latencies = Vec::new();
    let mut failures = 0;
    let mut wall = Duration::ZERO;
    for round in 0..rounds {
        let id = last_id - round;
        let before = api.db_queries()?;
        let burst = http::burst(api.port, &format!("/products/{id}"), STAMPEDE)?;
        let queries = api.db_queries()?.saturating_sub(before);
        eprintln!(
            "    round {}: product {id}, {} ok, {} failed, {queries} DB quer{} in {:.0} ms",
            round + 1,
            burst.latencies_ms.len(),
            burst.failures,
            if queries == 1 { "y" } else { "ies" },
            burst.wall.as_secs_f64() * 1000.0
        );
        per_round.push(queries);
        latencies.extend(burst.latencies_ms);
        failures += burst.failures;
        wall += burst.wall;
    }
    latencies.sort_by(f64::total_cmp);
    let mut row = Row::new(format!("stampede ×{STAMPEDE} cold"), "scenario", "threads");
    row.connections = STAMPEDE as u32;
    row.load.requests = latencies.len() as u64 + failures;
    row.load.duration_s = wall.as_secs_f64();
    row.load.rps = row.load.requests as f64 / wall.as_secs_f64().max(1e-9);
    row.load.p50_ms = http::percentile(&latencies, 50.0);
    row.load.p99_ms = http::percentile(&latencies, 99.0);
    row.load.p999_ms = http::percentile(&latencies, 99.9);
    row.load.max_ms = latencies.last().copied();
    row.load.errors.read = failures;
    row.db_queries = Some(per_round.iter().sum());
    row.peak_rss_kib = peak_rss_kib(api.pid());
    row.note = format!("{rounds} rounds, DB queries per round {per_round:?}");
    row.loadavg_before = loadavg;
    Ok((row, per_round))
}

/// What [`judge`] needs.
#[derive(Debug)]
struct Judged<'a> {
    l1: &'a Row,
    l2: &'a Row,
    misses: &'a Row,
    stampede_rounds: &'a [u64],
    stampede: &'a Row,
    sweep_hits: &'a [Row],
    sweep_misses: &'a [Row],
    peak_rss_kib: Option<u64>,
    ready_ms: Option<f64>,
}

fn ratio_target(name: &str, row: &Row, min: f64) -> Target {
    let r = row.ratio.unwrap_or(0.0);
    Target {
        name: name.to_owned(),
        goal: format!("≥ {min}× {}", row.baseline.as_deref().unwrap_or("baseline")),
        measured: format!("{r:.2}×"),
        ratio: row.ratio,
        met: r >= min,
    }
}

fn collapse_target(name: &str, sweep: &[Row]) -> Target {
    let best = sweep.iter().map(|r| r.load.rps).fold(0.0, f64::max);
    let last = sweep.iter().max_by_key(|r| r.connections);
    let (rps, errors, conns) = last.map_or((0.0, 0, 0), |r| {
        (r.load.rps, r.load.errors.total(), r.connections)
    });
    let r = ratio(rps, best);
    Target {
        name: name.to_owned(),
        goal: "at the most connections ≥ 0.8× the sweep's best, 0 errors".into(),
        measured: format!(
            "{:.2}× at {conns} connections, {errors} error(s)",
            r.unwrap_or(0.0)
        ),
        ratio: r,
        met: r.is_some_and(|r| r >= 0.8) && errors == 0,
    }
}

fn judge(j: &Judged<'_>) -> Vec<Target> {
    let stampede_ok = !j.stampede_rounds.is_empty() && j.stampede_rounds.iter().all(|&q| q == 1);
    vec![
        ratio_target("L1 hit path", j.l1, 0.6),
        ratio_target("Redis hit path (L1 off)", j.l2, 0.6),
        ratio_target("miss path", j.misses, 0.4),
        Target {
            name: format!("stampede of {STAMPEDE} on a cold product"),
            goal: "exactly 1 DB query (each round), 0 errors".into(),
            measured: format!(
                "{:?} DB queries per round, {} error(s)",
                j.stampede_rounds,
                j.stampede.load.errors.total()
            ),
            ratio: None,
            met: stampede_ok && j.stampede.load.errors.total() == 0,
        },
        collapse_target("no collapse: hits", j.sweep_hits),
        collapse_target("no collapse: misses", j.sweep_misses),
        Target {
            name: "peak RSS under load".into(),
            goal: "< 64 MiB".into(),
            measured: j.peak_rss_kib.map_or_else(
                || "unknown".into(),
                |k| format!("{:.1} MiB", k as f64 / 1024.0),
            ),
            ratio: j.peak_rss_kib.map(|k| k as f64 / (64.0 * 1024.0)),
            met: j.peak_rss_kib.is_some_and(|k| k < 64 * 1024),
        },
        Target {
            name: "ready after start".into(),
            goal: "< 1000 ms with a reachable, migrated database".into(),
            measured: j
                .ready_ms
                .map_or_else(|| "unknown".into(), |ms| format!("{ms:.0} ms")),
            ratio: j.ready_ms.map(|ms| ms / 1000.0),
            met: j.ready_ms.is_some_and(|ms| ms < 1000.0),
        },
    ]
}

fn psql(psql: &Path, url: &str, sql: &str) -> anyhow::Result<String> {
    let output = Command::new(psql)
        .args([
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .output()
        .context("cannot run psql")?;
    if !output.status.success() {
        bail!("psql failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Seed SQL for ids `from..=to` of the generated catalogue.
fn seed_sql(from: u64, to: u64) -> String {
    format!(
        "INSERT INTO products (name, description, price, category) \
         SELECT 'Bench product ' || g, \
                'Generated by cargo xtask bench: item ' || g || ', a plausible product description.', \
                (g % 1000) + 0.99, \
                (ARRAY['Laptops','Smartphones','Audio','Gaming','TVs','Tablets'])[1 + g % 6] \
         FROM generate_series({from}, {to}) AS g"
    )
}

fn progress_bar(done: u64, total: u64, width: usize) -> String {
    let filled = if total == 0 {
        width
    } else {
        (done.min(total) as usize * width) / total as usize
    };
    format!(
        "[{}{}] {:>3}% ({done}/{total})",
        "#".repeat(filled),
        " ".repeat(width - filled),
        (done.min(total) * 100).checked_div(total).unwrap_or(100)
    )
}

/// Tops the table up to `products` rows, with a progress bar; returns the highest id.
fn seed(psql_bin: &Path, url: &str, products: u64) -> anyhow::Result<u64> {
    let existing: u64 = psql(psql_bin, url, "SELECT count(*) FROM products")?
        .parse()
        .context("count(*)")?;
    let missing = products.saturating_sub(existing);
    step(&format!("seeding {missing} products (to {products})"));
    let chunk = (missing / 20).max(500);
    let mut done = 0;
    while done < missing {
        let n = chunk.min(missing - done);
        psql(
            psql_bin,
            url,
            &seed_sql(existing + done + 1, existing + done + n),
        )?;
        done += n;
        eprint!("\r    {}", progress_bar(done, missing, 40));
        let _ = std::io::stderr().flush();
    }
    if missing > 0 {
        eprintln!();
    }
    psql(psql_bin, url, "ANALYZE products")?;
    psql(psql_bin, url, "SELECT max(id) FROM products")?
        .parse()
        .context("max(id)")
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

fn commit_description(root: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let head = git(&["rev-parse", "--short", "HEAD"]);
    let dirty = git(&[
        "status",
        "--porcelain",
        "--",
        "crates/api",
        "crates/telemetry",
    ]);
    if dirty.is_empty() {
        head
    } else {
        format!("{head} + uncommitted changes in crates/api or crates/telemetry")
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
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
            (false, 10, 10_000, false)
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
    }

    #[test]
    fn reads_peak_rss_from_proc_status() {
        let status =
            "Name:\tcacheme-api\nVmPeak:\t  123456 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   18000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(20_480));
        assert_eq!(parse_vm_hwm("Name: x\n"), None);
        // Our own process has one.
        assert!(peak_rss_kib(std::process::id()).is_some_and(|k| k > 0));
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
    fn rate_over_the_active_time_when_ids_ran_out() {
        let mut load = LoadResult {
            requests: 2_000,
            duration_s: 10.0,
            rps: 200.0,
            ..LoadResult::default()
        };
        assert!(active_rate(&mut load, Some(Duration::from_millis(1_975))));
        assert!((load.duration_s - 2.0).abs() < 1e-9);
        assert!((load.rps - 1_000.0).abs() < 1e-6);
        // Busy until the end, or no reading: wrk's numbers stand.
        let mut busy = LoadResult {
            requests: 2_000,
            duration_s: 2.0,
            rps: 1_000.0,
            ..LoadResult::default()
        };
        assert!(!active_rate(&mut busy, Some(Duration::from_millis(1_900))));
        assert!(!active_rate(&mut busy, None));
        assert!((busy.rps - 1_000.0).abs() < 1e-9);
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

    #[test]
    fn seed_sql_and_progress() {
        let sql = seed_sql(16, 515);
        assert!(sql.contains("generate_series(16, 515)"));
        assert_eq!(progress_bar(5, 10, 10), "[#####     ]  50% (5/10)");
        assert_eq!(progress_bar(10, 10, 4), "[####] 100% (10/10)");
        assert_eq!(progress_bar(0, 0, 2), "[##] 100% (0/0)");
    }

    fn row(rps: f64, conns: u32, errors: u64) -> Row {
        let mut r = Row::new("sweep hits", "sweep", "wrk");
        r.connections = conns;
        r.load.rps = rps;
        r.load.errors.timeout = errors;
        r
    }

    #[test]
    fn judges_collapse_and_ratios() {
        let sweep = [row(100.0, 10, 0), row(120.0, 50, 0), row(97.0, 1000, 0)];
        let t = collapse_target("hits", &sweep);
        assert!(t.met, "{t:?}");
        let sweep = [row(100.0, 10, 0), row(120.0, 50, 0), row(95.0, 1000, 0)];
        assert!(!collapse_target("hits", &sweep).met);
        let sweep = [row(100.0, 10, 0), row(99.0, 1000, 1)];
        assert!(!collapse_target("hits", &sweep).met);
        let mut l1 = row(60.0, 50, 0);
        l1.ratio = ratio(60.0, 100.0);
        l1.baseline = Some("nginx".into());
        assert!(ratio_target("L1", &l1, 0.6).met);
        assert!(!ratio_target("L1", &l1, 0.61).met);
    }
}
