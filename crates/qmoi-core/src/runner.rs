//! The monitor run loop and the `main` every monitor binary shares.
//!
//! A monitor implements [`Monitor`]; its `main` is a few lines calling [`main`]. This gives
//! every monitor the same behaviour (docs/ARCHITECTURE.md, "Invariants"): config loading with exit status 2 on
//! errors, `--validate`, `--once`, `--check`, logging, the interval loop with jitter and no
//! overlapping runs, and clean shutdown on SIGTERM/SIGINT.

use crate::alerts::AlertTracker;
use crate::cli::MonitorArgs;
use crate::component::ComponentInfo;
use crate::config::{self, ConfigDuration, Problems, Validate};
use crate::report::{Alert, CheckResult, HistoryPolicy, Report, ReportWriter};
use crate::status::Status;
use chrono::Utc;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Exit status for configuration and usage errors (never restarted by the supervisor).
pub const EXIT_CONFIG: u8 = 2;

/// What one run of a monitor found.
#[derive(Debug, Default)]
pub struct Outcome {
    pub checks: Vec<CheckResult>,
    pub metrics: BTreeMap<String, f64>,
    /// Alerts beyond the ones non-ok checks raise by themselves.
    pub alerts: Vec<Alert>,
    pub details: crate::report::Details,
    /// Metrics and details written straight into the report file instead of `metrics`
    /// and `details` (a monitor with thousands of rows does not build them in memory).
    pub streamed: crate::report::Streamed,
}

/// The metric of [`Collected::took`].
pub const CHECK_DURATION: &str = "qmoi_check_duration_seconds";

/// What the checks of one run found so far: check results, metrics and one `details`
/// section per concern. Monitors fill it module by module, then turn it into an
/// [`Outcome`].
#[derive(Debug, Default, Clone)]
pub struct Collected {
    pub checks: Vec<CheckResult>,
    pub metrics: BTreeMap<String, f64>,
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl Collected {
    pub fn check(&mut self, c: CheckResult) {
        self.checks.push(c);
    }

    /// Record a metric; NaN and infinities (a ratio of nothing) are left out.
    pub fn metric(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        if value.is_finite() {
            self.metrics.insert(crate::report::metric_key(name, labels), value);
        }
    }

    pub fn detail(&mut self, key: &str, value: serde_json::Value) {
        self.details.insert(key.to_string(), value);
    }

    /// Append `row` to the list under `details[key]` (one row per target, per endpoint…).
    pub fn row(&mut self, key: &str, row: serde_json::Value) {
        let list = self.details.entry(key.to_string()).or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let serde_json::Value::Array(rows) = list {
            rows.push(row);
        } else {
            *list = serde_json::Value::Array(vec![row]);
        }
    }

    /// Record how long one concern's checks took this run, as
    /// `qmoi_check_duration_seconds{concern="…"}`: a slow check is visible in the report
    /// and on `/metrics`, not only as a late report.
    pub fn took(&mut self, concern: &str, duration: Duration) {
        self.metric(CHECK_DURATION, &[("concern", concern)], duration.as_secs_f64());
    }

    /// Run one concern's (synchronous) checks and record how long they took.
    pub fn timed<T>(&mut self, concern: &str, f: impl FnOnce(&mut Self) -> T) -> T {
        let since = Instant::now();
        let r = f(self);
        self.took(concern, since.elapsed());
        r
    }

    pub fn extend(&mut self, other: Collected) {
        self.checks.extend(other.checks);
        self.metrics.extend(other.metrics);
        self.details.extend(other.details);
    }

    pub fn into_outcome(self) -> Outcome {
        Outcome {
            checks: self.checks,
            metrics: self.metrics,
            alerts: Vec::new(),
            details: crate::report::Details::of(&self.details),
            streamed: crate::report::Streamed::default(),
        }
    }
}

/// What this process of a monitor does: one read-only run (`--check`), one run whose
/// report is written (`--once`), or the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Check,
    Once,
    Daemon,
}

