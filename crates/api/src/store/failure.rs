//! What a failed statement says about the connection, the write and the server.

use std::time::Duration;

/// Whether a query failed in a way that may have broken its connection (the server did
/// not answer: a restart, a proxy that dropped it, or our own deadline). Such a connection
/// is never reused.
pub(super) fn lost_connection<T>(result: &Result<T, sqlx::Error>) -> bool {
    match result {
        Ok(_) | Err(sqlx::Error::RowNotFound) => false,
        // The server's last words on a connection it is closing: class 08 (connection
        // exception) and 57P (shutdown, e.g. `pg_terminate_backend` or a restart).
        Err(sqlx::Error::Database(e)) => e
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        Err(_) => true,
    }
}

/// Whether a failed statement may still have been carried out: the connection was lost
/// or the deadline passed after it was sent. A write that fails so must still be
/// invalidated.
pub fn outcome_unknown(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(e) => e
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

/// Whether a read that failed so is worth one more try on a fresh connection (a kept
/// connection that a restart or a proxy closed); a deadline that passed is not.
pub(super) fn worth_retrying<T>(result: &Result<T, sqlx::Error>) -> bool {
    match result {
        Err(sqlx::Error::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut => false,
        other => lost_connection(other),
    }
}

/// What our own deadline on a statement looks like to callers: a connection-level
/// failure, so it answers 503 (and stale-if-error applies).
pub(super) fn deadline_passed(limit: Duration) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("PostgreSQL did not answer within {limit:?}"),
    ))
}

/// Whether PostgreSQL cannot serve now but may shortly: connection-level failures, and
/// server states that pass (shutting down, out of connections, a statement past its
/// deadline, a deadlock). The rest are faults of ours.
pub fn unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|c| unavailable_sqlstate(&c)),
        _ => false,
    }
}

/// SQLSTATEs that say "not now" rather than "never": class 08 (connection exception),
/// 53 (insufficient resources: too many connections, disk full), 57P (shutdown, admin
/// termination, crash recovery), 57014 (cancelled: `statement_timeout`), 40001/40P01
/// (serialization failure, deadlock).
fn unavailable_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57P")
        || matches!(code, "57014" | "40001" | "40P01")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passing_server_states_are_unavailable_and_the_rest_are_not() {
        for code in [
            "08006", "08P01", "57P01", "57P03", "53300", "57014", "40P01",
        ] {
            assert!(unavailable_sqlstate(code), "{code}");
        }
        for code in ["23505", "22021", "42P01", "22001"] {
            assert!(!unavailable_sqlstate(code), "{code}");
        }
    }
}
