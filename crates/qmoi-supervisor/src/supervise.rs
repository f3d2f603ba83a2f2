//! One task per component: start it when its dependencies are ready, watch it, restart it.
//!
//! ```text
//!            deps ready            first fresh report
//! starting ─────────────► spawn ───────────────────► running ──(healthy_after)──► counters reset
//!    ▲                      │ exit / stale / watchdog   │
//!    │                      ▼                           ▼
//!    └──── restarting ◄── backoff (0, initial, 2×initial … ≤ max)
//!                │ more than max_restarts within window
//!                ▼
//!             failed ──(cooldown, restart-component, reset)──► starting
//! exit status 2 (configuration error) or a missing binary: failed until asked again.
//! a reload that changes the component's entry, config file or binary: stop, start
//! with the new settings (any state); one that disables it: `disabled` until enabled.
//! ```

use crate::config::{ComponentSpec, RestartConfig};
use crate::process::{self, Spawner};
use crate::state::{RestartEvent, Shared, State};
use chrono::Utc;
use qmoi_core::config::ConfigDuration;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::AsyncBufReadExt;
use tokio::process::Child;
use tokio::sync::{Notify, mpsc, watch};

/// Requests from the control socket.
#[derive(Debug)]
pub enum Cmd {
    /// Stop and start again now; clears a failure and the restart counter.
    Restart,
    /// Clear the restart counter, backoff and failure; start a failed component again.
    Reset,
    /// A reload's settings for this component (`restart_now`: its entry, config file or
    /// binary changed, so the running monitor is replaced).
    Apply(Box<Apply>),
    /// A reload removed the component: stop its monitor and end the task.
    Remove,
}

/// What a reload hands each component's task.
#[derive(Debug)]
pub struct Apply {
    pub spec: ComponentSpec,
    pub restart: RestartConfig,
    pub auto_restart: bool,
    pub deps: Vec<(String, watch::Receiver<bool>)>,
    pub restart_now: bool,
}

/// How often a running child is looked at (report age, resource use).
const TICK: Duration = Duration::from_millis(250);
/// Lines of a child's stderr kept to explain a failure.
const STDERR_LINES: usize = 20;

/// Everything a component task needs.
pub struct Task {
    pub spec: ComponentSpec,
    pub restart: RestartConfig,
    pub auto_restart: bool,
    pub shared: Shared,
    pub spawner: Arc<Spawner>,
    pub report_dir: PathBuf,
    pub log_dir: PathBuf,
    pub deps: Vec<(String, watch::Receiver<bool>)>,
    pub ready_tx: watch::Sender<bool>,
    pub cmds: mpsc::Receiver<Cmd>,
    pub shutdown: watch::Receiver<bool>,
    pub changed: Arc<Notify>,
    /// Consecutive restarts (for the backoff delay).
    streak: u32,
    /// Times of restarts within the window (for max_restarts).
    window: VecDeque<Instant>,
    /// A reload removed the component: its state goes when the task ends.
    removed: bool,
}

/// One start of a monitor.
enum Attempt {
    /// It ran and ended so, with these last lines of its stderr.
    Ran(Ended, Vec<String>),
    /// It could not start for lack of resources: try again.
    Retry,
    /// The supervisor is stopping.
    Shutdown,
}

enum Ended {
    Exited(ExitStatus),
    Stale(String),
    Watchdog(String),
    Restart,
    /// A reload changed its settings.
    Reconfigured,
    Shutdown,
}

enum Wait {
    Elapsed,
    /// `Restart` or `Reset`.
    Command,
    /// A reload changed the settings (already taken).
    Reconfigured,
    /// Shutdown, or a reload removed the component.
    Shutdown,
}

type Tail = Arc<Mutex<VecDeque<String>>>;