/// Resolves when the daemon is stopping: handed to a monitor's [`Monitor::background`].
#[derive(Debug, Clone)]
pub struct Stopping(tokio::sync::watch::Receiver<bool>);

impl Stopping {
    /// Wait until the daemon stops (at once if it has).
    pub async fn wait(&mut self) {
        // An error means the run loop is gone: stopping too.
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// Work a monitor does beside its runs, until [`Stopping`] resolves.
pub type Background = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Per-run information handed to a monitor.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// Bound for each check; a check that takes longer is `unknown`.
    pub check_timeout: Duration,
    /// Time since the previous run started (None on the first run).
    pub since_last: Option<Duration>,
    /// This run was asked for by the monitor's [`Monitor::waker`], not by the schedule.
    pub woken: bool,
    /// What the process does; `--check` must change nothing.
    pub mode: Mode,
}

impl RunContext {
    /// The only run of this process (`--once`, `--check`): nothing should keep working in
    /// the background after it.
    pub fn single(&self) -> bool {
        self.mode != Mode::Daemon
    }
}

/// A monitor: runs its checks, returns what it found. Must not panic on what it observes:
/// a failing source becomes a check result.
pub trait Monitor: Send + 'static {
    fn run(&mut self, ctx: &RunContext) -> impl Future<Output = Outcome> + Send;

    /// A monitor that sees changes as they happen (inotify) hands out a [`Notify`] here;
    /// each `notify_one` makes the run loop run at once instead of at the next interval,
    /// so the change reaches the report (and the notifier) within about a second. The
    /// regular schedule is not moved by such runs.
    ///
    /// [`Notify`]: tokio::sync::Notify
    fn waker(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }

    /// Called once before the first run: take what this mode needs (the notifier opens
    /// its database and, unless it only reads, locks it against a second sender). An
    /// error ends the process with status 3: a failure of the moment, restarted by the
    /// supervisor, never a configuration error.
    fn start(&mut self, _mode: Mode) -> Result<(), String> {
        Ok(())
    }

    /// Work the daemon does between its runs, not on their schedule (the notifier
    /// delivers as soon as an alert changes). Spawned when the run loop starts; once
    /// `stopping` resolves it should finish within a few seconds, and the run loop waits
    /// for it before it returns.
    fn background(&mut self, _stopping: Stopping) -> Option<Background> {
        None
    }
}

/// Run `fut` as one check bounded by `timeout`; a timeout yields an `unknown` result.
pub async fn timed_check(name: &str, timeout: Duration, fut: impl Future<Output = CheckResult>) -> CheckResult {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => CheckResult::unknown(name, format!("{name}: no answer within {}", ConfigDuration(timeout))),
    }
}

/// `[history]` in every monitor's config.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistorySettings {
    /// Write `<id>_report_YYYYMMDD_HHMMSS.json` copies.
    pub enabled: bool,
    /// Keep at most this many history files.
    pub keep: usize,
    /// Delete history files older than this.
    pub max_age: ConfigDuration,
    /// At most one history file per this period.
    pub every: ConfigDuration,
}

impl Default for HistorySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            keep: 200,
            max_age: ConfigDuration::from_secs(7 * 86_400),
            every: ConfigDuration::from_secs(0),
        }
    }
}

impl HistorySettings {
    pub fn policy(&self) -> HistoryPolicy {
        HistoryPolicy {
            enabled: self.enabled,
            keep: self.keep,
            max_age: self.max_age.get(),
            min_spacing: self.every.get(),
        }
    }

    pub fn validate(&self, problems: &mut Problems) {
        if self.enabled && self.keep == 0 {
            problems.push("history.keep", "must be at least 1 when history is enabled, got '0'");
        }
    }
}

/// The settings every monitor config has.
pub trait MonitorConfig: DeserializeOwned + Serialize + Validate + Default {
    fn interval(&self) -> Duration;
    fn check_timeout(&self) -> Duration;
    fn history(&self) -> HistorySettings;

