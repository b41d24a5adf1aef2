//! The names of every environment variable the service reads, in one place: the
//! operator's tests check each variable it sets against them (issue #23).

/// Environment variables the service reads outside [`crate::Config`]'s flags: the token (never
/// a flag), logging and tracing (the telemetry crate) and the test-only mutation switch;
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
        "\n**Read outside the flags** (the token, logging, tracing, tests)\n\n{HEAD}"
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
