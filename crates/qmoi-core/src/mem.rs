//! Giving freed memory back to the operating system.
//!
//! A monitor builds its report once per interval: for a large one (5,000 endpoints) that
//! is tens of megabytes of short-lived strings and maps, freed right after the file is
//! written. glibc keeps freed chunks inside its arenas, so without help the process's RSS
//! stays at the peak of the last report build. `malloc_trim(0)` returns the free pages of
//! every arena to the kernel (MADV_DONTNEED), so the steady RSS is what is live.

/// Return free heap pages to the kernel; a no-op where the C library has no
/// `malloc_trim`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free_memory() {
    // SAFETY: malloc_trim only walks glibc's own arenas and releases free pages; it has no
    // preconditions and touches no memory the program owns.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Return free heap pages to the kernel; a no-op where the C library has no
/// `malloc_trim`.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}

/// Make every thread allocate from one glibc arena. glibc gives each thread that allocates
/// its own arena; a monitor whose worker threads build short-lived data (a parallel walk
/// of 50,000 paths) next to long-lived data then keeps pages of several arenas that
/// `malloc_trim` cannot fully return (qmoi-security idle-watching 50,000 files: 33 MiB
/// RSS with per-thread arenas, 18 MiB with one). Call it first thing in `main`, before
/// any other thread exists.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn single_arena() {
    // SAFETY: mallopt only sets a glibc tunable; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// See the glibc version; nothing to do elsewhere.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn single_arena() {}

/// Serve every allocation of `bytes` or more with its own mapping, returned to the kernel
/// when freed. glibc starts with that rule at 128 KiB but raises the threshold to the size
/// of each mapped block freed (up to 32 MiB), after which large blocks come from the
/// arenas and stay resident: 200 concurrent password checks (argon2, ~19 MiB each, two at
/// a time) left the supervisor at 190 MiB. A fixed threshold keeps such bursts from
/// leaving anything behind. Call it first thing in `main`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn map_large_allocations(bytes: usize) {
    // SAFETY: mallopt only sets a glibc tunable.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, i32::try_from(bytes).unwrap_or(i32::MAX));
    }
}

/// See the glibc version; nothing to do elsewhere.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn map_large_allocations(_bytes: usize) {}

/// Lower the CPU priority of the calling thread only (Linux: nice values are per thread).
/// Best effort: a failure leaves the priority as it was.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn lower_thread_priority(nice: i32) {
    // SAFETY: gettid and setpriority take plain integers and only change the scheduling
    // priority of this thread; no memory is touched.
    unsafe {
        let tid = libc::gettid();
        let _ = libc::setpriority(libc::PRIO_PROCESS, u32::try_from(tid).unwrap_or(0), nice);
    }
}

/// See the Linux version; nothing to do elsewhere.
#[cfg(not(target_os = "linux"))]
pub fn lower_thread_priority(_nice: i32) {}