    /// What is valid but probably not meant (`--validate` prints these after "OK").
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// `impl MonitorConfig` for a config with the usual `interval` and `timeout`
/// ([`ConfigDuration`]) and `history` ([`HistorySettings`]) fields; more methods of the
/// trait (`warnings`) may follow the type after a `;`.
#[macro_export]
macro_rules! monitor_config {
    ($t:ty $(; $($more:tt)*)?) => {
        impl $crate::runner::MonitorConfig for $t {
            fn interval(&self) -> ::std::time::Duration {
                self.interval.get()
            }
            fn check_timeout(&self) -> ::std::time::Duration {
                self.timeout.get()
            }
            fn history(&self) -> $crate::runner::HistorySettings {
                self.history
            }
            $($($more)*)?
        }
    };
}

/// Validate `interval` and `timeout` keys the same way in every monitor.
pub fn validate_interval_timeout(interval: ConfigDuration, timeout: ConfigDuration, p: &mut Problems) {
    if interval.get() < Duration::from_secs(1) {
        p.push("interval", format!("must be at least 1 second, got '{interval}'"));
    }
    if timeout.get() < Duration::from_millis(10) {
        p.push("timeout", format!("must be at least 10ms, got '{timeout}'"));
    }
}

/// Everything needed to produce reports for one component.
pub struct Runner<M: Monitor> {
    info: &'static ComponentInfo,
    monitor: M,
    interval: Duration,
    check_timeout: Duration,
    tracker: AlertTracker,
    last_start: Option<Instant>,
    /// Why the last SIGHUP changed nothing (its new configuration is invalid): an alert
    /// in every report until a reload succeeds.
    reload_error: Option<String>,
}

/// How the daemon's loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopEnd {
    /// SIGTERM or SIGINT: exit.
    Stop,
    /// SIGHUP with a valid configuration: start again with it (same pid).
    Reload,
}

impl<M: Monitor> Runner<M> {
    pub fn new(info: &'static ComponentInfo, monitor: M, interval: Duration, check_timeout: Duration) -> Self {
        Self {
            info,
            monitor,
            interval,
            check_timeout,
            tracker: AlertTracker::new(),
            last_start: None,
            reload_error: None,
        }
    }

    /// Keep `since` of alerts that were firing before this process started.
    pub fn seed_alerts(&mut self, latest: &Path) {
        // Only the alerts are parsed: a large report's checks and details are skipped.
        if let Ok(r) = crate::report::read_report_alerts(latest)
            && r.component == self.info.id
        {
            self.tracker.seed_from_alerts(&r.alerts);
        }
    }

    /// The monitor (a binary's own modes read what its last run saw).
    pub fn monitor(&self) -> &M {
        &self.monitor
    }

    /// One run (`--once` or `--check`): all checks, then the report.
    pub async fn run_once(&mut self, mode: Mode) -> Report {
        self.run(false, mode).await
    }

    async fn run(&mut self, woken: bool, mode: Mode) -> Report {
        let started = Instant::now();
        let ctx = RunContext {
            check_timeout: self.check_timeout,
            since_last: self.last_start.map(|t| started.duration_since(t)),
            woken,
            mode,
        };
        self.last_start = Some(started);
        let mut outcome = self.monitor.run(&ctx).await;
        let now = Utc::now();
        if let Some(e) = &self.reload_error {
            outcome.alerts.push(Alert {
                fingerprint: crate::alerts::fingerprint(self.info.id, "config_reload"),
                level: crate::AlertLevel::Warning,
                title: "Configuration reload failed; the previous configuration keeps running".into(),
                detail: e.clone(),
                since: now,
                labels: Default::default(),
            });
        }
        let alerts = self.tracker.update(self.info.id, &outcome.checks, outcome.alerts, now);
        Report {
            generated_at: now,
            interval_s: self.interval.as_secs(),
            duration_ms: started.elapsed().as_millis().try_into().unwrap_or(u64::MAX),
            metrics: outcome.metrics,
            alerts,
            details: outcome.details,
            streamed: outcome.streamed,
            ..Report::from_checks(self.info.id, outcome.checks)
        }
    }