impl Task {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        spec: ComponentSpec,
        restart: RestartConfig,
        auto_restart: bool,
        shared: Shared,
        spawner: Arc<Spawner>,
        dirs: (PathBuf, PathBuf),
        deps: Vec<(String, watch::Receiver<bool>)>,
        ready_tx: watch::Sender<bool>,
        cmds: mpsc::Receiver<Cmd>,
        shutdown: watch::Receiver<bool>,
        changed: Arc<Notify>,
    ) -> Self {
        Self {
            spec,
            restart,
            auto_restart,
            shared,
            spawner,
            report_dir: dirs.0,
            log_dir: dirs.1,
            deps,
            ready_tx,
            cmds,
            shutdown,
            changed,
            streak: 0,
            window: VecDeque::new(),
            removed: false,
        }
    }

    /// Take a reload's settings; true when the running monitor must be replaced (its
    /// settings changed, or it is disabled now).
    fn apply(&mut self, a: Apply) -> bool {
        let Apply { spec, restart, auto_restart, deps, restart_now } = a;
        let now_disabled = self.spec.enabled && !spec.enabled;
        let (interval, stale_after, priority) = (spec.interval.as_secs(), spec.stale_after.as_secs(), spec.priority);
        self.spec = spec;
        self.restart = restart;
        self.auto_restart = auto_restart;
        self.deps = deps;
        self.set(|c| {
            c.interval_s = interval;
            c.stale_after_s = stale_after;
            c.priority = priority;
        });
        restart_now || now_disabled
    }

    /// A command that arrived while nothing runs.
    fn take(&mut self, cmd: Cmd) -> Wait {
        match cmd {
            Cmd::Restart | Cmd::Reset => Wait::Command,
            Cmd::Apply(a) => {
                self.apply(*a);
                Wait::Reconfigured
            }
            Cmd::Remove => {
                self.removed = true;
                Wait::Shutdown
            }
        }
    }

    fn set(&self, f: impl FnOnce(&mut crate::state::ComponentStatus)) {
        self.shared.update(&self.spec.id, f);
        self.changed.notify_one();
    }

    fn set_ready(&self, ready: bool) {
        let _ = self.ready_tx.send(ready);
    }

    fn clear_counters(&mut self) {
        self.streak = 0;
        self.window.clear();
        self.set(|c| {
            c.restarts_in_window = 0;
            c.watchdog = None;
        });
    }

    /// Wait for `d` (forever when `None`), a command, or shutdown.
    async fn pause(&mut self, d: Option<Duration>) -> Wait {
        let sleep = async {
            match d {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => Wait::Elapsed,
            Some(cmd) = self.cmds.recv() => self.take(cmd),
            _ = self.shutdown.changed() => Wait::Shutdown,
        }
    }

    /// Mark failed with `note` and wait for `retry_after` (or forever), a command or shutdown.
    /// Returns false on shutdown.
    async fn fail(&mut self, note: String, retry_after: Option<Duration>) -> bool {
        tracing::error!(component = %self.spec.id, reason = %note, "Component failed.");
        self.set_ready(false);
        self.set(|c| {
            c.state = State::Failed;
            c.pid = None;
            c.ready = false;
            c.note = Some(note);
        });
        let w = self.pause(retry_after).await;
        match w {
            Wait::Shutdown => false,
            Wait::Elapsed | Wait::Command | Wait::Reconfigured => {
                self.clear_counters();
                true
            }
        }
    }

    /// Run the component until shutdown (or until a reload removes it).
    pub async fn run(mut self) {
        self.supervise().await;
        if self.removed {
            tracing::info!(component = %self.spec.id, "Removed from the configuration; stopped.");
            self.shared.lock().remove(&self.spec.id);
            self.changed.notify_one();
        }
    }

    async fn supervise(&mut self) {
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            if !self.spec.enabled {
                self.set(|c| {
                    c.state = State::Disabled;
                    c.pid = None;
                    c.ready = false;
                    c.note = Some("enabled = false in the config".into());
                });
                match self.pause(None).await {
                    Wait::Shutdown => return,
                    _ => continue,
                }
            }
            match self.wait_for_dependencies().await {
                Wait::Shutdown => return,
                Wait::Reconfigured => continue,
                Wait::Elapsed | Wait::Command => {}
            }
            let binary = match self.spec.resolve_again() {
                Ok(b) => b,
                Err(e) => {
                    if self.fail(e, None).await {
                        continue;
                    }
                    return;
                }
            };
            let bin_str = binary.display().to_string();
            self.set(|c| c.binary = Some(bin_str));
            let (ended, tail) = match self.start_and_watch(&binary).await {
                Attempt::Ran(ended, tail) => (ended, tail),
                Attempt::Retry => continue,
                Attempt::Shutdown => return,
            };
            let reason = match ended {
                Ended::Shutdown => {
                    self.set(|c| c.note = Some("stopped with the supervisor".into()));
                    return;
                }
                Ended::Restart => {
                    self.clear_counters();
                    self.record_restart("restart requested".into(), 0);
                    continue;
                }
                Ended::Reconfigured => {
                    self.clear_counters();
                    if self.spec.enabled {
                        self.record_restart("configuration changed (reload)".into(), 0);
                    }
                    continue;
                }
                Ended::Exited(status) if status.code() == Some(qmoi_core::runner::EXIT_CONFIG.into()) => {
                    let note = format!("configuration error (exit status 2): {}", config_error_message(&tail));
                    if self.fail(note, None).await {
                        continue;
                    }
                    return;
                }
                Ended::Exited(status) => format!("exited: {}", describe_exit(status)),
                Ended::Stale(r) => r,
                Ended::Watchdog(r) => {
                    let r2 = r.clone();
                    self.set(|c| c.watchdog = Some(r2));
                    r
                }
            };
            tracing::warn!(component = %self.spec.id, reason = %reason, "Monitor stopped unexpectedly.");
            if !self.auto_restart {
                if self.fail(format!("{reason}; not restarted (alerts.auto_restart = false)"), None).await {
                    continue;
                }
                return;
            }
            let now = Instant::now();
            let window = self.restart.window.get();
            while self.window.front().is_some_and(|t| now.duration_since(*t) > window) {
                self.window.pop_front();
            }
            self.window.push_back(now);
            self.streak += 1;
            if self.window.len() > self.restart.max_restarts as usize {
                let note = format!(
                    "gave up after {} restarts within {} (last: {reason}); next try in {}",
                    self.restart.max_restarts, self.restart.window, self.restart.cooldown
                );
                self.record_restart(reason, 0);
                if self.fail(note, Some(self.restart.cooldown.get())).await {
                    continue;
                }
                return;
            }
            let delay = self.restart.delay(self.streak);
            self.record_restart(reason.clone(), delay.as_millis().try_into().unwrap_or(u64::MAX));
            let n = self.window.len();
            self.set(|c| {
                c.state = State::Restarting;
                c.restarts_in_window = u32::try_from(n).unwrap_or(u32::MAX);
                c.note = Some(format!("{reason}; restart in {}", ConfigDuration(delay)));
            });
            match self.pause(Some(delay)).await {
                Wait::Shutdown => return,
                Wait::Command | Wait::Reconfigured => self.clear_counters(),
                Wait::Elapsed => {}
            }
        }
    }

    /// Start the monitor once and watch it until it ends: how it ended and the last lines
    /// of its stderr. A start that fails for lack of resources waits a second and asks for
    /// another try (not one of the monitor's crashes).
    async fn start_and_watch(&mut self, binary: &std::path::Path) -> Attempt {
        let args = self.spec.args(&self.report_dir, &self.log_dir);
        let report = self.report_dir.join(qmoi_core::component::latest_report_name(&self.spec.id));
        let before = std::fs::metadata(&report).and_then(|m| m.modified()).ok();
        match process::spawn_monitor(&self.spawner, binary, &args).await {
            Ok(mut child) => {
                let pid = child.id();
                tracing::info!(component = %self.spec.id, pid, binary = %binary.display(), "Started.");
                self.set(|c| {
                    c.state = State::Starting;
                    c.pid = pid;
                    c.started_at = Some(Utc::now());
                    c.ready = false;
                    c.note = None;
                    // The previous run's last lines stay until this run ends: in a
                    // crash loop they say why (the verdict quotes them).
                });
                let (tail, reader) = collect_stderr(&self.spec.id, &mut child);
                let ended = self.watch(&mut child, before).await;
                self.set_ready(false);
                let how = match &ended {
                    Ended::Exited(s) => describe_exit(*s),
                    _ => process::stop(&mut child, self.restart.stop_timeout.get()).await,
                };
                // The last lines usually say why it ended: let the reader reach EOF
                // (at once, unless a grandchild still holds the pipe open).
                let _ = tokio::time::timeout(Duration::from_millis(100), reader).await;
                let lines: Vec<String> = tail.lock().map(|t| t.iter().cloned().collect()).unwrap_or_default();
                self.set(|c| {
                    c.pid = None;
                    c.ready = false;
                    c.last_exit = Some(how.clone());
                    c.stderr_tail = lines.clone();
                });
                Attempt::Ran(ended, lines)
            }
            Err(e) if qmoi_core::child::is_resource_exhaustion(&e) => {
                // Out of descriptors, processes or memory (a client flood, a busy host):
                // nothing is wrong with the monitor, so this is not one of its crashes
                // and must not lead to `failed`. Try again in a second.
                tracing::warn!(component = %self.spec.id, error = %e, "Cannot start the monitor for lack of resources; retrying.");
                self.set(|c| c.note = Some(format!("cannot start: {e} (retrying; not counted as a crash)")));
                match self.pause(Some(Duration::from_secs(1))).await {
                    Wait::Shutdown => Attempt::Shutdown,
                    _ => Attempt::Retry,
                }
            }
            Err(e) => Attempt::Ran(Ended::Stale(format!("cannot start {}: {e}", binary.display())), Vec::new()),
        }
    }

    fn record_restart(&self, reason: String, delay_ms: u64) {
        self.set(|c| {
            c.restarts += 1;
            c.recent_restarts.push(RestartEvent { at: Utc::now(), reason, delay_ms });
            let excess = c.recent_restarts.len().saturating_sub(10);
            c.recent_restarts.drain(..excess);
        });
    }

    /// `Elapsed` once every dependency is ready; `Reconfigured` when a reload changed
    /// the settings meanwhile; `Shutdown`.
    async fn wait_for_dependencies(&mut self) -> Wait {
        loop {
            let waiting: Vec<String> =
                self.deps.iter().filter(|(_, rx)| !*rx.borrow()).map(|(id, _)| id.clone()).collect();
            if waiting.is_empty() {
                return Wait::Elapsed;
            }
            self.set(|c| {
                c.state = State::Starting;
                c.note = Some(format!("waiting for {} to be ready", waiting.join(", ")));
            });
            // Wake on any dependency change, a command, or shutdown.
            let mut rxs: Vec<watch::Receiver<bool>> = self.deps.iter().map(|(_, rx)| rx.clone()).collect();
            let any_change = async {
                let mut set = tokio::task::JoinSet::new();
                for mut rx in rxs.drain(..) {
                    set.spawn(async move {
                        // A dependency removed by a reload never becomes ready.
                        if rx.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    });
                }
                let _ = set.join_next().await;
            };
            tokio::select! {
                () = any_change => {}
                Some(cmd) = self.cmds.recv() => match self.take(cmd) {
                    Wait::Command | Wait::Elapsed => {}
                    w => return w,
                },
                _ = self.shutdown.changed() => return Wait::Shutdown,
            }
        }
    }

    /// The report is old (`note` says how): the monitor is stale and restarted, unless
    /// its report folder is full or read-only (a restart cannot help: it keeps running, marked
    /// stale with the reason) or was full less than `stale_after` ago (time to write).
    /// `held`: when the folder was last seen full.
    async fn stale(&self, report: &std::path::Path, note: String, held: &mut Option<Instant>) -> Option<Ended> {
        if let Some(full) = folder_unwritable(report).await {
            if held.is_none() {
                tracing::error!(component = %self.spec.id, %full, "Report not written: its folder cannot be written; not restarting.");
            }
            *held = Some(Instant::now());
            let n2 = format!("{note}: {full}");
            self.set(|c| {
                c.state = State::Stale;
                c.note = Some(n2);
            });
            return None;
        }
        if held.is_some_and(|t| t.elapsed() <= self.spec.stale_after) {
            return None;
        }
        let n2 = note.clone();
        self.set(|c| {
            c.state = State::Stale;
            c.note = Some(n2);
        });
        Some(Ended::Stale(note))
    }

    /// Watch a running child until it exits, goes stale, trips the watchdog, or a
    /// command or shutdown arrives.
    /// `before`: the report's mtime when the monitor was started (None: no report then).
    async fn watch(&mut self, child: &mut Child, before: Option<SystemTime>) -> Ended {
        let report = self.report_dir.join(qmoi_core::component::latest_report_name(&self.spec.id));
        let started = Instant::now();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut healthy_since: Option<Instant> = None;
        let mut watchdog = Watchdog::new(child.id());
        // The report folder is full or read-only: the report is old because it cannot be written, and
        // a restart would not help. The monitor keeps running; the status says why.
        // When it was last seen full: once there is room again, the monitor has
        // `stale_after` to write before the usual stale restart.
        let mut held_by_full_folder: Option<Instant> = None;
        // The report's mtime as last seen, and when it was seen to change. Ages are taken
        // on the monotonic clock: a jump of the wall clock (an NTP step, a resumed VM)
        // makes no report look old, nor a new one look older than its monitor's start.
        let mut seen: (Option<SystemTime>, Instant) = (before, Instant::now());
        loop {
            tokio::select! {
                status = child.wait() => {
                    return match status {
                        Ok(s) => Ended::Exited(s),
                        Err(e) => Ended::Stale(format!("cannot wait for the monitor: {e}")),
                    };
                }
                Some(cmd) = self.cmds.recv() => match cmd {
                    Cmd::Restart => return Ended::Restart,
                    Cmd::Reset => self.clear_counters(),
                    Cmd::Apply(a) => if self.apply(*a) {
                        return Ended::Reconfigured;
                    },
                    Cmd::Remove => {
                        self.removed = true;
                        return Ended::Shutdown;
                    }
                },
                _ = self.shutdown.changed() => return Ended::Shutdown,
                _ = tick.tick() => {
                    let mtime = std::fs::metadata(&report).and_then(|m| m.modified()).ok();
                    if mtime != seen.0 {
                        seen = (mtime, Instant::now());
                    }
                    // Written since the monitor started: its mtime is not the one it had then.
                    let fresh = mtime.filter(|m| Some(*m) != before);
                    let age = seen.1.elapsed();
                    match fresh {
                        Some(_) if held_by_full_folder.is_some()
                            && healthy_since.is_some()
                            && age <= self.spec.stale_after =>
                        {
                            tracing::info!(component = %self.spec.id, "Reports are written again.");
                            held_by_full_folder = None;
                            self.set(|c| { c.state = State::Running; c.note = None; });
                        }
                        Some(_) => {
                            if healthy_since.is_none() {
                                tracing::info!(component = %self.spec.id, after_ms = started.elapsed().as_millis() as u64, "Ready (first report written).");
                                healthy_since = Some(Instant::now());
                                self.set_ready(true);
                                self.set(|c| { c.state = State::Running; c.ready = true; c.note = None; });
                            }
                            if age > self.spec.stale_after {
                                let note = format!(
                                    "report not updated for {} (stale_after {})",
                                    ConfigDuration(Duration::from_secs(age.as_secs())),
                                    ConfigDuration(self.spec.stale_after)
                                );
                                if let Some(end) = self.stale(&report, note, &mut held_by_full_folder).await {
                                    return end;
                                }
                            }
                        }
                        None if started.elapsed() > self.spec.startup_timeout => {
                            let note = format!(
                                "no report within {} of starting (startup_timeout)",
                                ConfigDuration(self.spec.startup_timeout)
                            );
                            if let Some(end) = self.stale(&report, note, &mut held_by_full_folder).await {
                                return end;
                            }
                        }
                        None => {}
                    }
                    if let Some(since) = healthy_since
                        && since.elapsed() >= self.restart.healthy_after.get()
                        && (self.streak > 0 || !self.window.is_empty())
                    {
                        tracing::info!(component = %self.spec.id, "Healthy again; restart counter and backoff reset.");
                        self.clear_counters();
                    }
                    if let Some(reason) = watchdog.check(&self.spec.watchdog) {
                        return Ended::Watchdog(reason);
                    }
                }
            }
        }
    }
}

