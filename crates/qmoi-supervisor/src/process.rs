//! Child processes: spawning so that none outlives the supervisor, stopping a whole
//! process group, and reading a child's resource use from `/proc`.
//!
//! # How children are tied to the supervisor
//!
//! - **Own process group** (`setpgid(0, 0)`): a Ctrl-C in the terminal reaches only the
//!   supervisor, which then stops each child politely (SIGTERM, then SIGKILL after
//!   `stop_timeout`), and a stop signal reaches everything a monitor started itself.
//! - **Parent-death signal** (`PR_SET_PDEATHSIG` = SIGKILL): if the supervisor dies without
//!   cleaning up (SIGKILL, OOM killer, a crash), the kernel kills each child. The signal
//!   fires when the *thread* that forked the child exits, not the process; so every child
//!   is forked from one long-lived spawner thread ([`Spawner`], shared with the monitors in
//!   `qmoi_core::child`, which tie their own commands to their life the same way), never
//!   from a tokio blocking-pool thread that may exit when idle.
//! - **The fork/prctl race**: if the supervisor dies between `fork` and `prctl`, the signal
//!   would never come; the child checks `getppid()` after `prctl` and refuses to exec when
//!   its parent is already gone.
//! - **Reaping**: tokio's `Child::wait` reaps each child on SIGCHLD; `kill_on_drop` is a
//!   last resort should a `Child` ever be dropped unwaited.

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::io;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

pub use qmoi_core::child::Spawner;

/// Spawn a monitor: `program args…` in its own process group, tied to the supervisor's
/// life by [`Spawner`] (parent-death signal, forked from one long-lived thread), stdin
/// closed, stdout discarded and stderr piped (the supervisor keeps its last lines to
/// explain a failure).
pub async fn spawn_monitor(spawner: &Spawner, program: &Path, args: &[String]) -> io::Result<Child> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("QMOI_SUPERVISOR_PID", std::process::id().to_string())
        .process_group(0);
    spawner.spawn(cmd).await
}

/// Send `sig` to the process group led by `pid` (children are group leaders).
/// A group that is already gone is not an error.
pub fn signal_group(pid: u32, sig: Signal) -> io::Result<()> {
    let Ok(raw) = i32::try_from(pid) else {
        return Ok(());
    };
    match killpg(Pid::from_raw(raw), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// Stop a child: SIGTERM to its group, up to `timeout` for it to exit, then SIGKILL.
/// Returns how it ended. Leftover members of the group are killed too.
pub async fn stop(child: &mut Child, timeout: Duration) -> String {
    let Some(pid) = child.id() else {
        return "already exited".into();
    };
    if let Err(e) = signal_group(pid, Signal::SIGTERM) {
        tracing::warn!(pid, error = %e, "Cannot send SIGTERM.");
    }
    let how = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => format!("stopped ({status})"),
        Ok(Err(e)) => format!("wait failed: {e}"),
        Err(_) => {
            let _ = signal_group(pid, Signal::SIGKILL);
            match child.wait().await {
                Ok(status) => format!("killed after {}s without exiting ({status})", timeout.as_secs_f64()),
                Err(e) => format!("wait failed after SIGKILL: {e}"),
            }
        }
    };
    let _ = signal_group(pid, Signal::SIGKILL);
    how
}

/// One sample of a process's resource use.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    pub rss_bytes: u64,
    /// utime + stime in clock ticks.
    pub cpu_ticks: u64,
}

/// Read `/proc/<pid>/stat` (CPU ticks) and `/proc/<pid>/statm` (resident pages).
pub fn sample(pid: u32) -> Option<ProcSample> {
    use qmoi_core::procfs;
    let cpu_ticks = procfs::stat(pid)?.cpu_ticks();
    // statm's resident pages are current; stat's rss field can lag behind it.
    let pages = procfs::statm_resident_pages(std::path::Path::new("/proc"), pid)?;
    Some(ProcSample { rss_bytes: pages * procfs::page_size(), cpu_ticks })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_own_process() {
        let s = sample(std::process::id());
        assert!(s.is_some_and(|s| s.rss_bytes > 0));
        assert!(sample(u32::MAX).is_none());
    }
}