    /// Run every interval until `shutdown` resolves; write each report with `writer`.
    ///
    /// Runs never overlap: the next one starts `interval` (plus up to 2% jitter, at most 1 s,
    /// so that many monitors started together drift apart) after the previous one started,
    /// or at once when a run took longer than the interval. A shutdown during a run
    /// abandons it; the report file is only ever replaced atomically, so nothing is torn.
    /// The monitor's [`Monitor::background`] work runs beside the loop and is waited for
    /// after the shutdown.
    ///
    /// Each of `hangups` (SIGHUP) has the configuration checked again by the binary
    /// itself (`--validate`, the same check as at start): valid, the loop ends as after a
    /// shutdown and says [`LoopEnd::Reload`]; invalid, nothing changes and every report
    /// carries a warning alert with the errors until a reload succeeds.
    pub async fn run_loop(
        &mut self,
        writer: &mut ReportWriter,
        shutdown: impl Future<Output = ()>,
        hangups: Option<tokio::signal::unix::Signal>,
    ) -> LoopEnd {
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let background = self.monitor.background(Stopping(stopping)).map(tokio::spawn);
        let end = self.scheduled(writer, shutdown, hangups).await;
        let _ = stop.send(true);
        if let Some(task) = background
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "The monitor's background work failed.");
        }
        end
    }

    async fn scheduled(
        &mut self,
        writer: &mut ReportWriter,
        shutdown: impl Future<Output = ()>,
        mut hangups: Option<tokio::signal::unix::Signal>,
    ) -> LoopEnd {
        tokio::pin!(shutdown);
        LOW_PRIORITY_WORK.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut next = tokio::time::Instant::now();
        let waker = self.monitor.waker();
        loop {
            let woken = tokio::select! {
                () = &mut shutdown => break,
                Some(()) = async {
                    match &mut hangups {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    tracing::info!("SIGHUP received; checking the configuration again.");
                    match validate_again().await {
                        Ok(()) => return LoopEnd::Reload,
                        Err(e) => {
                            tracing::error!(error = %e, "The new configuration is invalid; the previous one keeps running.");
                            self.reload_error = Some(e);
                            // Say so now, not at the next run.
                            next = tokio::time::Instant::now();
                            continue;
                        }
                    }
                }
                () = tokio::time::sleep_until(next) => false,
                () = async {
                    match &waker {
                        Some(w) => w.notified().await,
                        None => std::future::pending().await,
                    }
                } => true,
            };
            let started = tokio::time::Instant::now();
            let report = tokio::select! {
                () = &mut shutdown => {
                    tracing::info!("Shutdown during a run; abandoning it.");
                    break;
                }
                r = self.run(woken, Mode::Daemon) => r,
            };
            match off_the_workers(|| writer.write(&report)) {
                Ok(path) => {
                    tracing::debug!(path = %path.display(), status = %report.status, "Report written.")
                }
                Err(e) => {
                    tracing::error!(error = %e, "Cannot write report; will try again next run.")
                }
            }
            drop(report);
            crate::mem::release_free_memory();
            if woken {
                // An out-of-schedule run: the next scheduled one stays where it was.
                continue;
            }
            let jitter_cap = (self.interval / 50).min(Duration::from_secs(1));
            let jitter = jitter_cap.mul_f64(fastrand::f64());
            next = (started + self.interval + jitter).max(tokio::time::Instant::now());
        }
        LoopEnd::Stop
    }
}

/// SIGHUP's default ends the process: until the run loop's handler is in place (a
/// second `systemctl reload` while the new image starts), it is ignored. The handler
/// replaces this, and a handler is reset at `exec`, so commands the monitor runs later
/// get the default again.
#[allow(unsafe_code)]
fn ignore_hangups_until_handled() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: SIG_IGN installs no code of ours; nothing else is running yet.
    if let Err(e) = unsafe { signal(Signal::SIGHUP, SigHandler::SigIgn) } {
        tracing::warn!(error = %e, "Cannot ignore SIGHUP during the start.");
    }
}

