//! The run's report written out (markdown, charts, JSON, the recorded run) and its
//! verdict on the targets.

use std::{path::Path, process::Command};

use anyhow::bail;

use crate::{
    common::write,
    options::Options,
    recorded,
    report::{self, Report},
    svg,
};

/// Writes the report and its charts, prints the tables, and fails when a target was
/// missed (unless this is a smoke run).
pub fn publish(root: &Path, report: &Report, out: &Path, opts: &Options) -> anyhow::Result<()> {
    let ratios = recorded::ratios(&report.rows);
    let mut markdown = report::markdown(report);
    match recorded::load(root)? {
        // Two seconds on 2 000 products says nothing against a full run.
        Some(_) if opts.smoke => eprintln!("==> smoke run: not compared with the recorded run"),
        Some(before) => {
            let drifts = recorded::drifts(&before, &ratios);
            markdown.push_str(&recorded::markdown(&before, &drifts));
            for d in drifts.iter().filter(|d| d.flagged) {
                eprintln!(
                    "==> FLAGGED: {} dropped {:.1} % against the recorded run ({:.3} → {:.3})",
                    d.key,
                    -d.change() * 100.0,
                    d.recorded,
                    d.now
                );
            }
        }
        None => eprintln!(
            "==> no recorded run ({}) to compare with",
            recorded::RECORDED
        ),
    }
    if opts.record {
        recorded::save(
            root,
            &recorded::Recorded {
                commit: report.commit.clone(),
                started_unix: report.started_unix,
                ratios,
            },
        )?;
        eprintln!("==> recorded this run's ratios in {}", recorded::RECORDED);
    }
    write(&out.join("report.md"), &markdown)?;
    write(
        &out.join("throughput.svg"),
        &svg::throughput_svg(&report.rows),
    )?;
    write(&out.join("latency.svg"), &svg::latency_svg(&report.rows))?;
    eprintln!("\n{}", report::markdown_table(&report.rows));
    eprintln!("{}", report::targets_table(&report.targets));
    if opts.json {
        let json = serde_json::to_string_pretty(report)?;
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
    Ok(())
}

pub fn commit_description(root: &Path) -> String {
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
        "crates/allocator",
        "crates/runtime",
        "crates/telemetry",
    ]);
    if dirty.is_empty() {
        head
    } else {
        format!("{head} + uncommitted changes in the API's crates")
    }
}

/// The host a measurement ran on, for reports whose figures are compared across sessions:
/// ratios to the original moved from 17.6x to 26.7x between two hosts with nearly the same
/// API. The cores are the machine's, from `/proc/cpuinfo`: the harness may be pinned to one.
pub fn host_description() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cores = Some(processors(&cpuinfo))
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    format!("{}, {cores} cores", model_name(&cpuinfo))
}

/// How many processors `/proc/cpuinfo`'s text lists.
fn processors(cpuinfo: &str) -> usize {
    cpuinfo
        .lines()
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(k, _)| k.trim() == "processor")
        })
        .count()
}

pub fn cpu_model() -> String {
    model_name(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default())
}

/// The first `model name` in `/proc/cpuinfo`'s text.
fn model_name(cpuinfo: &str) -> String {
    cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_processors_are_counted_from_cpuinfo() {
        let text = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor @ 2.80GHz\n\n\
                    processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Processor @ 2.80GHz\n";
        assert_eq!(processors(text), 2);
        // arm64 kernels once listed the CPU's name under `Processor`: not a processor.
        let arm = "Processor\t: AArch64 Processor rev 4\nprocessor\t: 0\nprocessor\t: 1\n";
        assert_eq!(processors(arm), 2);
        assert_eq!(processors(""), 0);
    }
}
