//! Child processes that cannot outlive the process that started them.
//!
//! The supervisor's monitors die with it (the kernel sends them SIGKILL when it dies, see
//! `qmoi-supervisor`'s `process` module). The commands a monitor runs in turn (a
//! performance `[[commands]]` probe, `restic check`, `borg list`) used to survive that: an
//! adversarial run killed the supervisor with SIGKILL and found them reparented to PID 1
//! in 5 of 5 rounds. Every QMOI binary therefore starts its children through a
//! [`Spawner`]:
//!
//! - **Parent-death signal** (`PR_SET_PDEATHSIG` = SIGKILL), set in the child between
//!   `fork` and `exec`: when the parent dies, however it dies, the kernel kills the child.
//! - **One long-lived forking thread.** The signal fires when the *thread* that forked
//!   the child exits, not the process. tokio's blocking-pool threads exit when idle, and a
//!   worker thread that enters `block_in_place` can end up as one; a child forked there
//!   would be killed while its parent still runs. So every child is forked from one
//!   dedicated thread that lives as long as the process.
//! - **The fork/prctl race.** If the parent dies between `fork` and `prctl`, the signal
//!   would never come: the child checks `getppid()` after `prctl` and refuses to exec when
//!   its parent is already gone.
//!
//! A child's own children are not covered (they are in its process group, which the
//! supervisor signals when it stops a monitor).

use std::io;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

type SpawnRequest = (Command, oneshot::Sender<io::Result<Child>>);

/// Forks children from one dedicated, long-lived thread (see the module docs).
#[derive(Debug)]
pub struct Spawner {
    tx: std::sync::mpsc::Sender<SpawnRequest>,
}

impl Spawner {
    /// Start the forking thread; it registers children with the given runtime (their exit
    /// is reaped by it).
    pub fn start(handle: tokio::runtime::Handle) -> io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new().name("qmoi-spawner".into()).spawn(move || {
            let _guard = handle.enter();
            for (mut cmd, reply) in rx {
                let _ = reply.send(cmd.spawn());
            }
        })?;
        Ok(Self { tx })
    }

    /// Spawn `cmd` with the parent-death signal set, from the forking thread.
    /// `kill_on_drop` is set too: a `Child` dropped unwaited (a timed-out run) is killed.
    pub async fn spawn(&self, mut cmd: Command) -> io::Result<Child> {
        cmd.kill_on_drop(true);
        set_parent_death_signal(&mut cmd);
        let (reply, rx) = oneshot::channel();
        self.tx.send((cmd, reply)).map_err(|_| io::Error::other("the spawner thread has stopped"))?;
        rx.await.map_err(|_| io::Error::other("the spawner thread has stopped"))?
    }
}

/// Spawn `cmd` tied to this process's life, through a process-wide [`Spawner`] started on
/// first use (inside the runtime that first calls this: its children's pipes and exit
/// belong to that runtime, the one runtime a monitor has). Monitors run their commands so.
pub async fn spawn(cmd: Command) -> io::Result<Child> {
    global()?.spawn(cmd).await
}

fn global() -> io::Result<&'static Spawner> {
    static SPAWNER: OnceLock<io::Result<Spawner>> = OnceLock::new();
    let handle = tokio::runtime::Handle::current();
    SPAWNER
        .get_or_init(|| Spawner::start(handle))
        .as_ref()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot start the spawner thread: {e}")))
}

#[allow(unsafe_code)]
fn set_parent_death_signal(cmd: &mut Command) {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec and only makes two
    // async-signal-safe system calls (prctl, getppid); it allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(io::Error::from)?;
            if nix::unistd::getppid() != parent {
                return Err(io::Error::other("the parent exited before the child started"));
            }
            Ok(())
        });
    }
}

/// What a [`run_bounded`] command did.
#[derive(Debug)]
pub struct Ran {
    /// `None`: it did not finish within the timeout and was killed with its process group.
    pub status: Option<std::process::ExitStatus>,
    /// At most the cap given, of each stream.
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// More output came than was kept (it was read and dropped, so the command never
    /// blocked on a full pipe).
    pub truncated: bool,
    pub elapsed: std::time::Duration,
}

/// Run `cmd` as a check runs a command it does not trust to behave: through [`spawn`] (it
/// dies with this process), stdin empty, in its own process group, its output read as
/// it comes but kept only up to `max_output` bytes per stream, and at `timeout` the whole
/// group killed (SIGKILL: a plugin's own children, `sh -c "…"` and what it started,
/// go too) and reaped.
pub async fn run_bounded(cmd: Command, timeout: std::time::Duration, max_output: usize) -> io::Result<Ran> {
    run_bounded_on(global()?, cmd, timeout, max_output).await
}