/// This process's program and arguments, as it was started.
fn own_command_line() -> (std::ffi::OsString, Vec<std::ffi::OsString>) {
    let mut args = std::env::args_os();
    let program = args.next().unwrap_or_else(|| "/proc/self/exe".into());
    (program, args.collect())
}

/// Run this binary again with the same arguments and `--validate` (at most 60 s): `Ok`
/// when the configuration on disk is valid now, else what the check printed.
async fn validate_again() -> Result<(), String> {
    let (program, args) = own_command_line();
    let mut cmd = tokio::process::Command::new(&program);
    cmd.arg("--validate").args(&args).stdin(std::process::Stdio::null()).kill_on_drop(true);
    let what = format!("{} --validate", program.to_string_lossy());
    match tokio::time::timeout(Duration::from_secs(60), cmd.output()).await {
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => {
            let err = String::from_utf8_lossy(&out.stderr);
            let err = err.trim();
            let err = err.split_once("configuration error: ").map_or(err, |(_, e)| e);
            Err(if err.is_empty() { format!("{what}: {}", out.status) } else { err.to_string() })
        }
        Ok(Err(e)) => Err(format!("cannot run {what}: {e}")),
        Err(_) => Err(format!("{what} did not finish within 60s")),
    }
}

/// Replace this process with a new run of the same program and arguments (the pid, the
/// standard streams and the environment stay; every other descriptor is close-on-exec).
/// Returns only when that is impossible.
fn reexec(info: &ComponentInfo) -> ExitCode {
    use std::os::unix::process::CommandExt as _;
    let (program, args) = own_command_line();
    tracing::info!(pid = std::process::id(), "Starting again with the new configuration (same pid).");
    // The program by the name it was started with: a binary replaced since is the one
    // that runs (a reload after an upgrade); the running image when that name is gone.
    let e = std::process::Command::new(&program).args(&args).exec();
    let e2 = std::process::Command::new("/proc/self/exe").arg0(&program).args(&args).exec();
    eprintln!("{}: cannot start again after SIGHUP: {e}; {e2}", info.binary);
    tracing::error!(error = %e, "Cannot start again after SIGHUP.");
    ExitCode::from(3)
}

/// Set by the daemon's run loop: heavy work then runs at a lower CPU priority. `--once` and
/// `--check` keep normal priority (they are waited for, and nothing else runs meanwhile).
static LOW_PRIORITY_WORK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Run blocking or CPU-heavy work (serializing and fsyncing a report of megabytes) without
/// holding up the async tasks of this worker thread: on a multi-thread runtime the other
/// tasks move to another worker meanwhile, and in the daemon the work itself runs on a
/// thread of lower CPU priority (nice +10), so that on a busy machine the monitor's own
/// time-critical tasks (probes started on schedule) are not starved by its report and then
/// all run at once; on a current-thread runtime it simply runs.
pub fn off_the_workers<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread)
            if !LOW_PRIORITY_WORK.load(std::sync::atomic::Ordering::Relaxed) =>
        {
            tokio::task::block_in_place(f)
        }
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(|| {
            let mut f = Some(f);
            let done = std::thread::scope(|s| {
                let t = std::thread::Builder::new().name("qmoi-report".into()).spawn_scoped(s, || {
                    crate::mem::lower_thread_priority(10);
                    f.take().map(|f| f())
                });
                match t.map(|t| t.join()) {
                    Ok(Ok(r)) => r,
                    Ok(Err(panic)) => std::panic::resume_unwind(panic),
                    Err(_) => None,
                }
            });
            // `done` is None only when the thread could not be created: do the work here.
            match (done, f.take()) {
                (Some(r), _) => r,
                (None, Some(f)) => f(),
                (None, None) => unreachable!("the report thread ran and returned nothing"),
            }
        }),
        _ => f(),
    }
}

