//! The running supervisor: start-up checks, the component tasks, the control socket, the
//! dashboard, the aggregation loop that writes `master_monitor_latest.json`, and shutdown.

use crate::config::{AlertsConfig, ComponentSpec, Plan};
use crate::monitors::{Monitors, start_monitors};
use crate::overview::{self, Overview, SupervisorInfo};
use crate::state::{Shared, State};
use crate::supervise::Cmd;
use crate::{Error, control, master_report, reload, socket_path};
use qmoi_core::alerts::AlertTracker;
use qmoi_core::cli::CommonArgs;
use qmoi_core::component::{self, MASTER_MONITOR};
use qmoi_core::overview::ReloadInfo;
use qmoi_core::report::{ReadOutcome, ReportWriter};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

/// A `[[maintenance]]` entry, its schedule and length in seconds.
type Recurring = (crate::config::RecurringMaintenance, qmoi_core::cron::CronTz, i64);

/// The `[[maintenance]]` entries of `plan` (validated with it).
fn recurring(plan: &Plan) -> Vec<Recurring> {
    plan.config
        .maintenance
        .iter()
        .filter_map(|m| {
            let cron = qmoi_core::cron::CronTz::parse(&m.cron, m.tz.as_deref()).ok()?;
            let secs = i64::try_from(m.duration.get().as_secs()).ok()?;
            Some((m.clone(), cron, secs))
        })
        .collect()
}

/// What the control socket and the dashboard may ask of the running supervisor.
struct Control {
    shared: Shared,
    monitors: std::sync::Mutex<Monitors>,
    report_dir: PathBuf,
    reports: overview::ReportCache,
    /// Replaced by a reload.
    alerts: std::sync::RwLock<AlertsConfig>,
    info: SupervisorInfo,
    /// The effective configuration of every component, secrets masked.
    /// The master config and each component's effective config (filled in once every
    /// monitor has printed its own, in the background).
    config_view: std::sync::RwLock<serde_json::Value>,
    dashboard: Option<Arc<qmoi_dashboard::Dashboard>>,
    server: tokio::sync::Mutex<Option<qmoi_dashboard::Server>>,
    /// `[[maintenance]]` (replaced by a reload).
    recurring: std::sync::RwLock<Vec<Recurring>>,
    /// How the supervisor was started (where a reload reads the configuration again).
    common: CommonArgs,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    last_reload: std::sync::Mutex<Option<ReloadInfo>>,
    changed: Arc<Notify>,
    /// Itself, for the work a reload leaves running in the background.
    me: OnceLock<Weak<Control>>,
}

