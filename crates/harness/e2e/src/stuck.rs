//! Scenario: pods that will never become ready by waiting. kwok plays the kubelet (see
//! kwok-stages.yaml): an API image that crash-loops and a page image that cannot be
//! pulled. Each must turn the CacheMe `Degraded` (reason `ComponentFailing`, the kubelet's
//! waiting reason in the message, `kubectl get cachemes` showing the phase) rather than an
//! endless `Progressing`, and putting the image back must make it Ready again.

use anyhow::{Context as _, ensure};
use serde_json::json;

use super::stack::{Alive, Stack};

/// Images kwok's custom stages recognise.
pub const CRASH_LOOP_IMAGE: &str = "e2e.invalid/crash-loop:1";
pub const IMAGE_PULL_IMAGE: &str = "e2e.invalid/image-pull-backoff:1";

pub fn stuck_pods(stack: &Stack, alive: Alive) -> anyhow::Result<()> {
    for (field, component, image, reason) in [
        ("api", "api", CRASH_LOOP_IMAGE, "CrashLoopBackOff"),
        ("frontend", "frontend", IMAGE_PULL_IMAGE, "ImagePullBackOff"),
    ] {
        let generation = stack.patch(&json!({"spec": {field: {"image": image}}}))?;
        let degraded = stack
            .wait_degraded(generation, alive)
            .with_context(|| format!("{field}.image {image}: the CacheMe never turned Degraded"))?;
        let message = degraded["message"].as_str().unwrap_or_default();
        ensure!(
            degraded["reason"] == "ComponentFailing"
                && message.contains(reason)
                && message.contains(&format!("{}-{component}", stack.name)),
            "{field}.image {image}: Degraded is {degraded}, expected reason ComponentFailing \
             naming {reason} and the {component} pod"
        );
        let cacheme = stack.get()?;
        ensure!(
            cacheme["status"]["phase"] == "Degraded",
            "{field}.image {image}: phase {}",
            cacheme["status"]["phase"]
        );
        let table = stack.kubectl.run(&[
            "get",
            "cachemes",
            stack.name,
            "--namespace",
            stack.namespace,
        ])?;
        ensure!(
            table.contains("Degraded"),
            "kubectl get cachemes does not show Degraded:\n{table}"
        );
        eprintln!("    {field}.image {image}: Degraded ({message})");

        let generation = stack.patch(&json!({"spec": {field: {"image": null}}}))?;
        stack
            .wait_ready(generation, alive)
            .with_context(|| format!("{field}.image back to the default"))?;
        eprintln!("    {field}.image back to the default: Ready");
    }
    Ok(())
}
