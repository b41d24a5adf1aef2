//! `cargo xtask bench --scale`: the measured points of the scale story (docs/architecture.md). Redis
//! hits (L1 off) on a warm set of products read at random, through 1 and 2 API
//! processes, against one Redis and against a 3-master Redis Cluster (cluster mode);
//! L1 hits through 1 and 2 processes; and the memory the warm set takes on each node.
//! Every load runs for `--duration` with 50 connections in all (split between the
//! processes), so the rows compare capacity on this machine, where the load generator,
//! the API processes and every Redis share the same cores.
//!
//! Output: `target/bench/scale.md`.

use std::path::Path;

use anyhow::Context as _;
use cacheme_testsupport::{PostgresServer, RedisCluster, RedisServer, with_database};

use super::{
    common::{CONNECTIONS, Programs, step, write},
    load::Ctx,
    procs::Api,
    seed,
    wrk::LoadResult,
};

/// Products read at random (each warmed first).
const WARM_SET: u64 = 1000;

/// One measured point.
struct Point {
    what: String,
    processes: usize,
    rps: f64,
    p99_ms: f64,
}

fn random_ids_script(last: u64) -> String {
    format!(
        "request = function()\n  return wrk.format(\"GET\", \"/products/\" .. math.random(1, {last}))\nend\n"
    )
}

/// Runs wrk against every process at once, `CONNECTIONS` split between them.
fn load(ctx: &Ctx<'_>, apis: &[&Api], script: &Path) -> anyhow::Result<(f64, f64)> {
    let per = CONNECTIONS / u32::try_from(apis.len()).unwrap_or(1);
    let results: Vec<anyhow::Result<LoadResult>> = std::thread::scope(|scope| {
        let handles: Vec<_> = apis
            .iter()
            .map(|api| scope.spawn(move || ctx.wrk(&api.url("/products/1"), per, script)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("wrk thread panicked")))
            })
            .collect()
    });
    let mut rps = 0.0;
    let mut p99: f64 = 0.0;
    for result in results {
        let result = result?;
        rps += result.rps;
        p99 = p99.max(result.p99_ms.unwrap_or_default());
    }
    Ok((rps, p99))
}

fn warm(api: &Api) -> anyhow::Result<()> {
    for id in 1..=WARM_SET {
        api.warm(&format!("/products/{id}"))?;
    }
    Ok(())
}

/// `used_memory` of the Redis on `port`, in bytes.
fn used_memory(port: u16) -> anyhow::Result<u64> {
    let info = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "info", "memory"])
        .output()
        .context("cannot run redis-cli")?;
    String::from_utf8_lossy(&info.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .context("no used_memory in INFO")
}

/// What the cluster-mode processes get beyond the benchmark's settings.
pub(crate) const CLUSTER_ENV: [(&str, &str); 1] = [("REDIS_MODE", "cluster")];