impl Control {
    fn monitors(&self) -> std::sync::MutexGuard<'_, Monitors> {
        self.monitors.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn overview(&self) -> Overview {
        let mut components = self.shared.snapshot();
        // The parts of a component in a maintenance window now (subjects, labels: their
        // checks and alerts count for nothing in the verdict).
        let mut parts: HashMap<String, Vec<qmoi_core::alerts::Scope>> = HashMap::new();
        // Maintenance windows in force (kept in the dashboard's database, where the
        // notifier reads them too).
        if let Some(d) = &self.dashboard {
            let now = qmoi_dashboard::hub::unix_now();
            self.open_recurring(d, now);
            match d.hub().store.maintenance(now) {
                Ok(windows) => {
                    let in_force = || windows.iter().filter(|w| w.starts_at <= now);
                    for c in &mut components {
                        c.maintenance =
                            in_force().find(|w| w.component == c.id && w.part().all()).map(|w| w.describe());
                        let partial = || in_force().filter(|w| w.window().of(&c.id) && !w.part().all());
                        c.maintenance_subjects =
                            partial().map(|w| format!("{} {}", w.part_name(), w.describe())).collect();
                        let p: Vec<_> = partial().map(|w| w.part()).collect();
                        if !p.is_empty() {
                            parts.insert(c.id.clone(), p);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "Cannot read the maintenance windows."),
            }
        }
        let mut info = self.info.clone();
        info.reload = self.last_reload.lock().ok().and_then(|r| r.clone());
        let alerts = self.alerts.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        overview::build(components, &self.report_dir, &self.reports, &alerts, Some(info), &parts)
    }

    /// Read the configuration again and apply what changed (SIGHUP, `qmoi-supervisor
    /// reload`): the answer lists what changed, or why nothing did.
    async fn reload(&self) -> Result<String, String> {
        let _one = self.reloading.lock().await;
        let started = Instant::now();
        let result = self.apply_reload().await;
        let took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let at = chrono::Utc::now();
        let info = match &result {
            Ok((changes, pending)) => {
                tracing::info!(took_ms, changes = %changes.join("; "), not_applied = %pending.join(", "), "Configuration reloaded.");
                ReloadInfo {
                    at,
                    ok: true,
                    changes: changes.clone(),
                    pending_restart: pending.clone(),
                    took_ms,
                    ..Default::default()
                }
            }
            Err(errors) => {
                tracing::error!(errors = %errors.join("; "), "The new configuration is invalid; nothing changed.");
                ReloadInfo { at, ok: false, errors: errors.clone(), took_ms, ..Default::default() }
            }
        };
        if let Ok(mut r) = self.last_reload.lock() {
            *r = Some(info.clone());
        }
        self.changed.notify_one();
        let list = |items: &[String]| items.iter().map(|i| format!("\n  {i}")).collect::<String>();
        if !info.ok {
            return Err(format!(
                "the new configuration is invalid; nothing changed (the previous one keeps running):{}",
                list(&info.errors)
            ));
        }
        let mut msg = format!("configuration reloaded in {} ms", info.took_ms);
        msg.push_str(&if info.changes.is_empty() { "\n  nothing changed".into() } else { list(&info.changes) });
        if !info.pending_restart.is_empty() {
            msg.push_str(&format!(
                "\n  changed but applied only when the supervisor restarts: {}",
                info.pending_restart.join(", ")
            ));
        }
        Ok(msg)
    }

    /// The reload itself: `Ok((what changed, what waits for a restart))`, or every
    /// problem of the new configuration (and then nothing changed).
    async fn apply_reload(&self) -> Result<(Vec<String>, Vec<String>), Vec<String>> {
        let common = self.common.clone();
        // Reading and hashing files: off the async workers.
        let (plan, fps) = tokio::task::spawn_blocking(move || {
            let plan = crate::load_plan(&common)?;
            let fps = reload::fingerprints(&plan);
            Ok::<_, Error>((plan, fps))
        })
        .await
        .map_err(|e| vec![e.to_string()])?
        .map_err(|e| vec![e.to_string()])?;
        let (old, old_fps) = {
            let m = self.monitors();
            (m.plan.clone(), m.fingerprints.clone())
        };
        let why = reload::changed(&plan, &old_fps, &fps);
        // Everything is checked before anything changes: each binary that will start,
        // and its configuration as the binary itself reads it (`--validate`).
        let starting: Vec<ComponentSpec> =
            plan.components.iter().filter(|s| s.enabled && why.contains_key(&s.id)).cloned().collect();
        let mut problems: Vec<String> =
            starting.iter().filter_map(|s| s.binary.as_ref().err().map(|e| format!("{}: {e}", s.id))).collect();
        problems.extend(crate::validate_children(&Plan { components: starting, ..plan.clone() }).await);
        if !problems.is_empty() {
            return Err(problems);
        }

        let mut changes = reload::applied_settings(&old.config, &plan.config);
        let mut pending = reload::pending_restart(&old.config, &plan.config);
        if let Some(d) = &self.dashboard
            && plan.config.dashboard.enabled
        {
            match d.reconfigure(&old.config.dashboard, &plan.config.dashboard) {
                Ok(applied) => changes.extend(applied),
                Err(what) => pending.push(what),
            }
        }
        *self.alerts.write().unwrap_or_else(std::sync::PoisonError::into_inner) = plan.config.alerts.clone();
        *self.recurring.write().unwrap_or_else(std::sync::PoisonError::into_inner) = recurring(&plan);
        let (applied, sends) = self.monitors().reconcile(&plan, fps, &why);
        changes.extend(applied);
        for (tx, cmd) in sends {
            // A task that ended (the supervisor stopping) needs nothing more.
            let _ = tx.send(cmd).await;
        }
        if let Ok(mut view) = self.config_view.write() {
            view["master_monitor"]["effective"] = serde_json::to_value(&plan.config).unwrap_or_default();
        }
        if let Some(me) = self.me.get() {
            fill_config_view(me.clone(), plan);
        }
        Ok((changes, pending))
    }

    /// Open the windows of `[[maintenance]]` whose time has come: a row per occurrence and
    /// component in the table the notifier reads too (once: ended by hand, it stays ended).
    fn open_recurring(&self, d: &qmoi_dashboard::Dashboard, now: i64) {
        let Some(t) = chrono::DateTime::from_timestamp(now, 0) else { return };
        let recurring = self.recurring.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (m, cron, secs) in recurring.iter() {
            let Some(start) = cron.last_at_or_before(t).map(|s| s.timestamp()) else { continue };
            if now >= start + secs {
                continue;
            }
            let any = [qmoi_core::maintenance::ANY_COMPONENT.to_string()];
            let components = if m.components.is_empty() { &any[..] } else { &m.components[..] };
            let reason = &m.reason;
            for c in components {
                let w = qmoi_dashboard::store::Maintenance {
                    id: 0,
                    component: c.clone(),
                    subject: m.subject.clone(),
                    labels: m.labels.clone(),
                    reason: reason.clone(),
                    created_by: "config".into(),
                    created_at: now,
                    starts_at: start,
                    ends_at: start + secs,
                };
                match d.hub().store.open_scheduled_maintenance(&w) {
                    Ok(true) => tracing::info!(component = %c, reason = %reason, "Maintenance window opened (config)."),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "Cannot open a maintenance window."),
                }
            }
        }
    }

    /// The admin actions for a local operator (the control socket is the supervisor's
    /// user's only: mode 0600), as `cli:<user>` in the audit log.
    async fn as_operator<T>(
        &self,
        by: &str,
        f: impl AsyncFnOnce(&qmoi_dashboard::actions::Ctx<'_>) -> Result<T, qmoi_dashboard::actions::ActionError>,
    ) -> Result<T, String> {
        let Some(d) = &self.dashboard else {
            return Err("maintenance windows are kept by the dashboard: enable [dashboard]".into());
        };
        let shared = d.shared();
        let id = qmoi_dashboard::auth::Identity {
            name: format!("cli:{}", if by.is_empty() { "unknown" } else { by }),
            role: qmoi_dashboard::config::Role::Admin,
        };
        // Trusted as admin even without [dashboard.auth]: the socket is the operator's.
        let ctx = qmoi_dashboard::actions::Ctx {
            auth_enabled: true,
            ..shared.actions(&id, std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        };
        f(&ctx).await.map_err(|e| e.to_string())
    }

    fn restart_component(&self, component: &str) -> Result<String, String> {
        let Some(tx) = self.monitors().cmds.get(component).cloned() else {
            let mut known: Vec<String> = self.monitors().cmds.keys().cloned().collect();
            known.sort();
            return Err(format!("'{component}' is not a configured component (configured: {})", known.join(", ")));
        };
        if self.shared.lock().get(component).is_some_and(|c| c.state == State::Disabled) {
            return Err(format!("'{component}' is disabled in the config (enabled = false)"));
        }
        tx.try_send(Cmd::Restart).map_err(|e| format!("cannot reach the {component} task: {e}"))?;
        tracing::info!(component = %component, "Restart requested.");
        Ok(format!("restarting {component}"))
    }

    /// Restart every enabled component, as `restart-component` does for one.
    fn restart_all(&self) -> Result<String, String> {
        let enabled: Vec<String> = {
            let states = self.shared.lock();
            let mut ids: Vec<String> =
                states.iter().filter(|(_, c)| c.state != State::Disabled).map(|(id, _)| id.clone()).collect();
            ids.sort();
            ids
        };
        let mut failed = Vec::new();
        for id in &enabled {
            if let Err(e) = self.restart_component(id) {
                failed.push(e);
            }
        }
        if failed.is_empty() { Ok(format!("restarting {}", enabled.join(", "))) } else { Err(failed.join("; ")) }
    }

    /// Clear restart counters, backoff and failures of every component.
    fn reset(&self) -> String {
        for tx in self.monitors().cmds.values() {
            let _ = tx.try_send(Cmd::Reset);
        }
        tracing::info!("Reset requested.");
        "restart counters, backoff and failures cleared; failed components are starting again".into()
    }

    /// Stop the HTTP server and start it again on the same address. The monitors, the
    /// history and the live state are not touched.
    async fn restart_dashboard(&self) -> Result<String, String> {
        let Some(d) = &self.dashboard else {
            return Err("the dashboard is disabled (dashboard.enabled = false)".into());
        };
        let mut guard = self.server.lock().await;
        let Some(old) = guard.take() else {
            return Err("the dashboard is not running".into());
        };
        let addr = old.addr;
        old.stop().await;
        // The old accept loop lets go of the port as it stops; give it a moment.
        let mut bound = tokio::net::TcpListener::bind(addr).await;
        for _ in 0..40 {
            if bound.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            bound = tokio::net::TcpListener::bind(addr).await;
        }
        let listener = bound.map_err(|e| format!("cannot listen on {addr} again: {e}"))?;
        let server = d.serve(listener).map_err(|e| e.to_string())?;
        let url = server.url();
        *guard = Some(server);
        tracing::info!(%url, "Dashboard restarted.");
        Ok(format!("dashboard restarted on {url}"))
    }
}

impl control::Handler for Control {
    async fn handle(&self, req: control::Request) -> control::Response {
        use control::{Request, Response};
        let done = |r: Result<String, String>| match r {
            Ok(m) => Response::message(m),
            Err(e) => Response::error(e),
        };
        match req {
            // Building the overview stats and may decode report files: off the async workers.
            Request::Status => Response {
                ok: true,
                overview: Some(Box::new(qmoi_core::runner::off_the_workers(|| self.overview()))),
                ..Response::default()
            },
            Request::RestartComponent { component } => done(self.restart_component(&component)),
            Request::RestartAll => done(self.restart_all()),
            Request::Reset => Response::message(self.reset()),
            Request::RestartDashboard => done(self.restart_dashboard().await),
            Request::Reload => done(self.reload().await),
            Request::MaintenanceAdd { component, subject, labels, for_s, reason, by } => {
                let now = qmoi_dashboard::hub::unix_now();
                let window = qmoi_dashboard::actions::NewWindow {
                    component: &component,
                    subject: subject.as_deref(),
                    labels: &labels,
                    starts_at: now,
                    ends_at: now.saturating_add(i64::try_from(for_s).unwrap_or(i64::MAX / 2)),
                    reason: &reason,
                };
                done(
                    self.as_operator(&by, async |c| c.add_maintenance(window).await)
                        .await
                        .map(|w| format!("maintenance window {} for {}: {}", w.id, w.scope(), w.describe())),
                )
            }
            Request::MaintenanceEnd { id, by } => done(
                self.as_operator(&by, async |c| c.end_maintenance(id).await)
                    .await
                    .map(|()| format!("maintenance window {id} ended")),
            ),
            Request::MaintenanceList => {
                let Some(d) = &self.dashboard else {
                    return Response::error("maintenance windows are kept by the dashboard: enable [dashboard]");
                };
                let now = qmoi_dashboard::hub::unix_now();
                match d.hub().store.maintenance(now) {
                    Ok(ws) if ws.is_empty() => Response::message("no maintenance window"),
                    Ok(ws) => Response::message(
                        ws.iter()
                            .map(|w| {
                                let when = if w.starts_at <= now { "in force" } else { "to come" };
                                format!("{:>4}  {:<24} {when:<8}  {}", w.id, w.scope(), w.describe())
                            })
                            .collect::<Vec<_>>()
                            .join("\n"),
                    ),
                    Err(e) => Response::error(e.to_string()),
                }
            }
        }
    }
}

/// The dashboard's handle on the supervisor, set once the control state exists (the
/// dashboard is created first, so it can refuse to start before any monitor does).
struct DashboardBackend(OnceLock<Weak<Control>>);

impl DashboardBackend {
    fn control(&self) -> Option<Arc<Control>> {
        self.0.get().and_then(Weak::upgrade)
    }
}

impl qmoi_dashboard::Backend for DashboardBackend {
    fn restart(&self, component: &str) -> Result<String, String> {
        self.control().ok_or_else(|| "the supervisor is not ready yet".to_string())?.restart_component(component)
    }

    fn restart_all(&self) -> Result<String, String> {
        self.control().ok_or_else(|| "the supervisor is not ready yet".to_string())?.restart_all()
    }

    fn reset(&self) -> Result<String, String> {
        Ok(self.control().ok_or_else(|| "the supervisor is not ready yet".to_string())?.reset())
    }

    /// The server answering this request is the one restarted: the restart runs on its
    /// own task once the answer is out (awaiting it here would wait for itself).
    fn restart_dashboard(&self) -> Result<String, String> {
        let c = self.control().ok_or_else(|| "the supervisor is not ready yet".to_string())?;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Err(e) = c.restart_dashboard().await {
                tracing::warn!(error = %e, "Cannot restart the dashboard.");
            }
        });
        Ok("restarting the dashboard".into())
    }

    fn config(&self) -> serde_json::Value {
        self.control()
            .map_or(serde_json::Value::Null, |c| c.config_view.read().map_or(serde_json::Value::Null, |v| v.clone()))
    }
}

/// Key of what matters in an overview, to write the master report when it changes.
fn change_key(o: &Overview) -> String {
    let mut k = format!("{}|{:?}", o.verdict.overall, o.verdict.reasons);
    for c in &o.components {
        k.push_str(&format!(
            "|{}:{}:{:?}:{:?}:{:?}:{}:{}:{}",
            c.id, c.state, c.pid, c.report_status, c.summary, c.restarts, c.critical_alerts, c.warning_alerts
        ));
    }
    k
}

/// The dashboard and its running server (both `None` when the dashboard is disabled).
type DashboardParts = (Option<Arc<qmoi_dashboard::Dashboard>>, Option<qmoi_dashboard::Server>);

/// Run the stack until a shutdown signal: start-up, the aggregation loop, shutdown.
/// Kept as one sequence on purpose (~110 lines): the order is the contract (socket, then
/// the dashboard bound, then the monitors, then the control socket served, and only then
/// the address file written) and reads top to bottom; each step is its own function.
pub(crate) async fn run(plan: Plan, common: CommonArgs) -> Result<(), Error> {
    // The supervisor's own configuration was checked before this (exit 2). Each monitor's
    // own is not waited for: one monitor that is broken (a config error, a crash or a hang
    // at start-up) must not keep the others from running. It fails on its own path: exit
    // status 2 marks it `failed` with its message, a crash goes through restart and
    // backoff. `validate` is the strict pre-flight that checks them all.
    for dir in [&common.report_dir, &common.log_dir, &plan.config.paths.run, &plan.config.paths.data] {
        fs_err::create_dir_all(dir).map_err(|e| Error::Runtime(e.to_string()))?;
    }
    let verbosity = qmoi_core::logging::Verbosity { debug: common.debug, verbose: common.verbose };
    let log_file = component::find(MASTER_MONITOR).map_or("master_monitor.log", |c| c.log_file);
    if let Some(note) = qmoi_core::logging::init(&common.log_dir, log_file, verbosity) {
        eprintln!("qmoi-supervisor: {note}");
    }
    let sock = socket_path(&plan);
    let listener = control::bind(&sock).await.map_err(Error::Config)?;
    // From now on SIGHUP reloads (its default would end the process).
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| Error::Runtime(format!("cannot install the SIGHUP handler: {e}")))?;