/// Why `report` cannot be written: its folder's file system is read-only, has less room
/// than twice the report (a new one is written beside the old, then renamed over it), at
/// least 64 KiB, or no free inode. A blocked `statvfs` (a hung mount) counts as "not known to be
/// full" after 2 s: the usual stale restart then follows.
async fn folder_unwritable(report: &std::path::Path) -> Option<String> {
    let dir = report.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new(".")).to_path_buf();
    let size = std::fs::metadata(report).map_or(0, |m| m.len());
    let probe = dir.clone();
    let stat = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::task::spawn_blocking(move || nix::sys::statvfs::statvfs(&probe)),
    )
    .await
    .ok()?
    .ok()?
    .ok()?;
    if stat.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
        return Some(format!("{} is on a read-only file system", dir.display()));
    }
    let free = stat.blocks_available().saturating_mul(stat.fragment_size());
    let need = size.saturating_mul(2).max(64 * 1024);
    if free < need {
        Some(format!(
            "{} is full ({} free; a report needs {})",
            dir.display(),
            qmoi_core::human::bytes(free as f64),
            qmoi_core::human::bytes(need as f64)
        ))
    } else if stat.files_available() == 0 {
        Some(format!("{} has no free inode", dir.display()))
    } else {
        None
    }
}

fn describe_exit(s: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => {
            let name =
                nix::sys::signal::Signal::try_from(sig).map_or_else(|_| sig.to_string(), |s| s.as_str().to_string());
            format!("killed by {name}")
        }
        _ => s.to_string(),
    }
}

