//! The names of every environment variable the service reads, in one place: the
//! operator's tests check each variable it sets against them (issue #23).

/// Environment variables the service reads outside [`crate::Config`]'s flags: the token (never
/// a flag), logging and tracing (the telemetry crate), the allocator's purge delay (read by
/// mimalloc itself, defaulted by `cacheme-allocator`) and the test-only mutation switch;
/// with their default and meaning for `docs/settings.md`.
const OTHER_ENV: &[(&str, &str, &str)] = &[
    (
        "ADMIN_TOKEN",
        "unset",
        "from the environment only (a flag would show in `ps`): when set, writes and `DELETE /cache/clear` need `Authorization: Bearer <token>`; reads never do. Without it writes are refused unless `ALLOW_ANONYMOUS_WRITES` is set",
    ),
    (
        "LOG_FORMAT",
        "pretty",
        "`json` for one JSON object per line",
    ),
    ("RUST_LOG", "`info`", "log filter"),
    (
        "TRACES_FILTER",
        "`info`",
        "span filter (same syntax) for traced requests, apart from the logs: `RUST_LOG=warn` quiets the logs and keeps tracing",
    ),
    (
        "OTEL_SERVICE_NAME",
        "`cacheme-api`",
        "service name on exported spans",
    ),
    (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "unset",
        "OTLP/HTTP collector; no span is built or exported when unset",
    ),
    (
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "unset",
        "the same, for traces only",
    ),
    (
        "OTEL_TRACES_SAMPLER",
        "`parentbased_always_on`",
        "head sampler, decided before any span work: `always_on`, `always_off`, `traceidratio`, `parentbased_always_on`, `parentbased_always_off` or `parentbased_traceidratio`",
    ),
    (
        "OTEL_TRACES_SAMPLER_ARG",
        "`1.0`",
        "the `*traceidratio` samplers' ratio, 0 to 1",
    ),
    (
        "MIMALLOC_PURGE_DELAY",
        "`100` (mimalloc's own default is `1000`)",
        "how long the allocator (mimalloc) keeps freed memory before it goes back to the OS, in milliseconds; read by mimalloc at start, and when unset the binary sets 100 (`crates/allocator`), which took 4–9 MiB off the peak under 1000 connections of misses in alternated runs (full runs: 64.2–65.8 MiB before, 59.4–62.4 after) at no cost measured on cache hits (BENCHMARKS.md, \"The allocator's purge delay\")",
    ),
    (
        "CACHEME_MUTATION",
        "unset",
        "test builds only (the `mutations` feature): switches one consistency mechanism off for `cargo xtask chaos --mutations` (and, in the API's integration tests, for the one test the matrix runs mutated); every other build refuses to start with it set",
    ),
];

