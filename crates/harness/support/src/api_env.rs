//! The environment a harness starts `cacheme-api` with. The API ignores a variable it
//! does not read (its default applies), so a misspelt name would silently test the
//! default: each harness builds its processes' variables in one pure function, and its
//! tests hold every name against `cacheme_api::env_names()` (issue #23), as the
//! operator's tests do for what it sets.

use std::{path::Path, process::Command};

/// All a harness's API inherits from the harness's own environment: nothing that
/// configures it. A developer's shell may set any of the API's variables (a token that
/// refuses the harness's writes, `ALLOW_ANONYMOUS_WRITES` on the page's closed API, a
/// collector that pays for spans, another TTL), and each would change what is measured
/// or checked without a word.
pub const INHERITED: &[&str] = &[
    "PATH",
    "HOME",
    "TMPDIR",
    "RUST_BACKTRACE",
    "RUST_LIB_BACKTRACE",
];

/// `bin` with exactly `env`, plus [`INHERITED`] from this process.
pub fn api_command(bin: &Path, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env_clear();
    for var in INHERITED {
        if let Some(value) = std::env::var_os(var) {
            cmd.env(var, value);
        }
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
    fn nothing_inherited_configures_the_api() {
        let known = cacheme_api::env_names();
        assert_eq!(
            unknown_names(INHERITED.iter().copied(), &known),
            INHERITED,
            "an inherited variable is one the API reads"
        );
        // And the check sees a misspelt name.
        assert_eq!(
            unknown_names(["REDIS_URL", "REDIS_MODEE"], &known),
            ["REDIS_MODEE"]
        );
    }

    #[test]
    fn the_command_gets_exactly_its_settings() {
        let cmd = api_command(
            Path::new("cacheme-api"),
            &[("REDIS_MODE".into(), "cluster".into())],
        );
        let set: Vec<_> = cmd
            .get_envs()
            .filter_map(|(name, value)| value.map(|_| name.to_string_lossy().into_owned()))
            .collect();
        assert!(set.contains(&"REDIS_MODE".to_owned()), "{set:?}");
        assert!(
            set.iter()
                .all(|name| name == "REDIS_MODE" || INHERITED.contains(&name.as_str())),
            "{set:?}"
        );
        // Nothing else from this process reaches it: `env_clear` is in effect.
        let debug = format!("{cmd:?}");
        assert!(debug.contains("env -i"), "{debug}");
    }
}