    // The dashboard binds before any monitor starts: a port in use is reported at once.
    let backend = Arc::new(DashboardBackend(OnceLock::new()));
    let (dashboard, server) = start_dashboard(&plan, &common, backend.clone()).await?;
    let dashboard_url = server.as_ref().map(qmoi_dashboard::Server::url);
    let grpc = start_grpc(&plan, dashboard.as_ref()).await?;
    let grpc_file = plan.config.paths.run.join("grpc.addr");
    let addr_file = plan.config.paths.run.join("dashboard.addr");
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

    let shared = Shared::default();
    let changed = Arc::new(Notify::new());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let monitors = start_monitors(&plan, &common, &shared, &changed, &shutdown_rx)?;
    let info = SupervisorInfo {
        pid: std::process::id(),
        started_at,
        version: env!("CARGO_PKG_VERSION").to_string(),
        config: plan.source.as_ref().map(|p| p.display().to_string()),
        dashboard: dashboard_url.clone(),
        reload: None,
    };
    let config_view = std::sync::RwLock::new(serde_json::json!({
        "master_monitor": {"file": plan.source.as_ref().map(|p| p.display().to_string()), "effective": plan.config},
        "components": {},
    }));
    let hub = dashboard.as_ref().map(|d| d.hub());
    let control = Arc::new(Control {
        shared: shared.clone(),
        monitors: std::sync::Mutex::new(monitors),
        report_dir: common.report_dir.clone(),
        reports: overview::ReportCache::default(),
        alerts: std::sync::RwLock::new(plan.config.alerts.clone()),
        info,
        config_view,
        dashboard,
        server: tokio::sync::Mutex::new(server),
        recurring: std::sync::RwLock::new(recurring(&plan)),
        common: common.clone(),
        reloading: tokio::sync::Mutex::new(()),
        last_reload: std::sync::Mutex::new(None),
        changed: changed.clone(),
        me: OnceLock::new(),
    });
    let _ = control.me.set(Arc::downgrade(&control));
    let _ = backend.0.set(Arc::downgrade(&control));
    spawn_reloader(hangups, Arc::downgrade(&control));
    fill_config_view(Arc::downgrade(&control), plan.clone());
    // The API has an answer before anyone is told where it is.
    if let Some(h) = hub.clone() {
        let o = control.overview();
        let _ = tokio::task::spawn_blocking(move || h.refresh(o)).await;
    }
    for (file, addr) in
        [(&addr_file, dashboard_url.clone()), (&grpc_file, grpc.as_ref().map(|g| format!("{}", g.addr)))]
    {
        match addr {
            Some(a) => {
                if let Err(e) = qmoi_core::report::write_json_atomic(file, format!("{a}\n").as_bytes()) {
                    tracing::warn!(error = %e, file = %file.display(), "Cannot write an address file.");
                }
            }
            None => {
                let _ = std::fs::remove_file(file);
            }
        }
    }

