//! `cargo xtask bench --original`: CacheMe against the demo it rebuilds, on the same
//! machine, in the same minutes (issue #24's "≥ 25× on hits").
//!
//! The original's backend is FastAPI + Uvicorn (Python) doing cache-aside in front of the
//! same PostgreSQL and Redis; its code is not published, so `original/app.py` rebuilds it
//! from its description, with every advantage that allows (asyncio clients with pools,
//! uvloop, httptools, no access log), pinned in `original/requirements.txt` and installed
//! into a virtual environment of its own (`target/bench/original/venv`, kept between runs).
//! It runs with two workers, as the original measurement did. Both services run on core
//! 0 and everything else (wrk, PostgreSQL, Redis, this harness) on core 1, so neither
//! gets more CPU than the other; the rounds alternate which side goes first, as
//! `--compare` does, and the ratio is taken per round.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use cacheme_testsupport::{PostgresServer, RedisServer, free_port, with_database};

use cacheme_harness::http;

use super::{
    common::{CONNECTIONS, Programs, step, write},
    compare_report::median,
    load::Ctx,
    procs::{Api, pin_harness, pin_to_core_zero, terminate},
    seed, wrk,
};
use cacheme_harness::run;

const APP: &str = include_str!("original/app.py");
const REQUIREMENTS: &str = include_str!("original/requirements.txt");

/// Uvicorn workers of the original (its measurement used two).
const WORKERS: u32 = 2;

/// Pause before each measured run, then 1 s of unmeasured load.
const SETTLE: Duration = Duration::from_secs(1);

/// The ratio the issue asks of a cache hit through CacheMe over one through the original.
pub const TARGET_RATIO: f64 = 25.0;

/// What is compared, per round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// The original, rebuilt: a Redis hit through FastAPI.
    Original,
    /// CacheMe with its defaults: an L1 hit.
    CacheMe,
    /// CacheMe with L1 off: a Redis hit, the same work as the original's.
    CacheMeRedis,
}

impl Side {
    const ALL: [Self; 3] = [Self::Original, Self::CacheMe, Self::CacheMeRedis];

    fn name(self) -> &'static str {
        match self {
            Self::Original => "original (FastAPI, 2 workers), Redis hit",
            Self::CacheMe => "CacheMe, L1 hit (defaults)",
            Self::CacheMeRedis => "CacheMe, Redis hit (L1 off)",
        }
    }
}

