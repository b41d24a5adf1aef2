//! The names of every environment variable the service reads, in one place: the
//! operator's tests check each variable it sets against them (issue #23).

/// Environment variables the service reads outside [`crate::Config`]'s flags: the token (never
/// a flag), logging and tracing (the telemetry crate) and the test-only mutation switch.
const OTHER_ENV: &[&str] = &[
    "ADMIN_TOKEN",
    "LOG_FORMAT",
    "RUST_LOG",
    "TRACES_FILTER",
    "OTEL_SERVICE_NAME",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "CACHEME_MUTATION",
];

/// Every environment variable the service reads: what the operator and the harnesses may
/// set (a name outside it is a typo the service would silently ignore).
pub fn env_names() -> Vec<String> {
    use clap::CommandFactory as _;
    let mut names: Vec<String> = crate::config::Cli::command()
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|name| name.to_string_lossy().into_owned())
        .chain(OTHER_ENV.iter().map(|name| (*name).to_owned()))
        .collect();
    names.sort();
    names.dedup();
    names
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
        for name in OTHER_ENV {
            let quoted = format!("\"{name}\"");
            assert!(
                readers.iter().any(|src| src.contains(&quoted))
                    || include_str!("config.rs").contains(&format!("var({quoted})")),
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
}