    let mut ctl_shutdown = shutdown_rx.clone();
    let control_task = tokio::spawn(control::serve(listener, control.clone(), async move {
        let _ = ctl_shutdown.changed().await;
    }));
    tracing::info!(
        pid = std::process::id(),
        components = plan.components.iter().filter(|c| c.enabled).count(),
        socket = %sock.display(),
        dashboard = dashboard_url.as_deref().unwrap_or("disabled"),
        "Supervisor started."
    );
    let remote_write = start_remote_write(&plan, control.dashboard.as_ref(), &host)?;
    let mut aggregator = Aggregator::new(&plan, &common, control.clone(), host.clone());
    aggregator.remote_write = remote_write;
    let aggregation = tokio::spawn(aggregator.run(changed, hub, shutdown_rx.clone()));

    qmoi_core::runner::shutdown_signal().await;
    if let Some(g) = grpc {
        g.stop().await;
    }
    let stop_timeout = control.monitors().plan.config.restart.stop_timeout.get();
    stop_monitors(&control, &shutdown_tx, stop_timeout).await;
    let _ = control_task.await;
    if let Ok(mut a) = aggregation.await {
        // The final word: every monitor stopped.
        let o = control.overview();
        let report = a.build(&o);
        if let Err(e) = a.writer.write(&report) {
            tracing::error!(error = %e, "Cannot write the final master report.");
        }
    }
    let _ = std::fs::remove_file(&addr_file);
    let _ = std::fs::remove_file(&grpc_file);
    if let Err(e) = std::fs::remove_file(&sock) {
        tracing::debug!(error = %e, "Cannot remove the control socket.");
    }
    tracing::info!("Supervisor stopped.");
    Ok(())
}

