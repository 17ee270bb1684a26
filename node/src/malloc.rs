//! The C allocator's arenas, limited before the first thread starts, and its free pages given
//! back to the kernel now and then ([`trim_periodically`]).
//!
//! glibc's malloc gives a thread that finds the arena locks taken an arena of its own, up to
//! eight per core, and memory freed into one arena is not reused by another. A node's threads
//! (the runtime's workers, RocksDB's, the blocking pool) all allocate the small, long-lived state
//! of hundreds of thousands of waiting fans among their short-lived work, so with many arenas
//! each keeps its own half-empty pages: a waiting fan measured 34.3 KB of the node's memory with
//! the default and 32.5 KB with two arenas, at the same join rate. RocksDB's block cache and
//! memtables are arena-allocated by RocksDB itself and do not depend on this.

/// Arenas the node's allocator keeps, unless `MALLOC_ARENA_MAX` says otherwise.
pub const ARENAS_MAX: i32 = 2;

/// What [`limit_arenas`] did, for the log once it is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arenas {
    /// Limited to [`ARENAS_MAX`].
    Limited,
    /// `MALLOC_ARENA_MAX` is set: glibc follows it.
    FromEnvironment,
    /// The allocator refused the setting, or is not glibc's.
    Unchanged,
}

/// Limits the allocator's arenas; call it before any thread starts, so that none has an arena
/// of its own yet.
pub fn limit_arenas() -> Arenas {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return Arenas::FromEnvironment;
    }
    set_arenas_max(ARENAS_MAX)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_arenas_max(arenas: i32) -> Arenas {
    // SAFETY: mallopt only changes the allocator's parameters; called before other threads exist.
    match unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) } {
        1 => Arenas::Limited,
        _ => Arenas::Unchanged,
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arenas_max(_arenas: i32) -> Arenas {
    Arenas::Unchanged
}

/// How often freed memory is given back to the kernel.
pub const TRIM_INTERVAL_MS: u64 = 10_000;

/// Gives the pages the allocator holds free back to the kernel every [`TRIM_INTERVAL_MS`], until
/// the runtime stops. A surge of fans' handshakes allocates and frees tens of kilobytes each; glibc
/// returns only the top of a heap by itself, so the holes they leave among long-lived state stay
/// resident. `malloc_trim` releases every whole free page (a few milliseconds over a heap of
/// gigabytes, with the arena locks held).
pub fn trim_periodically() {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return;
    }
    tokio::spawn(async {
        let mut every = tokio::time::interval(std::time::Duration::from_millis(TRIM_INTERVAL_MS));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            trim();
        }
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only returns free pages of the allocator's own heaps to the kernel.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
