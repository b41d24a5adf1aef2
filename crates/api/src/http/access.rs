//! Who may change data: writes and `DELETE /cache/clear` need the admin token, unless the
//! operator of the service chose anonymous writes explicitly (`ALLOW_ANONYMOUS_WRITES`,
//! for a local demo). With neither, writes are refused: closed by default.

use std::time::{Duration, Instant};

use axum::{extract::FromRequestParts, http::header, http::request::Parts};
use cacheme_runtime::Secret;
use parking_lot::Mutex;
use subtle::ConstantTimeEq;

use super::error::{ApiError, retry_after_seconds};

/// How writes are allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WritePolicy {
    /// Writes need `Authorization: Bearer <token>`.
    Token(Secret),
    /// Anyone may write (an explicit choice, logged at start).
    Anonymous,
    /// No token configured and anonymous writes not allowed: every write is refused.
    Closed,
}

impl WritePolicy {
    /// A configured token wins over `allow_anonymous`; surrounding whitespace (say, the
    /// newline of a secret file) is not part of it.
    pub fn from_settings(token: Option<&Secret>, allow_anonymous: bool) -> Self {
        match token.map(|t| t.expose().trim()).filter(|t| !t.is_empty()) {
            Some(token) => Self::Token(token.into()),
            None if allow_anonymous => Self::Anonymous,
            None => Self::Closed,
        }
    }
}

/// Constant-time comparison of a presented bearer token with the configured one. The
/// scheme is case-insensitive (RFC 9110 §11.1). Their SHA-256 digests are compared, not
/// the tokens: `ct_eq` of slices returns at once when the lengths differ, which would
/// tell a client the token's length.
pub fn token_matches(expected: &str, authorization: Option<&str>) -> bool {
    use sha2::{Digest, Sha256};
    let Some((scheme, presented)) = authorization.and_then(|v| v.trim().split_once(' ')) else {
        return false;
    };
    let presented: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
    let expected: [u8; 32] = Sha256::digest(expected.as_bytes()).into();
    scheme.eq_ignore_ascii_case("bearer") && bool::from(presented.ct_eq(&expected))
}

/// A state that knows who may write; the router's state implements it, so this module
/// needs nothing of the state.
pub trait HasWritePolicy {
    fn write_policy(&self) -> &WritePolicy;
}

/// Passes when the request may write (see [`WritePolicy`]).
#[derive(Debug)]
pub struct WriteAccess;

impl<S: HasWritePolicy + Sync> FromRequestParts<S> for WriteAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match state.write_policy() {
            WritePolicy::Anonymous => Ok(Self),
            WritePolicy::Closed => Err(ApiError::WritesDisabled),
            WritePolicy::Token(expected) => {
                let header = parts
                    .headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok());
                if token_matches(expected.expose(), header) {
                    Ok(Self)
                } else {
                    Err(ApiError::Unauthorized)
                }
            }
        }
    }
}

/// One cache clear at a time, and at most one per `interval` from this replica: a clear
/// scans the whole keyspace and empties every replica's L1, so a loop of them would switch
/// the cache off. (The fleet-wide interval is a reservation in Redis, see
/// `Catalog::clear`; this gate spares it the round trip.)
#[derive(Debug)]
pub struct ClearGate {
    last: Mutex<Option<Instant>>,
    running: tokio::sync::Mutex<()>,
    interval: Duration,
}

impl ClearGate {
    pub fn new(interval: Duration) -> Self {
        Self {
            last: Mutex::new(None),
            running: tokio::sync::Mutex::new(()),
            interval,
        }
    }

    /// The least time between two clears.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Runs `clear` unless another is running or the last one started less than the
    /// interval ago (then 429 with the seconds to wait).
    pub async fn run<T>(
        &self,
        clear: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        let Ok(_running) = self.running.try_lock() else {
            return Err(ApiError::TooManyRequests(1));
        };
        {
            let mut last = self.last.lock();
            let now = Instant::now();
            if let Some(wait) = last
                .map(|at| self.interval.saturating_sub(now.duration_since(at)))
                .filter(|wait| !wait.is_zero())
            {
                return Err(ApiError::TooManyRequests(retry_after_seconds(wait)));
            }
            *last = Some(now);
        }
        clear.await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly_with_a_case_insensitive_scheme() {
        assert!(token_matches("s3cret", Some("Bearer s3cret")));
        assert!(token_matches("s3cret", Some("bearer s3cret")));
        assert!(token_matches("s3cret", Some("BEARER  s3cret ")));
        assert!(!token_matches("s3cret", Some("Bearer s3cre")));
        assert!(!token_matches("s3cret", Some("Bearer s3cret2")));
        assert!(!token_matches("s3cret", Some("Basic s3cret")));
        assert!(!token_matches("s3cret", Some("Bearers3cret")));
        assert!(!token_matches("s3cret", None));
    }

    #[test]
    fn a_token_wins_is_trimmed_and_nothing_configured_means_closed() {
        assert_eq!(
            WritePolicy::from_settings(Some(&Secret::from("abc\n")), true),
            WritePolicy::Token("abc".into())
        );
        assert_eq!(
            WritePolicy::from_settings(Some(&Secret::from("  ")), true),
            WritePolicy::Anonymous
        );
        assert_eq!(WritePolicy::from_settings(None, false), WritePolicy::Closed);
        assert_eq!(
            WritePolicy::from_settings(Some(&Secret::from("")), false),
            WritePolicy::Closed
        );
    }

    #[tokio::test]
    async fn clears_are_one_at_a_time_and_spaced() {
        let gate = ClearGate::new(Duration::from_secs(60));
        assert_eq!(gate.run(async { Ok(1) }).await.ok(), Some(1));
        let second = gate.run(async { Ok(2) }).await;
        assert!(matches!(second, Err(ApiError::TooManyRequests(s)) if s >= 59));

        let gate = std::sync::Arc::new(ClearGate::new(Duration::ZERO));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let running = {
            let gate = gate.clone();
            tokio::spawn(async move {
                gate.run(async move {
                    let _ = rx.await;
                    Ok(())
                })
                .await
            })
        };
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(matches!(
            gate.run(async { Ok(()) }).await,
            Err(ApiError::TooManyRequests(_))
        ));
        let _ = tx.send(());
        assert!(running.await.is_ok_and(|r| r.is_ok()));
    }
}