/// Every environment variable the service reads: what the operator and the harnesses may
/// set (a name outside it is a typo the service would silently ignore).
pub fn env_names() -> Vec<String> {
    use clap::CommandFactory as _;
    let mut names: Vec<String> = crate::config::Cli::command()
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|name| name.to_string_lossy().into_owned())
        .chain(OTHER_ENV.iter().map(|(name, _, _)| (*name).to_owned()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The tables of `docs/settings.md`: every flag's variable, default and help (from the
/// code, so they cannot drift), one table per settings group (its `--help` heading),
/// then the variables read outside the flags.
pub fn settings_table() -> String {
    use clap::CommandFactory as _;
    let cell = |text: &str| {
        text.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace('|', "\\|")
    };
    const HEAD: &str = "| variable | default | meaning |\n|---|---|---|\n";
    let mut out = String::new();
    let mut heading: Option<String> = None;
    for arg in crate::config::Cli::command().get_arguments() {
        let Some(env) = arg.get_env() else { continue };
        let group = arg.get_help_heading().unwrap_or("Other").to_owned();
        if heading.as_deref() != Some(group.as_str()) {
            out.push_str(&format!("\n**{group}**\n\n{HEAD}"));
            heading = Some(group);
        }
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let default = match defaults.join(",") {
            d if d.is_empty() => "unset".to_owned(),
            d => format!("`{d}`"),
        };
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(ToString::to_string)
            .unwrap_or_default();
        out.push_str(&format!(
            "| `{}` | {default} | {} |\n",
            env.to_string_lossy(),
            cell(&help)
        ));
    }
    out.push_str(&format!(
        "\n**Read outside the flags** (the token, logging, tracing, the allocator, tests)\n\n{HEAD}"
    ));
    for (name, default, meaning) in OTHER_ENV {
        out.push_str(&format!("| `{name}` | {default} | {} |\n", cell(meaning)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_outside_the_flags_is_read_where_it_is_named() {
        // Where they are read (this file only through `var(…)`, as it also lists them).
        let readers = [
            include_str!("mutation.rs"),
            include_str!("../../telemetry/src/lib.rs"),
            include_str!("../../telemetry/src/sampler.rs"),
            // Checks it before setting the option mimalloc reads it into.
            include_str!("../../allocator/src/lib.rs"),
        ];
        for (name, _, _) in OTHER_ENV {
            let quoted = format!("\"{name}\"");
            assert!(
                readers.iter().any(|src| src.contains(&quoted))
                    || include_str!("config/groups.rs").contains(&format!("var({quoted})")),
                "{name} is in OTHER_ENV but nothing reads it"
            );
        }
        let names = env_names();
        for name in [
            "DATABASE_URL",
            "REDIS_URL",
            "CACHE_TTL_SECONDS",
            "ADMIN_TOKEN",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} missing: {names:?}");
        }
    }

    /// The names `docker-compose.yml` gives the `api` service: the keys of its
    /// `environment:` map.
    fn compose_api_env(compose: &str) -> Vec<String> {
        let mut names = Vec::new();
        let (mut in_api, mut in_env) = (false, false);
        for line in compose.lines() {
            let indent = line.len() - line.trim_start().len();
            let text = line.trim();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            match indent {
                2 => (in_api, in_env) = (text == "api:", false),
                4 => in_env = in_api && text == "environment:",
                6 if in_env => names.extend(text.split_once(':').map(|(k, _)| k.to_owned())),
                _ => {}
            }
        }
        names
    }

    /// The names the image's last stage sets with `ENV NAME=value [NAME=value ...]`.
    fn image_env(dockerfile: &str) -> Vec<String> {
        let last_stage = dockerfile.rsplit("\nFROM ").next().unwrap_or(dockerfile);
        let joined = last_stage.replace("\\\n", " ");
        joined
            .lines()
            .filter_map(|line| line.trim().strip_prefix("ENV "))
            .flat_map(|vars| vars.split_whitespace())
            .filter_map(|var| var.split_once('=').map(|(k, _)| k.to_owned()))
            .collect()
    }

    /// Compose and the image set the service's variables by name; a misspelt one would be
    /// ignored and its default used, which no container test would notice.
    #[test]
    fn every_variable_compose_and_the_image_set_is_one_the_service_reads() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let read = |file: &str| {
            std::fs::read_to_string(root.join(file))
                .unwrap_or_else(|e| panic!("cannot read {file}: {e}"))
        };
        let known = env_names();
        let compose = compose_api_env(&read("docker-compose.yml"));
        let image = image_env(&read("crates/Dockerfile"));
        assert!(
            compose.len() >= 5 && compose.contains(&"REDIS_URL".to_owned()),
            "{compose:?}"
        );
        assert!(image.contains(&"BIND_ADDR".to_owned()), "{image:?}");
        for (file, names) in [
            ("docker-compose.yml", compose),
            ("crates/Dockerfile", image),
        ] {
            let unknown: Vec<_> = names.iter().filter(|n| !known.contains(n)).collect();
            assert!(
                unknown.is_empty(),
                "{file} sets {unknown:?}, which the service never reads"
            );
        }
        // And the parsers see what they are for.
        let sample = "services:\n  api:\n    environment:\n      REDIS_MODEE: x\n    ports: []\n  db:\n    environment:\n      OTHER: y\n";
        assert_eq!(compose_api_env(sample), ["REDIS_MODEE"]);
        assert_eq!(
            image_env("FROM a\nENV X=1\nFROM b\nENV BIND_ADDR=1 \\\n    RUST_LOGG=info\n"),
            ["BIND_ADDR", "RUST_LOGG"]
        );
    }

    /// `docs/settings.md`'s table is generated; `CACHEME_UPDATE_DOCS=1` rewrites it.
    #[test]
    fn docs_settings_table_is_generated_from_the_code() {
        cacheme_testsupport::generated_docs::check_generated_section(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/settings.md"),
            "<!-- generated from the code: CACHEME_UPDATE_DOCS=1 cargo test -p cacheme-api --lib settings -->",
            "<!-- end of the generated table -->",
            &settings_table(),
            "CACHEME_UPDATE_DOCS=1 cargo test -p cacheme-api --lib settings",
        );
    }
}
