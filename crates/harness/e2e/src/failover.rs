//! Scenario: two operator replicas. The second one waits on the Lease while the first
//! leads; when the leader crashes (SIGKILL, so the Lease is not released) the second takes
//! the Lease once it expires and reconciles the next edit.

use std::{fs, time::Duration};

use anyhow::{Context as _, ensure};
use serde_json::json;

use super::kubectl::Kubectl;
use super::operator::OperatorProcess;
use super::stack::{Stack, env_value};

/// Name of the operator's Lease (the chart's default).
const LEASE: &str = "cacheme-operator";

pub fn failover(
    stack: &Stack,
    lease_namespace: &str,
    leader: (&mut OperatorProcess, &str),
    standby: (&mut OperatorProcess, &str),
) -> anyhow::Result<()> {
    let (leader, leader_id) = leader;
    let (standby, standby_id) = standby;
    let holder = || -> anyhow::Result<String> {
        let lease = stack
            .kubectl
            .json(&["get", "lease", LEASE, "--namespace", lease_namespace])?;
        Ok(lease["spec"]["holderIdentity"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    };
    Kubectl::wait_for(
        "the second operator to wait for the Lease",
        stack.timeout,
        Duration::from_millis(200),
        || {
            standby.check_alive()?;
            let log = fs::read_to_string(&standby.log).unwrap_or_default();
            Ok(if log.contains("waiting for the lease") {
                Ok(())
            } else {
                Err("not started yet".to_owned())
            })
        },
    )?;
    ensure!(
        holder()? == leader_id,
        "with two operators the Lease is held by {:?}, not the first ({leader_id})",
        holder()?
    );
    let log = fs::read_to_string(&standby.log).unwrap_or_default();
    ensure!(
        !log.contains("became leader"),
        "the standby operator became leader while the first held the Lease:\n{log}"
    );
    eprintln!("    {leader_id} leads, {standby_id} waits on the Lease");

    leader.kill();
    let started = std::time::Instant::now();
    Kubectl::wait_for(
        &format!("{standby_id} to take the Lease after {leader_id} crashed"),
        stack.timeout,
        Duration::from_millis(500),
        || {
            standby.check_alive()?;
            let now = holder()?;
            Ok(if now == standby_id {
                Ok(())
            } else {
                Err(format!("held by {now:?}"))
            })
        },
    )?;
    let took = started.elapsed();

    // The new leader reconciles.
    let generation = stack.patch(&json!({"spec": {"ttlSeconds": 300}}))?;
    let mut alive = || standby.check_alive();
    stack
        .wait_ready(generation, &mut alive)
        .context("the new leader did not reconcile an edit")?;
    let api = stack.deployment("api")?;
    ensure!(
        env_value(&api, "CACHE_TTL_SECONDS") == Some("300"),
        "after the failover: CACHE_TTL_SECONDS {:?}",
        env_value(&api, "CACHE_TTL_SECONDS")
    );
    eprintln!(
        "    {leader_id} killed (SIGKILL): {standby_id} took the Lease after {:.1}s and rolled ttlSeconds 300",
        took.as_secs_f64()
    );
    Ok(())
}