/// Runs the comparison and writes `target/bench/original.md`.
pub fn original(
    root: &Path,
    out: &Path,
    programs: &Programs,
    api_bin: &Path,
    rounds: u32,
    duration_s: u64,
) -> anyhow::Result<()> {
    let venv = ensure_venv(out)?;
    let pinned = pin_harness();
    step("starting a throwaway PostgreSQL and Redis");
    let postgres = PostgresServer::start()?;
    let redis = RedisServer::start()?;
    let database_url = with_database(&postgres.admin_url(), "cacheme_original");
    let (l1, _) = Api::start(
        api_bin,
        "original-cacheme-l1",
        &database_url,
        &redis.url(),
        true,
        out,
    )?;
    seed::seed(&programs.psql, &database_url, 1_000)?;
    let (l2, _) = Api::start(
        api_bin,
        "original-cacheme-l2",
        &database_url,
        &redis.url(),
        false,
        out,
    )?;
    let fastapi = Uvicorn::start(&venv, out, &database_url, &redis.url(), pinned)?;
    if pinned {
        pin_to_core_zero(l1.pid());
        pin_to_core_zero(l2.pid());
    }

    let ctx = Ctx {
        programs,
        out,
        duration_s,
        nofile: super::procs::soft_nofile(),
    };
    let warm_up = Ctx {
        duration_s: 1,
        ..ctx
    };
    let script = ctx.script("static.lua", &wrk::static_script())?;
    let hits = |port: u16| -> anyhow::Result<f64> {
        std::thread::sleep(SETTLE);
        for _ in 0..2 {
            let (status, body) = http::request(port, "GET", "/products/1", None)?;
            anyhow::ensure!(status == 200, "GET /products/1 answered {status}: {body}");
        }
        let url = format!("http://127.0.0.1:{port}/products/1");
        warm_up.wrk(&url, CONNECTIONS, &script)?;
        let result = ctx.wrk(&url, CONNECTIONS, &script)?;
        anyhow::ensure!(
            result.errors.total() == 0,
            "{url}: {} errors under load",
            result.errors.total()
        );
        Ok(result.rps)
    };
    let port = |side: Side| match side {
        Side::Original => fastapi.port,
        Side::CacheMe => l1.port,
        Side::CacheMeRedis => l2.port,
    };
    let mut rates: Vec<[f64; 3]> = Vec::new();
    for round in 0..rounds {
        let mut order = Side::ALL;
        if round % 2 == 1 {
            order.reverse();
        }
        let mut rate = [0.0; 3];
        for side in order {
            step(&format!("round {}/{rounds}: {}", round + 1, side.name()));
            rate[side as usize] = hits(port(side))?;
        }
        rates.push(rate);
    }
    drop(fastapi);
    drop((l1, l2));

    let text = markdown(
        &rates,
        duration_s,
        pinned,
        &super::publish::commit_description(root),
        &super::publish::host_description(),
    );
    write(&out.join("original.md"), &text)?;
    eprintln!("\n{text}");
    eprintln!("==> report: {}", out.join("original.md").display());
    drop(redis);
    drop(postgres);
    Ok(())
}

/// The per-round ratios of `side` over the original.
fn ratios(rates: &[[f64; 3]], side: Side) -> Vec<f64> {
    rates
        .iter()
        .filter(|r| r[Side::Original as usize] > 0.0)
        .map(|r| r[side as usize] / r[Side::Original as usize])
        .collect()
}

fn markdown(rates: &[[f64; 3]], duration_s: u64, pinned: bool, commit: &str, host: &str) -> String {
    let mut text = format!(
        "# CacheMe against the original (rebuilt FastAPI backend)\n\n\
         CacheMe at `{commit}` (release build) and the original rebuilt from its \
         description (`crates/harness/bench/src/original/app.py`, FastAPI + Uvicorn with \
         {WORKERS} workers, uvloop, httptools), one product read over and over, wrk c{CONNECTIONS}, \
         {duration_s} s per run after 1 s of unmeasured load, {} rounds alternating the order. \
         {} Host: {host}.\n\n| side | median req/s | per round |\n|---|--:|---|\n",
        rates.len(),
        if pinned {
            "Both services on core 0; wrk, PostgreSQL, Redis and the harness on core 1."
        } else {
            "Not pinned (one core, or no taskset)."
        }
    );
    for side in Side::ALL {
        let all: Vec<f64> = rates.iter().map(|r| r[side as usize]).collect();
        let each: Vec<String> = all.iter().map(|r| format!("{r:.0}")).collect();
        text.push_str(&format!(
            "| {} | {:.0} | {} |\n",
            side.name(),
            median(&all),
            each.join(", ")
        ));
    }
    text.push_str(
        "\n| CacheMe over the original | median × | spread | target |\n|---|--:|---|---|\n",
    );
    for side in [Side::CacheMe, Side::CacheMeRedis] {
        let r = ratios(rates, side);
        let (lo, hi) = r
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        let m = median(&r);
        text.push_str(&format!(
            "| {} | {m:.1}× | {lo:.1}× … {hi:.1}× | ≥ {TARGET_RATIO}×: {} |\n",
            side.name(),
            if m >= TARGET_RATIO { "met" } else { "missed" }
        ));
    }
    text
}