/// [`run_bounded`] through `spawner`.
pub async fn run_bounded_on(
    spawner: &Spawner,
    mut cmd: Command,
    timeout: std::time::Duration,
    max_output: usize,
) -> io::Result<Ran> {
    use std::process::Stdio;
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let started = std::time::Instant::now();
    let mut child = spawner.spawn(cmd).await?;
    let pgid = child.id().and_then(|p| i32::try_from(p).ok());
    let (out, err) = (child.stdout.take(), child.stderr.take());
    // The streams are read on tasks of their own, into buffers kept here: what came before
    // a kill is still there after it.
    let (out_buf, err_buf) = (Arc::new(Mutex::new(Captured::default())), Arc::new(Mutex::new(Captured::default())));
    let mut readers = [
        tokio::spawn(read_capped(out, max_output, out_buf.clone())),
        tokio::spawn(read_capped(err, max_output, err_buf.clone())),
    ];
    let kill_group = || {
        if let Some(g) = pgid {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(g), nix::sys::signal::Signal::SIGKILL);
        }
    };
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(st) => Some(st?),
        Err(_) => {
            kill_group();
            let _ = child.wait().await;
            None
        }
    };
    // Its output ends when the last holder of the pipes goes: at once, unless it left a
    // process of its own behind holding them (a daemon it started). That one gets a second
    // (within the timeout), then the group is killed: the command has answered.
    let left = timeout.saturating_sub(started.elapsed()).min(PIPE_GRACE);
    let both = async {
        for r in &mut readers {
            let _ = r.await;
        }
    };
    if tokio::time::timeout(left, both).await.is_err() {
        kill_group();
        for r in &readers {
            r.abort();
        }
    }
    let take = |b: &Mutex<Captured>| std::mem::take(&mut *b.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    let (o, e) = (take(&out_buf), take(&err_buf));
    Ok(Ran { status, stdout: o.kept, stderr: e.kept, truncated: o.more || e.more, elapsed: started.elapsed() })
}

/// How long the pipes may stay open after the command exited.
const PIPE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// A stream's first bytes, and whether more came.
#[derive(Default)]
struct Captured {
    kept: Vec<u8>,
    more: bool,
}

/// Read `r` to its end into `into`, keeping the first `cap` bytes.
async fn read_capped(r: Option<impl tokio::io::AsyncRead + Unpin>, cap: usize, into: Arc<Mutex<Captured>>) {
    use tokio::io::AsyncReadExt as _;
    let Some(mut r) = r else { return };
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut c = into.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let room = cap.saturating_sub(c.kept.len());
                c.kept.extend_from_slice(&buf[..n.min(room)]);
                c.more |= n > room;
            }
        }
    }
}

/// Did a spawn fail for lack of a resource (descriptors, processes, memory) rather than
/// because of the program itself? Such a failure says nothing about the child: the
/// supervisor retries it instead of counting it as a crash.
pub fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::EAGAIN | libc::ENOMEM | libc::ENOBUFS | libc::ENOSPC)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn children_are_spawned_and_reaped() -> io::Result<()> {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exit 3"]);
        let status = spawn(cmd).await?.wait().await?;
        assert_eq!(status.code(), Some(3));
        let e = spawn(Command::new("/nonexistent/qmoi-test")).await.err();
        assert!(e.is_some_and(|e| e.kind() == io::ErrorKind::NotFound));
        assert!(is_resource_exhaustion(&io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(!is_resource_exhaustion(&io::Error::from_raw_os_error(libc::ENOENT)));
        Ok(())
    }

    #[tokio::test]
    async fn bounded_runs_cap_output_and_kill_the_whole_group_at_the_timeout() -> io::Result<()> {
        use std::time::Duration;
        // Its own spawner: the process-wide one belongs to the runtime of the test that
        // used it first, which may be gone (each test has its own runtime).
        let spawner = Spawner::start(tokio::runtime::Handle::current())?;
        let run_bounded = |cmd, timeout, max| run_bounded_on(&spawner, cmd, timeout, max);
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "head -c 100000 /dev/zero; echo oops >&2; exit 1"]);
        let r = run_bounded(cmd, Duration::from_secs(10), 1000).await?;
        assert_eq!((r.status.and_then(|s| s.code()), r.stdout.len(), r.truncated), (Some(1), 1000, true));
        assert_eq!(r.stderr, b"oops\n");
        // A grandchild holding the output open: the group goes at the timeout, and nothing
        // of it is left.
        let dir = tempfile::tempdir()?;
        let pidfile = dir.path().join("pid");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &format!("sleep 300 & echo $! > {}; wait", pidfile.display())]);
        let r = run_bounded(cmd, Duration::from_millis(500), 1000).await?;
        assert!(r.status.is_none() && r.elapsed < Duration::from_secs(5), "{r:?}");
        let sleeper: i32 = std::fs::read_to_string(&pidfile)?.trim().parse().map_err(io::Error::other)?;
        let mut gone = false;
        for _ in 0..50 {
            let state = std::fs::read_to_string(format!("/proc/{sleeper}/stat")).unwrap_or_default();
            // Gone, or a zombie waiting for init to reap it.
            if state.is_empty() || state.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')) {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(gone, "the plugin's own child survived its timeout");
        // It answered, and left a process of its own holding its output: the answer counts
        // (within the grace), and the leftover goes with the group.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &format!("sleep 300 & echo $! > {}; echo 'OK - fine'; exit 0", pidfile.display())]);
        let r = run_bounded(cmd, Duration::from_secs(10), 1000).await?;
        assert_eq!((r.status.and_then(|s| s.code()), r.stdout.as_slice()), (Some(0), &b"OK - fine\n"[..]), "{r:?}");
        assert!(r.elapsed < Duration::from_secs(5), "{r:?}");
        Ok(())
    }
}
