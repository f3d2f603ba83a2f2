//! # qmoi-supervisor
//!
//! The master monitor (DESIGN.md §7): starts every enabled monitor in dependency order,
//! watches and restarts them, aggregates their reports into the overall verdict in
//! `master_monitor_latest.json`, and answers `status`, `restart-component`, `reset` and
//! `restart-dashboard` on its control socket.
//!
//! - [`config`]: the master config and the resolved [`config::Plan`].
//! - [`supervise`]: one task per component (the state machine).
//! - [`process`]: spawning children that cannot outlive the supervisor.
//! - [`verdict`], [`overview`], [`master_report`]: from states and reports to the verdict.
//! - [`control`], [`render`]: the control socket and the `status` table.

pub mod config;
pub mod control;
pub mod master_report;
pub mod overview;
pub mod process;
pub mod render;
pub mod state;
pub mod supervise;
pub mod verdict;

use config::{MasterConfig, Plan};
use overview::{Overview, SupervisorInfo};
use qmoi_core::alerts::AlertTracker;
use qmoi_core::cli::CommonArgs;
use qmoi_core::component::{self, MASTER_MONITOR};
use qmoi_core::config::ConfigError;
use qmoi_core::report::{ReadOutcome, ReportWriter};
use state::{ComponentStatus, Shared};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use supervise::{Cmd, Task};
use tokio::sync::{Notify, mpsc, watch};

/// Default location of the master config.
pub const DEFAULT_CONFIG: &str = "config/master_monitor.toml";

/// Why `start` or a verb ended, with its exit status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Configuration or usage error: exit status 2.
    #[error("{0}")]
    Config(String),
    /// Anything else: exit status 3.
    #[error("{0}")]
    Runtime(String),
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e.to_string())
    }
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) => 2,
            Error::Runtime(_) => 3,
        }
    }
}

/// Load and validate the master config (`--config`, else `config/master_monitor.toml`,
/// else built-in defaults) and resolve it into a plan.
pub fn load_plan(common: &CommonArgs) -> Result<Plan, Error> {
    let default = PathBuf::from(DEFAULT_CONFIG);
    let (cfg, source) = match common.config.as_deref() {
        Some(p) => (
            qmoi_core::config::load::<MasterConfig>(p)?,
            Some(p.to_path_buf()),
        ),
        None if default.exists() => (
            qmoi_core::config::load::<MasterConfig>(&default)?,
            Some(default),
        ),
        None => (config::builtin_default(), None),
    };
    Ok(Plan::new(cfg, source))
}

/// Ask each enabled component's binary to check its own config (`--validate`).
/// Returns one message per problem.
pub async fn validate_children(plan: &Plan) -> Vec<String> {
    let mut set = tokio::task::JoinSet::new();
    for spec in plan.components.iter().filter(|s| s.enabled) {
        let spec = spec.clone();
        set.spawn(async move {
            let bin = match &spec.binary {
                Ok(b) => b.clone(),
                Err(_) => return None, // reported separately: a missing binary is not a config error
            };
            let mut cmd = tokio::process::Command::new(&bin);
            if let Some(c) = &spec.config {
                cmd.arg("--config").arg(c);
            }
            cmd.arg("--validate")
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true);
            match tokio::time::timeout(Duration::from_secs(20), cmd.output()).await {
                Ok(Ok(out)) if out.status.success() => None,
                Ok(Ok(out)) => {
                    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
                    Some(format!(
                        "{}: {}",
                        spec.id,
                        if err.is_empty() {
                            out.status.to_string()
                        } else {
                            err
                        }
                    ))
                }
                Ok(Err(e)) => Some(format!(
                    "{}: cannot run {} --validate: {e}",
                    spec.id,
                    bin.display()
                )),
                Err(_) => Some(format!(
                    "{}: {} --validate did not finish within 20s",
                    spec.id,
                    bin.display()
                )),
            }
        });
    }
    let mut problems: Vec<String> = set.join_all().await.into_iter().flatten().collect();
    problems.sort();
    problems
}

fn socket_path(plan: &Plan) -> PathBuf {
    plan.config.paths.run.join(control::SOCKET_NAME)
}

/// The running supervisor's answers to control requests.
struct Control {
    shared: Shared,
    cmds: HashMap<String, mpsc::Sender<Cmd>>,
    report_dir: PathBuf,
    alerts: config::AlertsConfig,
    info: SupervisorInfo,
}

impl Control {
    fn overview(&self) -> Overview {
        overview::build(
            self.shared.snapshot(),
            &self.report_dir,
            &self.alerts,
            Some(self.info.clone()),
        )
    }
}