/// Resolves on the first SIGTERM or SIGINT. If the handlers cannot be installed the
/// process would be unstoppable by a polite signal, so this is reported and treated as
/// "never" only after logging loudly.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => tracing::info!("SIGTERM received; stopping."),
                _ = i.recv() => tracing::info!("SIGINT received; stopping."),
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "Cannot install signal handlers.");
            std::future::pending::<()>().await;
        }
    }
}

/// Print a readable `--check` table for a report. Every text from the report has its
/// control characters made visible (names and messages carry observed data).
pub fn render_check(report: &Report) -> String {
    use crate::human::escape_control as esc;
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} on {}: {} — {}",
        esc(&report.component),
        esc(&report.host),
        report.status.as_str().to_uppercase(),
        esc(&report.summary)
    );
    let name_w = report.checks.iter().map(|c| c.name.chars().count()).max().unwrap_or(5).clamp(5, 40);
    let _ = writeln!(out, "\n  {:<8}  {:<name_w$}  {:>12}  MESSAGE", "STATUS", "CHECK", "VALUE");
    for c in &report.checks {
        let value = match (c.value, c.unit.as_deref()) {
            (Some(v), Some(u)) => format!("{} {}", trim_num(v), short_unit(u)),
            (Some(v), None) => trim_num(v),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "  {:<8}  {:<name_w$}  {:>12}  {}",
            c.status.as_str(),
            crate::human::clip(&esc(&c.name), name_w),
            value,
            esc(&c.message)
        );
    }
    if !report.alerts.is_empty() {
        let _ = writeln!(out, "\nAlerts firing:");
        for a in &report.alerts {
            let _ = writeln!(out, "  [{}] {} ({})", a.level, esc(&a.title), esc(&a.fingerprint));
        }
    }
    let _ = writeln!(out, "\n({} ms)", report.duration_ms);
    out
}

