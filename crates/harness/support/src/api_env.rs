//! The environment a harness starts `cacheme-api` with. The API ignores a variable it
//! does not read (its default applies), so a misspelt name would silently test the
//! default: each harness builds its processes' variables in one pure function, and its
//! tests hold every name against `cacheme_api::env_names()` (issue #23), as the
//! operator's tests do for what it sets.

use std::{path::Path, process::Command};

/// What a developer's shell may have set that a harness's API must not inherit: each
/// would change what is measured or checked (a token refuses the harness's writes, a
/// collector pays for spans, a mutation or the unchecked fill breaks the caches).
pub const NOT_INHERITED: &[&str] = &[
    "ADMIN_TOKEN",
    "STATIC_DIR",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "SEED_FILE",
    "UNSAFE_SKIP_FILL_CHECK",
    "CACHEME_MUTATION",
];

/// `bin` with exactly `env` on top of what it inherits, less [`NOT_INHERITED`].
pub fn api_command(bin: &Path, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(bin);
    for var in NOT_INHERITED {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().map(|(name, value)| (name, value)));
    cmd
}

/// The names in `env` the API does not read (`known`: `cacheme_api::env_names()`).
pub fn unknown_names<'a>(env: impl IntoIterator<Item = &'a str>, known: &[String]) -> Vec<&'a str> {
    env.into_iter()
        .filter(|name| !known.iter().any(|k| k == name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_harness_clears_is_what_the_api_reads() {
        let known = cacheme_api::env_names();
        assert_eq!(
            unknown_names(NOT_INHERITED.iter().copied(), &known),
            [""; 0]
        );
        // And the check sees a misspelt name.
        assert_eq!(
            unknown_names(["REDIS_URL", "REDIS_MODEE"], &known),
            ["REDIS_MODEE"]
        );
    }

    #[test]
    fn the_command_clears_the_inherited_settings() {
        let cmd = api_command(
            Path::new("cacheme-api"),
            &[("REDIS_MODE".into(), "cluster".into())],
        );
        let envs: Vec<_> = cmd.get_envs().collect();
        for var in NOT_INHERITED {
            assert!(envs.contains(&(std::ffi::OsStr::new(var), None)), "{var}");
        }
        assert!(envs.contains(&(
            std::ffi::OsStr::new("REDIS_MODE"),
            Some(std::ffi::OsStr::new("cluster"))
        )));
    }
}