impl control::Handler for Control {
    fn handle(&self, req: control::Request) -> control::Response {
        use control::{Request, Response};
        match req {
            Request::Status => Response {
                ok: true,
                overview: Some(Box::new(self.overview())),
                ..Response::default()
            },
            Request::RestartComponent { component } => match self.cmds.get(&component) {
                None => {
                    let known: Vec<&str> = self.cmds.keys().map(String::as_str).collect();
                    Response::error(format!(
                        "'{component}' is not a configured component (configured: {})",
                        known.join(", ")
                    ))
                }
                Some(_)
                    if self
                        .shared
                        .lock()
                        .get(&component)
                        .is_some_and(|c| c.state == state::State::Disabled) =>
                {
                    Response::error(format!(
                        "'{component}' is disabled in the config (enabled = false)"
                    ))
                }
                Some(tx) => match tx.try_send(Cmd::Restart) {
                    Ok(()) => {
                        tracing::info!(component = %component, "Restart requested on the control socket.");
                        Response::message(format!("restarting {component}"))
                    }
                    Err(e) => Response::error(format!("cannot reach the {component} task: {e}")),
                },
            },
            Request::Reset => {
                for tx in self.cmds.values() {
                    let _ = tx.try_send(Cmd::Reset);
                }
                tracing::info!("Reset requested on the control socket.");
                Response::message(
                    "restart counters, backoff and failures cleared; failed components are starting again",
                )
            }
            Request::RestartDashboard => Response::error(
                "this build has no dashboard yet (dashboard.enabled is accepted but nothing is served); nothing to restart",
            ),
        }
    }
}

/// Key of what matters in an overview, to write the master report when it changes.
fn change_key(o: &Overview) -> String {
    let mut k = format!("{}|{:?}", o.verdict.overall, o.verdict.reasons);
    for c in &o.components {
        k.push_str(&format!(
            "|{}:{}:{:?}:{:?}:{:?}:{}:{}:{}",
            c.id,
            c.state,
            c.pid,
            c.report_status,
            c.summary,
            c.restarts,
            c.critical_alerts,
            c.warning_alerts
        ));
    }
    k
}

/// `qmoi-supervisor start`: run in the foreground until SIGTERM/SIGINT.
pub fn start(common: &CommonArgs) -> Result<(), Error> {
    let plan = load_plan(common)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(run(plan, common.clone()))
}