pub fn scale(
    ctx: &Ctx<'_>,
    programs: &Programs,
    api_bin: &Path,
    products: u64,
) -> anyhow::Result<()> {
    let out = ctx.out;
    step("starting a throwaway PostgreSQL, one Redis and a 3-master Redis Cluster");
    let postgres = PostgresServer::start()?;
    let redis = RedisServer::start()?;
    let cluster = RedisCluster::start(3, 0)?;
    let database_url = with_database(&postgres.admin_url(), "cacheme_scale");
    let cluster_url = cluster.urls().join(",");
    let (first, _) = Api::start(
        api_bin,
        "scale-single-0",
        &database_url,
        &redis.url(),
        false,
        out,
    )?;
    seed::seed(&programs.psql, &database_url, products)?;
    let script = ctx.script("random-ids.lua", &random_ids_script(WARM_SET))?;
    let mut points = Vec::new();

    let memory_before = used_memory(redis.port())?;
    let cluster_before: u64 = cluster
        .ports()
        .iter()
        .map(|&p| used_memory(p))
        .sum::<anyhow::Result<u64>>()?;

    let mut cluster_first = None;
    for (label, url, env) in [
        ("Redis hits, one Redis", redis.url(), &[][..]),
        (
            "Redis hits, 3-master cluster",
            cluster_url.clone(),
            &CLUSTER_ENV[..],
        ),
    ] {
        let a: &Api = if env.is_empty() {
            &first
        } else {
            let (api, _) = Api::start_with(
                api_bin,
                "scale-cluster-0",
                &database_url,
                &url,
                false,
                env,
                out,
            )?;
            cluster_first.insert(api)
        };
        step(&format!("{label}: warming {WARM_SET} products"));
        warm(a)?;
        step(&format!("{label}, 1 API process"));
        let (rps, p99) = load(ctx, &[a], &script)?;
        points.push(Point {
            what: label.into(),
            processes: 1,
            rps,
            p99_ms: p99,
        });
        let name = if env.is_empty() {
            "scale-single-1"
        } else {
            "scale-cluster-1"
        };
        let (b, _) = Api::start_with(api_bin, name, &database_url, &url, false, env, out)?;
        step(&format!("{label}, 2 API processes"));
        let (rps, p99) = load(ctx, &[a, &b], &script)?;
        points.push(Point {
            what: label.into(),
            processes: 2,
            rps,
            p99_ms: p99,
        });
    }
    let memory_single = used_memory(redis.port())?.saturating_sub(memory_before);
    let per_node: Vec<(u16, u64)> = cluster
        .ports()
        .iter()
        .map(|&p| used_memory(p).map(|m| (p, m)))
        .collect::<anyhow::Result<_>>()?;
    let memory_cluster = per_node
        .iter()
        .map(|(_, m)| m)
        .sum::<u64>()
        .saturating_sub(cluster_before);

    for processes in [1usize, 2] {
        let apis: Vec<Api> = (0..processes)
            .map(|i| {
                Api::start(
                    api_bin,
                    &format!("scale-l1-{i}"),
                    &database_url,
                    &redis.url(),
                    true,
                    out,
                )
                .map(|(api, _)| api)
            })
            .collect::<anyhow::Result<_>>()?;
        for api in &apis {
            warm(api)?;
        }
        step(&format!("L1 hits, {processes} API process(es)"));
        let refs: Vec<&Api> = apis.iter().collect();
        let (rps, p99) = load(ctx, &refs, &script)?;
        points.push(Point {
            what: "L1 hits (random over the warm set)".into(),
            processes,
            rps,
            p99_ms: p99,
        });
    }

    let mut md = String::from("# CacheMe scale points\n\n");
    md.push_str(&format!(
        "`cargo xtask bench --scale`: {WARM_SET} warm products read at random, {CONNECTIONS} connections in all, {} s per row, {} cores shared by wrk, the API processes and every Redis.\n\n",
        ctx.duration_s,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    ));
    md.push_str("| load | API processes | req/s | p99 ms |\n|---|--:|--:|--:|\n");
    for p in &points {
        md.push_str(&format!(
            "| {} | {} | {:.0} | {:.2} |\n",
            p.what, p.processes, p.rps, p.p99_ms
        ));
    }
    md.push_str(&format!(
        "\nMemory of {WARM_SET} warm products (entry, generation counter; epochs): one Redis {:.1} KiB; the cluster {:.1} KiB in all, per node: {}.\n",
        memory_single as f64 / 1024.0,
        memory_cluster as f64 / 1024.0,
        per_node
            .iter()
            .map(|(p, m)| format!("{p}: {:.1} MiB", *m as f64 / (1024.0 * 1024.0)))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    eprintln!("\n{md}");
    write(&out.join("scale.md"), &md)?;
    eprintln!("==> report: {}", out.join("scale.md").display());
    drop(first);
    drop(cluster);
    drop(redis);
    drop(postgres);
    Ok(())
}