/// Shutdown: the dashboard stops answering, every monitor task is told to stop and given
/// `stop_timeout` (and 2 s) to do so; what is left is killed.
async fn stop_monitors(control: &Control, shutdown: &watch::Sender<bool>, stop_timeout: Duration) {
    if let Some(s) = control.server.lock().await.take() {
        s.stop().await;
    }
    let mut tasks = std::mem::take(&mut control.monitors().tasks);
    tracing::info!("Stopping every monitor.");
    let _ = shutdown.send(true);
    let grace = stop_timeout + Duration::from_secs(2);
    let all_stopped = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if all_stopped.is_err() {
        // Dropping the tasks drops their `Child` handles, which SIGKILLs them (kill_on_drop).
        tracing::warn!("Some monitors did not stop in time; killing them.");
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

/// Open the dashboard's database and bind its listener (a port in use is an error now).
async fn start_dashboard(
    plan: &Plan,
    common: &CommonArgs,
    backend: Arc<DashboardBackend>,
) -> Result<DashboardParts, Error> {
    if !plan.config.dashboard.enabled {
        return Ok((None, None));
    }
    let mut d = qmoi_dashboard::Dashboard::open(
        &plan.config.dashboard,
        &plan.config.paths.data,
        &common.report_dir,
        &common.log_dir,
        &plan.config.fleet,
        backend,
    )
    .map_err(Error::Runtime)?;
    // GraphQL on the dashboard's listener, behind its host check, rate limit and auth.
    d.mount(qmoi_graphql::routes(d.shared()));
    let l = qmoi_dashboard::bind(&plan.config.dashboard).await.map_err(Error::Config)?;
    let server = d.serve(l).map_err(|e| Error::Runtime(e.to_string()))?;
    d.spawn_pruner();
    Ok((Some(Arc::new(d)), Some(server)))
}

/// Bind and serve `[grpc]` (off: `None`). A port in use is an error now, as the dashboard's.
async fn start_grpc(
    plan: &Plan,
    dashboard: Option<&Arc<qmoi_dashboard::Dashboard>>,
) -> Result<Option<qmoi_grpc::Server>, Error> {
    // Validation refuses gRPC without the dashboard, whose cache and store it serves.
    let (true, Some(d)) = (plan.config.grpc.enabled, dashboard) else { return Ok(None) };
    let l = qmoi_grpc::bind(&plan.config.grpc).await.map_err(Error::Config)?;
    let tls = plan
        .config
        .grpc
        .tls
        .as_ref()
        .map(|t| qmoi_dashboard::tls::load(t, &[b"h2"]))
        .transpose()
        .map_err(Error::Config)?;
    qmoi_grpc::serve(l, d.shared(), tls).map(Some).map_err(Error::Runtime)
}

/// Start pushing `/metrics` to the `[remote_write]` receivers (none configured: `None`).
fn start_remote_write(
    plan: &Plan,
    dashboard: Option<&Arc<qmoi_dashboard::Dashboard>>,
    host: &str,
) -> Result<Option<qmoi_remote_write::RemoteWrite>, Error> {
    let cfg = &plan.config.remote_write;
    // Validation refuses receivers without the dashboard, whose /metrics is what is pushed.
    let (true, Some(d)) = (cfg.enabled(), dashboard) else { return Ok(None) };
    let d = d.clone();
    let source: qmoi_remote_write::Source =
        Arc::new(move || d.metrics_parts().iter().map(|b| String::from_utf8_lossy(b)).collect::<String>());
    let rw =
        qmoi_remote_write::RemoteWrite::start(cfg, &plan.config.paths.data, host, source).map_err(Error::Runtime)?;
    tracing::info!(receivers = cfg.receivers.len(), interval = %cfg.interval, "Remote write started.");
    Ok(Some(rw))
}

/// Reload on every SIGHUP (one at a time; signals that arrive during a reload make one
/// more), until the supervisor is gone.
fn spawn_reloader(mut hangups: tokio::signal::unix::Signal, control: Weak<Control>) {
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let Some(c) = control.upgrade() else { return };
            tracing::info!("SIGHUP received; reloading the configuration.");
            // The outcome is logged, in `status` and in the master report.
            let _ = c.reload().await;
        }
    });
}