async fn run(plan: Plan, common: CommonArgs) -> Result<(), Error> {
    // Everything is checked before anything starts.
    let problems = validate_children(&plan).await;
    if !problems.is_empty() {
        return Err(Error::Config(format!(
            "component configuration errors:\n  - {}",
            problems.join("\n  - ")
        )));
    }
    for dir in [
        &common.report_dir,
        &common.log_dir,
        &plan.config.paths.run,
        &plan.config.paths.data,
    ] {
        fs_err::create_dir_all(dir).map_err(|e| Error::Runtime(e.to_string()))?;
    }
    let verbosity = qmoi_core::logging::Verbosity {
        debug: common.debug,
        verbose: common.verbose,
    };
    let log_file = component::find(MASTER_MONITOR).map_or("master_monitor.log", |c| c.log_file);
    if let Some(note) = qmoi_core::logging::init(&common.log_dir, log_file, verbosity) {
        eprintln!("qmoi-supervisor: {note}");
    }
    let sock = socket_path(&plan);
    let listener = control::bind(&sock).await.map_err(Error::Config)?;

    let started_at = chrono::Utc::now();
    let host = qmoi_core::report::hostname();
    match master_report::write_startup(&plan, &common.report_dir, started_at, &host) {
        Ok(p) => tracing::info!(path = %p.display(), "Startup report written."),
        Err(e) => tracing::warn!(error = %e, "Cannot write the startup report."),
    }
    for s in &plan.components {
        if let (true, Err(e)) = (s.enabled, &s.binary) {
            tracing::error!(component = %s.id, error = %e, "Binary not found; the component will be marked failed.");
        }
    }

    let spawner = Arc::new(
        process::Spawner::start(tokio::runtime::Handle::current())
            .map_err(|e| Error::Runtime(format!("cannot start the spawner thread: {e}")))?,
    );
    let shared = Shared::default();
    let changed = Arc::new(Notify::new());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut ready: HashMap<String, watch::Receiver<bool>> = HashMap::new();
    let mut cmds = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    for spec in &plan.components {
        shared.lock().insert(
            spec.id.clone(),
            ComponentStatus::new(
                &spec.id,
                spec.priority,
                spec.interval.as_secs(),
                spec.stale_after.as_secs(),
            ),
        );
        let (ready_tx, ready_rx) = watch::channel(false);
        let deps = spec
            .depends_on
            .iter()
            .filter_map(|d| ready.get(d).map(|rx| (d.clone(), rx.clone())))
            .collect();
        ready.insert(spec.id.clone(), ready_rx);
        let (cmd_tx, cmd_rx) = mpsc::channel(8);
        cmds.insert(spec.id.clone(), cmd_tx);
        let task = Task::new(
            spec.clone(),
            plan.config.restart.clone(),
            plan.config.alerts.auto_restart,
            shared.clone(),
            spawner.clone(),
            (common.report_dir.clone(), common.log_dir.clone()),
            deps,
            ready_tx,
            cmd_rx,
            shutdown_rx.clone(),
            changed.clone(),
        );
        tasks.spawn(task.run());
    }
    let info = SupervisorInfo {
        pid: std::process::id(),
        started_at,
        version: env!("CARGO_PKG_VERSION").to_string(),
        config: plan.source.as_ref().map(|p| p.display().to_string()),
    };
    let control = Arc::new(Control {
        shared: shared.clone(),
        cmds,
        report_dir: common.report_dir.clone(),
        alerts: plan.config.alerts.clone(),
        info: info.clone(),
    });
    let mut ctl_shutdown = shutdown_rx.clone();
    let control_task = tokio::spawn(control::serve(listener, control.clone(), async move {
        let _ = ctl_shutdown.changed().await;
    }));
    tracing::info!(
        pid = std::process::id(),
        components = plan.components.iter().filter(|c| c.enabled).count(),
        socket = %sock.display(),
        "Supervisor started."
    );

    // Aggregate reports into the master report until shutdown.
    let host2 = host.clone();
    let mut writer = ReportWriter::new(
        &common.report_dir,
        MASTER_MONITOR,
        plan.config.report.history.policy(),
    );
    let mut tracker = AlertTracker::new();
    if let ReadOutcome::Ok { report, .. } = qmoi_core::report::read_report(&writer.latest_path()) {
        tracker.seed_from(&report);
    }
    let interval = plan.config.report.interval.get();
    let mut agg_shutdown = shutdown_rx.clone();
    let agg_control = control.clone();
    let agg_changed = changed.clone();
    let aggregator = tokio::spawn(async move {
        let mut last_key = String::new();
        let mut last_write: Option<Instant> = None;
        loop {
            tokio::select! {
                () = agg_changed.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = agg_shutdown.changed() => break,
            }
            let o = agg_control.overview();
            let key = change_key(&o);
            if key != last_key || last_write.is_none_or(|t| t.elapsed() >= interval) {
                let report = master_report::build(&o, &mut tracker, &host2, interval.as_secs());
                if let Err(e) = writer.write(&report) {
                    tracing::error!(error = %e, "Cannot write the master report.");
                }
                last_key = key;
                last_write = Some(Instant::now());
            }
        }
        (writer, tracker)
    });

    qmoi_core::runner::shutdown_signal().await;
    tracing::info!("Stopping every monitor.");
    let _ = shutdown_tx.send(true);
    let grace = plan.config.restart.stop_timeout.get() + Duration::from_secs(2);
    let all_stopped =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if all_stopped.is_err() {
        // Dropping the tasks drops their `Child` handles, which SIGKILLs them (kill_on_drop).
        tracing::warn!("Some monitors did not stop in time; killing them.");
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    let _ = control_task.await;
    if let Ok((mut writer, mut tracker)) = aggregator.await {
        let o = control.overview();
        let report = master_report::build(&o, &mut tracker, &host, interval.as_secs());
        if let Err(e) = writer.write(&report) {
            tracing::error!(error = %e, "Cannot write the final master report.");
        }
    }
    if let Err(e) = std::fs::remove_file(&sock) {
        tracing::debug!(error = %e, "Cannot remove the control socket.");
    }
    tracing::info!("Supervisor stopped.");
    Ok(())
}

/// Send a request to the running supervisor. `Ok(None)` when none runs.
pub fn send(plan: &Plan, req: &control::Request) -> Result<Option<control::Response>, Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime(e.to_string()))?;
    rt.block_on(control::request(&socket_path(plan), req))
        .map_err(Error::Runtime)
}

/// The overview from the running supervisor, or from the report files when none runs.
pub fn overview(plan: &Plan, report_dir: &Path) -> Result<Overview, Error> {
    match send(plan, &control::Request::Status)? {
        Some(resp) => match (resp.ok, resp.overview) {
            (true, Some(o)) => Ok(*o),
            _ => Err(Error::Runtime(
                resp.error
                    .unwrap_or_else(|| "the supervisor sent no status".into()),
            )),
        },
        None => Ok(overview::from_reports(plan, report_dir)),
    }
}