/// The whole configuration error a monitor printed before exiting 2, on one line: from
/// its last `configuration error:` line to the end, without the caret and gutter lines of
/// a TOML excerpt, so that file, position, source line and message all survive.
fn config_error_message(tail: &[String]) -> String {
    let start = tail.iter().rposition(|l| l.contains("configuration error:"));
    let lines = match start {
        Some(i) => &tail[i..],
        None => &tail[tail.iter().rposition(|l| !l.trim().is_empty()).unwrap_or(0).min(tail.len())..],
    };
    let parts: Vec<&str> = lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '|' || c == '^' || c == '-' || c.is_whitespace()))
        .collect();
    let text = parts.join("; ");
    text.split_once("configuration error: ").map_or(text.clone(), |(_, rest)| rest.to_string())
}

/// Read the child's stderr line by line, keeping the last lines (bounded in count and
/// length) and passing them to our log at debug level.
fn collect_stderr(id: &str, child: &mut Child) -> (Tail, tokio::task::JoinHandle<()>) {
    let tail: Tail = Arc::new(Mutex::new(VecDeque::new()));
    let err = child.stderr.take();
    let tail2 = tail.clone();
    let id = id.to_string();
    let reader = tokio::spawn(async move {
        if let Some(err) = err {
            let mut lines = tokio::io::BufReader::new(err).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let line: String = line.chars().take(500).collect();
                tracing::debug!(component = %id, line = %line, "stderr");
                if let Ok(mut t) = tail2.lock() {
                    if t.len() == STDERR_LINES {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            }
        }
    });
    (tail, reader)
}

/// Resource watchdog state for one child.
struct Watchdog {
    pid: Option<u32>,
    last: Option<(Instant, u64)>,
    over_since: Option<Instant>,
    ticks_per_s: f64,
}

impl Watchdog {
    fn new(pid: Option<u32>) -> Self {
        Self { pid, last: None, over_since: None, ticks_per_s: qmoi_core::procfs::ticks_per_second() }
    }

    /// A reason to restart, once a limit has been exceeded for the configured time.
    fn check(&mut self, cfg: &crate::config::WatchdogConfig) -> Option<String> {
        if cfg.max_rss_mb.is_none() && cfg.max_cpu_percent.is_none() {
            return None;
        }
        let s = process::sample(self.pid?)?;
        let now = Instant::now();
        let cpu = self.last.map(|(t, ticks)| {
            let secs = now.duration_since(t).as_secs_f64().max(1e-3);
            (s.cpu_ticks.saturating_sub(ticks)) as f64 / self.ticks_per_s / secs * 100.0
        });
        self.last = Some((now, s.cpu_ticks));
        let rss_mb = s.rss_bytes as f64 / (1024.0 * 1024.0);
        let mut over = None;
        if let Some(max) = cfg.max_rss_mb
            && rss_mb > max
        {
            over = Some(format!("RSS {rss_mb:.0} MiB over the limit of {max} MiB"));
        }
        if let (Some(max), Some(cpu)) = (cfg.max_cpu_percent, cpu)
            && cpu > max
        {
            over = Some(format!("CPU {cpu:.0}% over the limit of {max}%"));
        }
        match over {
            None => {
                self.over_since = None;
                None
            }
            Some(why) => {
                let since = *self.over_since.get_or_insert(now);
                (now.duration_since(since) >= cfg.for_.get()).then(|| format!("watchdog: {why} for {}", cfg.for_))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::config_error_message;

    /// Regression: only the last stderr line (the quoted source line of a TOML error)
    /// reached the note; file, position and message were lost.
    #[test]
    fn a_config_error_keeps_file_position_and_message() {
        let tail: Vec<String> = [
            "some earlier noise",
            "qmoi-performance: configuration error: config/performance.toml: TOML parse error at line 2, column 12",
            "  |",
            "2 | interval = \"fast\"",
            "  |            ^^^^^^",
            "'fast' is not a duration",
            "",
        ]
        .iter()
        .map(|s| (*s).to_string())
        .collect();
        let m = config_error_message(&tail);
        assert_eq!(
            m,
            "config/performance.toml: TOML parse error at line 2, column 12; 2 | interval = \"fast\"; 'fast' is not a duration"
        );
        assert_eq!(config_error_message(&["x".into(), "last words".into(), String::new()]), "last words");
        assert_eq!(config_error_message(&[]), "");
    }
}
