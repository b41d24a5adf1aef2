//! The API's allocator, and its one setting of ours: how soon freed memory goes back to
//! the OS.
//!
//! mimalloc replaced glibc's malloc, whose locking and consolidation were 21–23 % of the
//! API's CPU on the hit and miss paths (BENCHMARKS.md has the A/B). mimalloc v3 (what
//! libmimalloc-sys builds by default) keeps freed pages for 1 s before it purges them.
//! Under a thousand connections of misses memory churns far faster than that (each
//! connection's buffers, each load's task), and the pages waiting out their second were
//! about 4 MiB of the peak: in one sequence of sweeps, alternated, 63.1–64.1 MiB peak RSS
//! with 1 s, 59.3–59.6 with 1 ms and 58.3–58.4 with 0, while L1 hits ran within the noise
//! with 1 ms (median −0.5 % over five rounds; −2.5 % with 0). BENCHMARKS.md, "The
//! allocator's purge delay", has the runs. `MIMALLOC_PURGE_DELAY`, if set, still wins.
//!
//! This is the workspace's only crate where `unsafe` is allowed, for two calls into
//! mimalloc's option table, each with its reason beside it.

pub use mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_t`. libmimalloc-sys keeps this
/// index out of its constants "for stability reasons"; the test below proves it by
/// reading mimalloc's documented default (1000 ms) through it, so a version of mimalloc
/// that moved it fails the tests instead of setting another option.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory stays before it is given back, in milliseconds.
pub const PURGE_DELAY_MS: std::ffi::c_long = 1;

/// The variable mimalloc reads the same option from (case-insensitive, at start).
pub const PURGE_DELAY_VAR: &str = "MIMALLOC_PURGE_DELAY";

/// Sets the purge delay to [`PURGE_DELAY_MS`] unless `MIMALLOC_PURGE_DELAY` is set.
///
/// Call it first in `main`, before any other thread starts: mimalloc's option setter is a
/// plain store, not synchronised with allocations on other threads reading it.
pub fn give_back_freed_memory_promptly() {
    if std::env::var_os(PURGE_DELAY_VAR).is_some() {
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

/// The purge delay mimalloc uses now, in milliseconds.
pub fn purge_delay_ms() -> std::ffi::c_long {
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
    // index, then sets and reads it back.
    #[test]
    fn the_index_is_mimallocs_purge_delay_and_the_setting_takes() {
        if std::env::var_os(PURGE_DELAY_VAR).is_some() {
            return;
        }
        assert_eq!(purge_delay_ms(), 1000, "mimalloc v3's default purge delay");
        give_back_freed_memory_promptly();
        assert_eq!(purge_delay_ms(), PURGE_DELAY_MS);
    }
}
