//! The machine's ceilings, measured in the same run as the scenarios so every figure is
//! a ratio: nginx answering a static body, `redis-benchmark` GET, pgbench's prepared
//! primary-key select.
//!
//! `nginx`, `redis_benchmark` and `pgbench` run one tool each.

mod nginx;
mod pgbench;
mod redis_benchmark;

use super::{
    common::{CONNECTIONS, DB_MAX_CONNECTIONS, step},
    load::Ctx,
    report::Row,
    wrk::{self},
};

use self::{nginx::Nginx, pgbench::pgbench, redis_benchmark::redis_benchmark};

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
}