/// Each monitor's effective config, for the dashboard's config view: asked of every
/// monitor (`--print-config`) in the background, filled in when all have answered.
fn fill_config_view(control: Weak<Control>, plan: Plan) {
    tokio::spawn(async move {
        let checks = crate::component_configs(&plan).await;
        let components: serde_json::Map<String, serde_json::Value> = checks
            .into_iter()
            .map(|(id, r)| {
                let file = plan.components.iter().find(|c| c.id == id).and_then(|c| c.config.as_ref());
                let file = file.map(|p| p.display().to_string());
                let v = match r {
                    Ok(v) => serde_json::json!({"file": file, "effective": v}),
                    Err(e) => {
                        tracing::warn!(component = %id, error = %e, "The monitor cannot print its configuration.");
                        serde_json::json!({"file": file, "error": e})
                    }
                };
                (id, v)
            })
            .collect();
        if let Some(c) = control.upgrade()
            && let Ok(mut view) = c.config_view.write()
        {
            view["components"] = serde_json::Value::Object(components);
        }
    });
}

/// The aggregation loop's state: it writes the master report when what matters changes
/// (or every report interval), and refreshes the dashboard.
struct Aggregator {
    writer: ReportWriter,
    tracker: AlertTracker,
    control: Arc<Control>,
    host: String,
    interval: Duration,
    /// Its counters go into the master report (and so onto /metrics).
    remote_write: Option<qmoi_remote_write::RemoteWrite>,
}

