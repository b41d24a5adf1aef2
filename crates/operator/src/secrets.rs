//! Generated credentials.
//!
//! Passwords come from the operating system's CSPRNG, use an alphanumeric
//! alphabet (safe inside URLs without escaping) and are never logged: they are held in
//! [`Secret`], the redacting type the API keeps its token and URLs in too.

use cacheme_runtime::Secret;

use crate::{Error, Result};

/// Length of generated passwords (≈ 190 bits).
pub const PASSWORD_LEN: usize = 32;
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Draws a new password from the OS random generator.
pub fn generate_password() -> Result<Secret> {
    let mut out = String::with_capacity(PASSWORD_LEN);
    let mut buf = [0u8; 64];
    while out.len() < PASSWORD_LEN {
        getrandom::fill(&mut buf).map_err(|e| Error::Random(e.to_string()))?;
        out.extend(unbiased_chars(&buf).take(PASSWORD_LEN - out.len()));
    }
    Ok(Secret::from(out))
}

/// Maps random bytes to the alphabet by rejection sampling (no modulo bias):
/// bytes at or above the largest multiple of the alphabet size are dropped.
fn unbiased_chars(bytes: &[u8]) -> impl Iterator<Item = char> + '_ {
    let n = ALPHABET.len();
    let limit = 256 - (256 % n);
    bytes
        .iter()
        .map(|&b| b as usize)
        .filter(move |&b| b < limit)
        .map(move |b| ALPHABET[b % n] as char)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_alphanumeric_and_distinct() -> Result<()> {
        let a = generate_password()?.into_exposed();
        let b = generate_password()?.into_exposed();
        assert_eq!(a.len(), PASSWORD_LEN);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a:?}");
        assert_ne!(a, b);
        Ok(())
    }

    #[test]
    fn debug_output_never_shows_the_password() -> Result<()> {
        let password = generate_password()?;
        let shown = format!("{password:?}");
        assert_eq!(shown, "[redacted]");
        assert!(!shown.contains(password.expose()));
        Ok(())
    }

    #[test]
    fn rejection_sampling_drops_biased_bytes() {
        // 248 = 4 * 62 is the first rejected value.
        let chars: String = unbiased_chars(&[0, 61, 62, 247, 248, 255]).collect();
        assert_eq!(chars, "A9A9");
    }
}