/// The virtual environment with the pinned requirements; rebuilt when they change.
fn ensure_venv(out: &Path) -> anyhow::Result<PathBuf> {
    let base = out.join("original");
    std::fs::create_dir_all(&base)?;
    write(&base.join("app.py"), APP)?;
    let venv = base.join("venv");
    let stamp = venv.join("requirements.installed");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == REQUIREMENTS)
        && venv.join("bin/uvicorn").is_file()
    {
        eprintln!(
            "==> the original's virtual environment: {} (cached)",
            venv.display()
        );
        return Ok(venv);
    }
    if venv.exists() {
        std::fs::remove_dir_all(&venv)
            .with_context(|| format!("cannot remove {}", venv.display()))?;
    }
    let mut create = Command::new("python3");
    create.args(["-m", "venv"]).arg(&venv);
    run(
        &format!("python3 -m venv {} (needs python3-venv)", venv.display()),
        create,
    )?;
    let requirements = base.join("requirements.txt");
    write(&requirements, REQUIREMENTS)?;
    let mut install = Command::new(venv.join("bin/pip"));
    install
        .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(&requirements);
    run(
        "pip install -r requirements.txt (FastAPI, Uvicorn, redis, asyncpg; from PyPI)",
        install,
    )?;
    write(&stamp, REQUIREMENTS)?;
    Ok(venv)
}

/// The original's Uvicorn and its workers.
struct Uvicorn {
    child: Child,
    port: u16,
}

impl Uvicorn {
    fn start(
        venv: &Path,
        out: &Path,
        database_url: &str,
        redis_url: &str,
        pinned: bool,
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let log_path = out.join("original-fastapi.log");
        let log = std::fs::File::create(&log_path)?;
        // taskset before Uvicorn forks its workers, so they inherit core 0.
        let uvicorn = venv.join("bin/uvicorn");
        let mut cmd = if pinned {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]).arg(&uvicorn);
            c
        } else {
            Command::new(&uvicorn)
        };
        cmd.args([
            "app:app",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .args(["--workers", &WORKERS.to_string()])
        .args(["--no-access-log", "--log-level", "warning"])
        .args(["--loop", "uvloop", "--http", "httptools"])
        .current_dir(out.join("original"))
        .env("DATABASE_URL", database_url)
        .env("REDIS_URL", redis_url)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
        let child = cmd.spawn().context("cannot start uvicorn")?;
        let mut uvicorn = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        // Both workers answer once the parent's socket is shared; a few health checks
        // in a row make it likely both have started.
        let mut healthy = 0;
        while healthy < 10 {
            match http::request(port, "GET", "/health", None) {
                Ok((200, _)) => healthy += 1,
                _ => healthy = 0,
            }
            if let Some(status) = uvicorn.child.try_wait()? {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                bail!("uvicorn exited with {status} before it answered:\n{log}");
            }
            if Instant::now() > deadline {
                bail!(
                    "the original did not answer within 60 s (log: {})",
                    log_path.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("    the original (FastAPI) answers on port {port}");
        Ok(uvicorn)
    }
}

impl Drop for Uvicorn {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_per_round_over_the_original() {
        let rates = [[1_000.0, 30_000.0, 20_000.0], [2_000.0, 50_000.0, 30_000.0]];
        assert_eq!(ratios(&rates, Side::CacheMe), [30.0, 25.0]);
        assert_eq!(ratios(&rates, Side::CacheMeRedis), [20.0, 15.0]);
        let text = markdown(&rates, 5, true, "abc1234", "Test CPU, 2 cores");
        assert!(text.contains("at `abc1234`"), "{text}");
        assert!(text.contains("Host: Test CPU, 2 cores."), "{text}");
        assert!(
            text.contains("| CacheMe, L1 hit (defaults) | 27.5× | 25.0× … 30.0× | ≥ 25×: met |"),
            "{text}"
        );
        assert!(
            text.contains(
                "| CacheMe, Redis hit (L1 off) | 17.5× | 15.0× … 20.0× | ≥ 25×: missed |"
            ),
            "{text}"
        );
    }
}