fn trim_num(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

fn short_unit(u: &str) -> &str {
    match u {
        "percent" => "%",
        "seconds" => "s",
        other => other,
    }
}

/// Load `--config` (or `config/<id>.toml`, or the seed's `config/<id>_config.json`, or the
/// defaults): the config and where it came from, or — after printing the problem — the
/// exit status 2.
pub fn load_config<C: MonitorConfig>(info: &ComponentInfo, args: &MonitorArgs) -> Result<(C, String), ExitCode> {
    let default_path = config::default_path(Path::new("config"), info.id);
    match config::load_or_default::<C>(args.common.config.as_deref(), &default_path) {
        Ok((cfg, path)) => {
            let source = path.as_ref().map_or_else(|| "built-in defaults".to_string(), |p| p.display().to_string());
            Ok((cfg, source))
        }
        Err(e) => {
            eprintln!("{}: configuration error: {e}", info.binary);
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
}

/// `--print-config`: the effective configuration as JSON, secrets masked.
pub fn print_config<C: Serialize>(info: &ComponentInfo, cfg: &C) -> ExitCode {
    match serde_json::to_string_pretty(cfg) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: cannot print the configuration: {e}", info.binary);
            ExitCode::from(3)
        }
    }
}

/// The `main` of a monitor binary. `build` turns the validated config into the monitor;
/// it may fail with a message (exit status 2). Runs on one thread: monitors do little at
/// once, and one thread keeps them small (RSS is part of the spec).
pub fn main<C, M>(
    info: &'static ComponentInfo,
    args: MonitorArgs,
    build: impl FnOnce(&C) -> Result<M, String>,
) -> ExitCode
where
    C: MonitorConfig,
    M: Monitor,
{
    main_with_threads(info, args, 1, build)
}

/// [`main`] with `threads` runtime worker threads (1: a single-threaded runtime), for a
/// monitor whose own work (thousands of probes a second) needs more than one core.
pub fn main_with_threads<C, M>(
    info: &'static ComponentInfo,
    args: MonitorArgs,
    threads: usize,
    build: impl FnOnce(&C) -> Result<M, String>,
) -> ExitCode
where
    C: MonitorConfig,
    M: Monitor,
{
    let (cfg, source) = match load_config::<C>(info, &args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if args.validate {
        return validate(info, &cfg, &source, build);
    }
    if args.print_config {
        return print_config(info, &cfg);
    }
    let verbosity = crate::logging::Verbosity { debug: args.common.debug, verbose: args.common.verbose };
    if let Some(note) = crate::logging::init(&args.common.log_dir, info.log_file, verbosity) {
        eprintln!("{}: {note}", info.binary);
    }
    let monitor = match build(&cfg) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{}: configuration error: {e}", info.binary);
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let interval = args.interval.map_or_else(|| cfg.interval(), ConfigDuration::get);
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{}: cannot start the async runtime: {e}", info.binary);
            return ExitCode::from(3);
        }
    };
    let mut runner = Runner::new(info, monitor, interval, cfg.check_timeout());
    let mut writer = ReportWriter::new(&args.common.report_dir, info.id, cfg.history().policy());
    // The monitor has what it needs; a large config (thousands of endpoints) is not kept twice.
    drop(cfg);
    runner.seed_alerts(&writer.latest_path());
    let mode = if args.check {
        Mode::Check
    } else if args.once {
        Mode::Once
    } else {
        Mode::Daemon
    };
    if mode == Mode::Daemon {
        ignore_hangups_until_handled();
    }
    // One daemon per component and report folder: two would overwrite each other's
    // reports (an orphan from a killed shell, or a unit and the supervisor at once).
    let _lock = if mode == Mode::Daemon {
        match lock_instance(writer.dir(), info.id) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("{}: {e}", info.binary);
                tracing::error!(error = %e, "Not starting.");
                return ExitCode::from(3);
            }
        }
    } else {
        None
    };
    let end = rt.block_on(run_mode(info, runner, &mut writer, mode, &source, interval));
    match end {
        Ended::Exit(code) => code,
        Ended::Reload => {
            // As after SIGTERM: the runtime and its threads gone, the instance lock let
            // go (the new image takes it again).
            rt.shutdown_timeout(Duration::from_secs(5));
            drop(_lock);
            reexec(info)
        }
    }
}

/// What the process does once its mode is done.
enum Ended {
    Exit(ExitCode),
    /// SIGHUP and a valid configuration: run again from the start.
    Reload,
}

/// `--validate`: load and build the monitor (what only building finds, a CA file that
/// cannot be read or a template that does not compile, is a configuration error too),
/// say so, and list the warnings.
fn validate<C: MonitorConfig, M>(
    info: &ComponentInfo,
    cfg: &C,
    source: &impl std::fmt::Display,
    build: impl FnOnce(&C) -> Result<M, String>,
) -> ExitCode {
    if let Err(e) = build(cfg) {
        eprintln!("{}: configuration error: {source}: {e}", info.binary);
        return ExitCode::from(EXIT_CONFIG);
    }
    println!("{}: configuration OK ({source})", info.binary);
    for w in cfg.warnings() {
        println!("  warning: {w}");
    }
    ExitCode::SUCCESS
}

/// Start the monitor and run it in `mode`: one run printed (`--check`), one run written
/// (`--once`), or the daemon's loop until a shutdown signal.
async fn run_mode<M: Monitor>(
    info: &ComponentInfo,
    mut runner: Runner<M>,
    writer: &mut ReportWriter,
    mode: Mode,
    source: &impl std::fmt::Display,
    interval: Duration,
) -> Ended {
    if let Err(e) = runner.monitor.start(mode) {
        eprintln!("{}: {e}", info.binary);
        tracing::error!(error = %e, "Not starting.");
        return Ended::Exit(ExitCode::from(3));
    }
    if mode == Mode::Check {
        let report = runner.run_once(mode).await;
        print!("{}", render_check(&report));
        return Ended::Exit(ExitCode::from(u8::try_from(report.status.exit_code()).unwrap_or(3)));
    }
    if mode == Mode::Once {
        let report = runner.run_once(mode).await;
        return Ended::Exit(match writer.write(&report) {
            Ok(path) => {
                println!("{}: {} — report written to {}", info.id, report.summary, path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", info.binary);
                ExitCode::from(3)
            }
        });
    }
    tracing::info!(
        config = %source,
        interval = %ConfigDuration(interval),
        report = %writer.latest_path().display(),
        pid = std::process::id(),
        "Monitor started."
    );
    let hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "Cannot install the SIGHUP handler; reload by restarting.");
            None
        }
    };
    match runner.run_loop(writer, shutdown_signal(), hangups).await {
        LoopEnd::Stop => {
            tracing::info!("Monitor stopped.");
            Ended::Exit(ExitCode::SUCCESS)
        }
        LoopEnd::Reload => Ended::Reload,
    }
}

