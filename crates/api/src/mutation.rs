//! Test-only switches, each removing one consistency mechanism, so `cargo xtask chaos
//! --mutations` can show that the checker notices each removal (issue #22, C10): a
//! mutation the checker does not catch marks a redundant mechanism or a checker gap.
//!
//! Compiled in only with the `mutations` feature; in every other build [`active`] is
//! `false` and costs nothing. The mutation is named by `CACHEME_MUTATION`, read once.

/// One mechanism switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// An L1 fill is kept even when an invalidation happened since its read began.
    NoL1EpochCheck,
    /// The writer does not drop L1 and its flight a second time after the script.
    NoSecondL1Drop,
    /// No id is ever pending: reads trust the caches while invalidations are owed.
    NothingPending,
    /// A lost subscription neither flushes nor distrusts L1.
    LostDoesNothing,
    /// A write leaves the loads in flight for its id joinable.
    NoFlightForgetOnWrite,
    /// Outbox rows are never deleted: every written id stays pending (the cache silently
    /// off, which only the checker's cache-effectiveness floor can see).
    OutboxNeverDeleted,
    /// A creation does not invalidate its new id (a negative entry may stay).
    NoInvalidateOnCreate,
    /// A delete does not invalidate its id.
    NoInvalidateOnDelete,
    /// When PostgreSQL fails, an entry past its stale-while-revalidate window answers
    /// 404 instead of being served (stale-if-error broken into a wrong "absent").
    SieAnswersAbsent,
    /// The invalidation listener ignores every message: other replicas' L1 copies live
    /// out their TTL (issue #22, C5: is pub/sub needed for the bound?).
    ListenerIgnoresMessages,
}

/// Every mutation by the name `CACHEME_MUTATION` takes.
pub const ALL: [(&str, Mutation); 10] = [
    ("no-l1-epoch-check", Mutation::NoL1EpochCheck),
    ("no-second-l1-drop", Mutation::NoSecondL1Drop),
    ("nothing-pending", Mutation::NothingPending),
    ("lost-does-nothing", Mutation::LostDoesNothing),
    ("no-flight-forget-on-write", Mutation::NoFlightForgetOnWrite),
    ("outbox-never-deleted", Mutation::OutboxNeverDeleted),
    ("no-invalidate-on-create", Mutation::NoInvalidateOnCreate),
    ("no-invalidate-on-delete", Mutation::NoInvalidateOnDelete),
    ("sie-answers-absent", Mutation::SieAnswersAbsent),
    (
        "listener-ignores-messages",
        Mutation::ListenerIgnoresMessages,
    ),
];

/// The mutation `CACHEME_MUTATION` names: `Ok(None)` when unset, an error for a name
/// that is not one (a matrix run must never run unmutated by a typo).
pub fn from_env() -> Result<Option<Mutation>, String> {
    match std::env::var("CACHEME_MUTATION") {
        Err(_) => Ok(None),
        Ok(name) if name.trim().is_empty() => Ok(None),
        Ok(name) => ALL
            .iter()
            .find(|(known, _)| *known == name.trim())
            .map(|(_, m)| Some(*m))
            .ok_or_else(|| {
                let known: Vec<&str> = ALL.iter().map(|(n, _)| *n).collect();
                format!("CACHEME_MUTATION={name:?} is not one of {known:?}")
            }),
    }
}

#[cfg(feature = "mutations")]
static ACTIVE: std::sync::OnceLock<Option<Mutation>> = std::sync::OnceLock::new();

/// Reads `CACHEME_MUTATION` and switches it on for this process; says so loudly. An
/// unknown name is an error, and so is any name in a build without the `mutations`
/// feature: a mutation run must never pass unmutated, by a typo or by a build that left
/// the mutation out.
pub fn install_from_env() -> Result<(), String> {
    let Some(mutation) = accepted(from_env()?, cfg!(feature = "mutations"))? else {
        return Ok(());
    };
    tracing::warn!(
        ?mutation,
        "CACHEME_MUTATION: a consistency mechanism is switched off in this process, to test \
         the chaos checker; never run this build anywhere else"
    );
    install(Some(mutation));
    Ok(())
}

/// The mutation to switch on, if this build can (`built_with`: the `mutations` feature).
fn accepted(named: Option<Mutation>, built_with: bool) -> Result<Option<Mutation>, String> {
    match named {
        Some(mutation) if !built_with => Err(format!(
            "CACHEME_MUTATION names {mutation:?}, but this build has no `mutations` feature \
             (cargo build --package cacheme-api --features mutations): refusing to run \
             unmutated"
        )),
        named => Ok(named),
    }
}

/// Records the mutation of this process (once, at start).
pub fn install(mutation: Option<Mutation>) {
    #[cfg(feature = "mutations")]
    {
        let _ = ACTIVE.set(mutation);
    }
    #[cfg(not(feature = "mutations"))]
    {
        let _ = mutation;
    }
}

/// Whether `mutation` is switched on in this process.
#[inline]
pub fn active(mutation: Mutation) -> bool {
    #[cfg(feature = "mutations")]
    {
        ACTIVE.get().copied().flatten() == Some(mutation)
    }
    #[cfg(not(feature = "mutations"))]
    {
        let _ = mutation;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_unset_means_none() {
        let mut names: Vec<&str> = ALL.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        #[cfg(not(feature = "mutations"))]
        assert!(!active(Mutation::NothingPending), "compiled out");
    }

    #[test]
    fn a_build_without_the_feature_refuses_a_mutation() {
        assert_eq!(accepted(None, false), Ok(None));
        assert_eq!(accepted(None, true), Ok(None));
        assert_eq!(
            accepted(Some(Mutation::NothingPending), true),
            Ok(Some(Mutation::NothingPending))
        );
        let refused = accepted(Some(Mutation::NothingPending), false);
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.contains("no `mutations` feature")),
            "{refused:?}"
        );
    }
}