impl Aggregator {
    fn new(plan: &Plan, common: &CommonArgs, control: Arc<Control>, host: String) -> Self {
        let writer = ReportWriter::new(&common.report_dir, MASTER_MONITOR, plan.config.report.history.policy());
        let mut tracker = AlertTracker::new();
        // Alerts keep their `since` across a restart of the supervisor.
        if let ReadOutcome::Ok { report, .. } = qmoi_core::report::read_report(&writer.latest_path()) {
            tracker.seed_from(&report);
        }
        Self { writer, tracker, control, host, interval: plan.config.report.interval.get(), remote_write: None }
    }

    /// The master report of `o`, with the remote-write counters.
    fn build(&mut self, o: &Overview) -> qmoi_core::report::Report {
        let notes: Vec<(&str, String)> = self
            .control
            .dashboard
            .as_ref()
            .and_then(|d| d.hub().store.note.clone())
            .map(|n| ("database:history", n))
            .into_iter()
            .collect();
        let mut report = master_report::build(o, &mut self.tracker, &self.host, self.interval.as_secs(), &notes);
        if let Some(rw) = &self.remote_write {
            report.metrics.extend(rw.metrics());
        }
        report
    }

    /// Until shutdown: on every change a monitor task signals, and at least every second.
    /// Returns itself for the final report.
    async fn run(
        mut self,
        changed: Arc<Notify>,
        hub: Option<Arc<qmoi_dashboard::Hub>>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Self {
        let mut last_key = String::new();
        let mut last_write: Option<Instant> = None;
        loop {
            tokio::select! {
                () = changed.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => break,
            }
            // Reading reports and fsyncing the master report: off the async workers, so
            // the control socket and the dashboard answer meanwhile.
            let o = qmoi_core::runner::off_the_workers(|| {
                let o = self.control.overview();
                let key = change_key(&o);
                if key != last_key || last_write.is_none_or(|t| t.elapsed() >= self.interval) {
                    let report = self.build(&o);
                    if let Err(e) = self.writer.write(&report) {
                        tracing::error!(error = %e, "Cannot write the master report.");
                    }
                    last_key = key;
                    last_write = Some(Instant::now());
                }
                o
            });
            if let Some(h) = hub.clone() {
                // File and database IO: off the async worker threads.
                let _ = tokio::task::spawn_blocking(move || h.refresh(o)).await;
            }
        }
        self
    }
}
