//! The API's allocator, and its one setting of ours: how soon freed memory goes back to
//! the OS.
//!
//! mimalloc replaced glibc's malloc, whose locking and consolidation were 21–23 % of the
//! API's CPU on the hit and miss paths (BENCHMARKS.md has the A/B). mimalloc v3 (what
//! libmimalloc-sys builds by default) keeps freed pages for 1 s before it purges them.
//! Under a thousand connections of misses memory churns far faster than that (each
//! connection's buffers, each load's task), and the pages waiting out their second were
//! a good part of the peak. In one sequence of sweeps (misses at 10 to 1000 connections,
//! one process, one binary), alternated: 64.5 and 69.3 MiB peak RSS with 1 s, 60.5 and
//! 60.7 with 100 ms, 60.9 and 60.7 with 10 ms, 58.7 and 58.8 with 1 ms; full runs went
//! from 64.2–65.8 MiB to 59.4–62.4. A short delay is not free: purged pages are faulted
//! in again, and 1 ms cost L1 hits 2.2 % (slower in every round) and Redis hits 4.4 %
//! where 100 ms cost nothing measurable. So 100 ms. BENCHMARKS.md, "The allocator's purge
//! delay", has the runs. Where the environment names the option, mimalloc's reading of
//! it stands, whatever its value.
//!
//! This is the workspace's only crate where `unsafe` is allowed, for two calls into
//! mimalloc's option table (a store, and the read that checks it), each with its reason
//! beside it.

pub use mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_t`. libmimalloc-sys keeps this
/// index out of its constants "for stability reasons"; the test below proves it by
/// reading mimalloc's documented default (1000 ms) through it, so a version of mimalloc
/// that moved it fails the tests instead of setting another option.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory stays before it is given back, in milliseconds.
pub const PURGE_DELAY_MS: std::ffi::c_long = 100;

/// The variable mimalloc reads the same option from at start, in any case, and under its
/// older name (`options.c`: `MI_OPTION_LEGACY(purge_delay, reset_delay)`).
pub const PURGE_DELAY_VAR: &str = "MIMALLOC_PURGE_DELAY";
const LEGACY_PURGE_DELAY_VAR: &str = "MIMALLOC_RESET_DELAY";

/// Whether the environment sets the purge delay in a way mimalloc reads.
fn set_by_environment() -> bool {
    std::env::vars_os().any(|(name, _)| {
        [PURGE_DELAY_VAR, LEGACY_PURGE_DELAY_VAR]
            .iter()
            .any(|var| name.eq_ignore_ascii_case(var))
    })
}

/// Sets the purge delay to [`PURGE_DELAY_MS`] unless the environment sets it.
///
/// Call it first in `main`, before any other thread starts: mimalloc's option setter is a
/// plain store, not synchronised with allocations on other threads reading it. mimalloc
/// reads the option at each purge it schedules, so the setting holds from then on.
pub fn give_back_freed_memory_promptly() {
    if set_by_environment() {
        return;
    }
    // SAFETY: `mi_option_set` stores a value into mimalloc's static option table (no
    // pointer is passed, any value of this option is valid); called before other threads
    // exist, nothing reads the table concurrently.
    #[allow(unsafe_code, reason = "the one FFI store this crate exists for")]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
    }
}

/// The purge delay mimalloc uses now, in milliseconds (only the test needs to read it).
#[cfg(test)]
fn purge_delay_ms() -> std::ffi::c_long {
    // SAFETY: `mi_option_get` reads mimalloc's static option table (initialising it from
    // the environment on first use); no pointer is passed.
    #[allow(unsafe_code, reason = "a read of the option this crate sets")]
    unsafe {
        libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test, as the option table is process-wide: it reads the default through the
    // index, then sets and reads it back. It proves the index and the call, not the
    // binary's use of them (this test binary's global allocator is the system's; mimalloc
    // is linked and answers all the same). Other test threads may exist here, unlike in
    // `main`: none of them touches mimalloc's options.
    #[test]
    fn the_index_is_mimallocs_purge_delay_and_the_setting_takes() {
        assert!(
            !set_by_environment(),
            "unset MIMALLOC_PURGE_DELAY to run this test: it reads mimalloc's default"
        );
        assert_eq!(purge_delay_ms(), 1000, "mimalloc v3's default purge delay");
        give_back_freed_memory_promptly();
        assert_eq!(purge_delay_ms(), PURGE_DELAY_MS);
    }
}