/// An exclusive lock on a file, held while the value lives.
pub type Lock = nix::fcntl::Flock<std::fs::File>;

/// Take `<report_dir>/.<id>.lock` (flock, exclusive) for as long as the value lives. The
/// kernel drops the lock when the process ends however it ends, so a crash or SIGKILL
/// leaves nothing stale. Fails, naming the holder's pid, when another daemon holds it.
pub fn lock_instance(report_dir: &Path, id: &str) -> Result<Lock, String> {
    lock_file(
        &report_dir.join(format!(".{id}.lock")),
        &format!("{id} monitor"),
        &format!("writes reports to {}", report_dir.display()),
    )
}

/// Take `path` (flock, exclusive, the holder's pid written in it) for as long as the value
/// lives; `Err` names the holder: "another {who} (pid N) already {does}; stop it first".
pub fn lock_file(path: &Path, who: &str, does: &str) -> Result<Lock, String> {
    use std::io::{Read, Seek, Write};
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            let _ = lock.set_len(0);
            let _ = lock.rewind();
            let _ = write!(lock, "{}", std::process::id());
            Ok(lock)
        }
        Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            Err(format!(
                "another {who} (pid {}) already {does}; stop it first",
                if pid.trim().is_empty() { "unknown" } else { pid.trim() }
            ))
        }
        Err((_, e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

/// Make an `unknown` check result for a failed source, naming it.
pub fn unreadable(name: &str, what: &str, err: impl std::fmt::Display) -> CheckResult {
    CheckResult::new(name, Status::Unknown, format!("cannot read {what}: {err}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn rows_gather_under_their_section() {
        let mut c = super::Collected::default();
        c.row("targets", serde_json::json!({"name": "a"}));
        c.row("targets", serde_json::json!({"name": "b"}));
        c.metric("qmoi_x", &[("target", "a")], f64::NAN);
        assert_eq!(c.details["targets"], serde_json::json!([{"name": "a"}, {"name": "b"}]));
        assert!(c.metrics.is_empty(), "NaN is left out");
    }

    #[test]
    fn each_concern_reports_how_long_it_took() {
        let mut c = super::Collected::default();
        let n = c.timed("disk", |c| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            c.check(crate::CheckResult::ok("disk:/", "fine"));
            7
        });
        assert_eq!(n, 7);
        c.took("target:db", std::time::Duration::from_millis(1500));
        let disk = c.metrics["qmoi_check_duration_seconds{concern=\"disk\"}"];
        assert!(disk >= 0.02, "{disk}");
        assert_eq!(c.metrics["qmoi_check_duration_seconds{concern=\"target:db\"}"], 1.5);
        assert_eq!(c.checks.len(), 1);
    }

    #[test]
    fn a_second_instance_is_refused_and_the_lock_dies_with_its_holder() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let first = super::lock_instance(dir.path(), "demo")?;
        let e = super::lock_instance(dir.path(), "demo").err().unwrap_or_default();
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        assert!(super::lock_instance(dir.path(), "other").is_ok(), "one lock per component");
        drop(first);
        assert!(super::lock_instance(dir.path(), "demo").is_ok());
        Ok(())
    }
}
