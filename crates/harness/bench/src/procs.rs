//! The processes the benchmark runs and watches: `cacheme-api` instances, their query
//! counter, their peak memory, and how they are stopped.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use cacheme_testsupport::free_port;

use cacheme_harness::{api_env::api_command, http};

use super::common::DB_MAX_CONNECTIONS;

/// Settings the API processes get beyond DATABASE_URL, REDIS_URL, BIND_ADDR and L1_ENABLED.
const API_ENV: &[(&str, &str)] = &[
    ("RUST_LOG", "warn"),
    // Load must not trip the Redis breaker: a slow answer under load is still an answer.
    ("REDIS_TIMEOUT_MS", "1000"),
    // The Zipf mix writes and the harness clears the cache between scenarios; a throwaway
    // instance on loopback.
    ("ALLOW_ANONYMOUS_WRITES", "true"),
];

pub fn api_settings() -> Vec<String> {
    let mut s: Vec<String> = API_ENV.iter().map(|(k, v)| format!("{k}={v}")).collect();
    s.push(format!(
        "DB_MAX_CONNECTIONS={DB_MAX_CONNECTIONS} (default); other settings default"
    ));
    s
}

/// Every variable an API process of the benchmark gets: the one place that names them
/// (the tests hold each against the ones the API reads).
fn api_env(
    database_url: &str,
    redis_url: &str,
    port: u16,
    l1: bool,
    extra_env: &[(&str, &str)],
) -> Vec<(String, String)> {
    let owned = |(name, value): &(&str, &str)| ((*name).to_owned(), (*value).to_owned());
    let mut env: Vec<(String, String)> = API_ENV.iter().map(owned).collect();
    env.extend([
        ("DATABASE_URL".to_owned(), database_url.to_owned()),
        ("REDIS_URL".to_owned(), redis_url.to_owned()),
        ("BIND_ADDR".to_owned(), format!("127.0.0.1:{port}")),
        ("L1_ENABLED".to_owned(), l1.to_string()),
        (
            "DB_MAX_CONNECTIONS".to_owned(),
            DB_MAX_CONNECTIONS.to_string(),
        ),
    ]);
    env.extend(extra_env.iter().map(owned));
    env
}

/// A `cacheme-api` process of our own.
#[derive(Debug)]
pub struct Api {
    child: Child,
    pub port: u16,
}

impl Api {
    /// Spawns it and returns with the time from spawn to the first `200` from `/readyz`.
    pub fn start(
        bin: &Path,
        name: &str,
        database_url: &str,
        redis_url: &str,
        l1: bool,
        out: &Path,
    ) -> anyhow::Result<(Self, f64)> {
        Self::start_with(bin, name, database_url, redis_url, l1, &[], out)
    }

    /// [`Api::start`] with more settings (`REDIS_MODE=cluster`, say).
    pub fn start_with(
        bin: &Path,
        name: &str,
        database_url: &str,
        redis_url: &str,
        l1: bool,
        extra_env: &[(&str, &str)],
        out: &Path,
    ) -> anyhow::Result<(Self, f64)> {
        let port = free_port()?;
        let log_path = out.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path)?;
        let env = api_env(database_url, redis_url, port, l1, extra_env);
        let mut cmd = api_command(bin, &env);
        cmd.stdin(Stdio::null())
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

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn db_queries(&self) -> anyhow::Result<u64> {
        db_queries(self.port)
    }

    pub fn clear(&self) -> anyhow::Result<()> {
        let (status, body) = http::request(self.port, "DELETE", "/cache/clear", None)?;
        anyhow::ensure!(status == 200, "/cache/clear answered {status}: {body}");
        Ok(())
    }

    /// Two GETs, so the product is in every tier this process has.
    pub fn warm(&self, path: &str) -> anyhow::Result<()> {
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
pub struct QueryWatch {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Option<Duration>>,
}

impl QueryWatch {
    pub fn start(port: u16) -> Self {
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
    pub fn finish(self) -> Option<Duration> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().ok().flatten()
    }
}

/// SIGTERM, up to 5 s of grace, then SIGKILL.
pub fn terminate(child: &mut Child) {
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

pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .as_deref()
        .and_then(parse_vm_hwm)
}

/// Resets the peak so the next reading is this scenario's own (`5` → clear_refs resets VmHWM).
pub fn reset_peak_rss(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

pub fn soft_nofile() -> u64 {
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

/// Puts this process (and so what it starts: PostgreSQL, Redis, wrk) on core 1 when
/// there are two cores and `taskset`; the API processes go to core 0 one by one.
pub fn pin_harness() -> bool {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 {
        return false;
    }
    Command::new("taskset")
        .args(["-a", "-p", "-c", "1", &std::process::id().to_string()])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn pin_to_core_zero(pid: u32) {
    let _ = Command::new("taskset")
        .args(["-a", "-p", "-c", "0", &pid.to_string()])
        .output();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_peak_rss_from_proc_status() {
        let status =
            "Name:\tcacheme-api\nVmPeak:\t  123456 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   18000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(20_480));
        assert_eq!(parse_vm_hwm("Name: x\n"), None);
        // Our own process has one.
        assert!(peak_rss_kib(std::process::id()).is_some_and(|k| k > 0));
    }

    /// A misspelt name would measure the API's default for it, unnoticed.
    #[test]
    fn every_variable_an_api_process_gets_is_one_the_api_reads() {
        use cacheme_harness::api_env::unknown_names;
        let known = cacheme_api::env_names();
        let traced = crate::compare::traced_env("http://127.0.0.1:4318", 0.01);
        let traced: Vec<(&str, &str)> = traced.iter().map(|(k, v)| (*k, v.as_str())).collect();
        for extra in [&[][..], &crate::scale::CLUSTER_ENV[..], &traced[..]] {
            let env = api_env("postgres://x", "redis://x", 8080, true, extra);
            let names = env.iter().map(|(name, _)| name.as_str());
            assert_eq!(unknown_names(names, &known), [""; 0]);
        }
    }
}
