//! A value that must never reach a log or an error message: a token, a password, a
//! connection URL with its credentials. Both binaries hold theirs in [`Secret`], so a
//! `{:?}` of any settings or plan that holds one shows only whether it is set.

use std::{convert::Infallible, fmt, str::FromStr};

/// A secret string. `Debug` shows `[redacted]` (or `[empty]`), there is no `Display`, and
/// the value is read only through [`Secret::expose`], where it is handed to what needs
/// it (a connection, a comparison, a Kubernetes Secret).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that uses it; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The value itself, by value (to write into a Kubernetes Secret).
    pub fn into_exposed(self) -> String {
        self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "[empty]"
        } else {
            "[redacted]"
        })
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

/// So `clap` can read one from an argument or an environment variable.
impl FromStr for Secret {
    type Err = Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self::from(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_whether_it_is_set_never_the_value() {
        let url = Secret::from("postgres://app:pg-s3cret@db/cacheme");
        let shown = format!("{url:?} {:?}", Some(url.clone()));
        assert_eq!(shown, "[redacted] Some([redacted])");
        assert!(!shown.contains("s3cret"));
        assert_eq!(format!("{:?}", Secret::default()), "[empty]");
        assert_eq!(url.expose(), "postgres://app:pg-s3cret@db/cacheme");
    }
}
