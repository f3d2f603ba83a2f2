//! `qmoi-notify`: turns the monitors' alerts into notifications, durably.
//!
//! A reader of reports (docs/ARCHITECTURE.md, "The report"): it watches `logs/*_latest.json` (inotify through
//! the `notify` crate, plus a periodic rescan), keeps every firing alert by fingerprint in
//! `data/notification.db`, and sends a message when an alert starts firing, while it keeps
//! firing (repeat interval, escalation) and when it resolves.
//!
//! Flow of one step (one SQLite transaction, committed before anything is sent):
//! reports → [`engine::Engine::observe`] (transitions) → [`engine::Engine::tick`]
//! (first notifications, repeats, escalations; silences, inhibition, acks) →
//! [`engine::Engine::flush`] (groups → messages, quiet hours, rate limits) → outbox.
//! Then due outbox rows are sent concurrently (one at a time per target, so order holds);
//! each result is recorded in another transaction: delivered → history; failed → retry
//! with backoff → dead letters after the last attempt.

pub mod config;
pub mod engine;
pub mod model;
pub mod policy;
pub mod render;
pub mod send;
pub mod store;
pub mod tools;

use crate::config::{ChannelKind, NotifyConfig};
use crate::engine::{Engine, StepStats};
use crate::model::Message;
use crate::policy::{Policy, PolicyReader};
use crate::send::{Failure, Sender};
use crate::store::{Cached, Ctx, Store, bump};
use chrono::Utc;
use qmoi_core::report::{Alert, CheckResult};
use qmoi_core::runner::{Background, Mode, Monitor, Outcome, RunContext, Stopping};
use qmoi_core::status::Status;
use rusqlite::params;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub use crate::store::StoreError;

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// The result of one delivery attempt, sent back to the loop that owns the database.
#[derive(Debug)]
pub struct Done {
    pub outbox_id: i64,
    pub channel: String,
    pub target: i64,
    pub result: Result<String, Failure>,
    pub latency: Duration,
}

/// Identity of a report file version: a changed one is read again.
type FileStamp = (std::time::SystemTime, u64, u64);

pub struct Notifier {
    cfg: Arc<NotifyConfig>,
    pub store: Store,
    engine: Engine,
    sender: Arc<Sender>,
    policy: Policy,
    policy_reader: PolicyReader,
    policy_error: Option<String>,
    report_dir: PathBuf,
    seen: HashMap<String, FileStamp>,
    unreadable: HashMap<String, String>,
    in_flight: HashSet<(String, i64)>,
    watch_note: Option<String>,
    /// Latency of the last successful delivery per channel (from entering the outbox).
    last_latency: BTreeMap<String, f64>,
    /// Committed outbox rows of the last step, to send without reading them back.
    fresh: Vec<(i64, String, i64, Message)>,
}

/// The notifier as a monitor of the shared runner: building it compiles the templates and
/// makes the sender (so `--validate` finds what they find); [`Monitor::start`] takes the
/// database (and, unless it only reads, its lock); each run reports channels, backlog and
/// dead letters; the deliveries themselves run in [`Monitor::background`], as alerts
/// change, not on the report interval.
pub struct NotifyMonitor {
    cfg: Arc<NotifyConfig>,
    sender: Arc<Sender>,
    report_dir: PathBuf,
    notifier: Option<Arc<tokio::sync::Mutex<Notifier>>>,
    _db_lock: Option<qmoi_core::runner::Lock>,
}

impl NotifyMonitor {
    pub fn new(cfg: &NotifyConfig, report_dir: &Path) -> Result<Self, String> {
        let cfg = Arc::new(cfg.clone());
        Ok(Self {
            sender: Arc::new(make_sender(&cfg)?),
            cfg,
            report_dir: report_dir.to_path_buf(),
            notifier: None,
            _db_lock: None,
        })
    }
}

/// The templates (a directory's overrides, compiled) and the sender they go through.
pub fn make_sender(cfg: &Arc<NotifyConfig>) -> Result<Sender, String> {
    let dir = if cfg.templates.as_str().is_empty() { None } else { Some(Path::new(cfg.templates.as_str())) };
    let templates = render::Templates::load(dir)?;
    Sender::new(cfg.clone(), Arc::new(templates))
}

impl Monitor for NotifyMonitor {
    fn start(&mut self, mode: Mode) -> Result<(), String> {
        // One notifier per database: two sending from one outbox would deliver every
        // message twice. `--check` only reads.
        if mode != Mode::Check {
            let lock = PathBuf::from(format!("{}.lock", self.cfg.database.path.as_str()));
            let does = format!("sends from {}", self.cfg.database.path);
            self._db_lock = Some(qmoi_core::runner::lock_file(&lock, "notifier", &does)?);
        }
        let n = Notifier::new(self.cfg.clone(), self.sender.clone(), &self.report_dir)?;
        self.notifier = Some(Arc::new(tokio::sync::Mutex::new(n)));
        Ok(())
    }

    async fn run(&mut self, ctx: &RunContext) -> Outcome {
        let Some(n) = &self.notifier else {
            let c = CheckResult::unknown("database", "the notifier was not started");
            return Outcome { checks: vec![c], ..Outcome::default() };
        };
        let mut n = n.lock().await;
        // `--once`: send what is due now, then report.
        let attempted = if ctx.mode == Mode::Once { Some(n.once().await) } else { None };
        n.outcome(attempted)
    }

    fn background(&mut self, stopping: Stopping) -> Option<Background> {
        let n = self.notifier.clone()?;
        Some(Box::pin(deliver(n, stopping)))
    }
}

impl Notifier {
    fn new(cfg: Arc<NotifyConfig>, sender: Arc<Sender>, report_dir: &Path) -> Result<Self, String> {
        let store =
            Store::open(Path::new(cfg.database.path.as_str()), cfg.database.synchronous).map_err(|e| e.to_string())?;
        let engine = Engine::new(cfg.clone(), qmoi_core::report::hostname());
        let policy_reader = PolicyReader::new(Path::new(cfg.dashboard_db.as_str()));
        Ok(Self {
            cfg,
            store,
            engine,
            sender,
            policy: Policy::default(),
            policy_reader,
            policy_error: None,
            report_dir: report_dir.to_path_buf(),
            seen: HashMap::new(),
            unreadable: HashMap::new(),
            in_flight: HashSet::new(),
            watch_note: None,
            last_latency: BTreeMap::new(),
            fresh: Vec::new(),
        })
    }

    fn watched(&self, component: &str) -> bool {
        self.cfg.watch.components.is_empty() || self.cfg.watch.components.iter().any(|c| c == component)
    }

    /// Read the reports that changed since they were last read (`only`: just these
    /// components, from file-system events; `None`: every report in the folder).
    pub fn scan(&mut self, only: Option<&HashSet<String>>) -> Vec<(String, String, Vec<Alert>)> {
        let names: Vec<String> = match only {
            Some(set) => set.iter().cloned().collect(),
            None => match std::fs::read_dir(&self.report_dir) {
                Ok(rd) => rd
                    .filter_map(|e| e.ok())
                    .filter_map(|e| {
                        e.file_name().to_str().and_then(|n| n.strip_suffix("_latest.json")).map(str::to_string)
                    })
                    .collect(),
                Err(e) => {
                    tracing::warn!(dir = %self.report_dir.display(), error = %e, "Cannot list the report folder.");
                    Vec::new()
                }
            },
        };
        let mut out = Vec::new();
        for name in names {
            if !self.watched(&name) {
                continue;
            }
            let path = self.report_dir.join(format!("{name}_latest.json"));
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            let stamp = {
                use std::os::unix::fs::MetadataExt;
                (meta.modified().unwrap_or(std::time::UNIX_EPOCH), meta.len(), meta.ino())
            };
            if self.seen.get(&name) == Some(&stamp) {
                continue;
            }
            match qmoi_core::report::read_report_alerts(&path) {
                Ok(r) => {
                    self.seen.insert(name.clone(), stamp);
                    self.unreadable.remove(&name);
                    out.push((r.component, r.host, r.alerts));
                }
                Err(reason) => {
                    // Keep what we knew: an unreadable report resolves nothing.
                    if self.unreadable.get(&name) != Some(&reason) {
                        tracing::warn!(report = %path.display(), %reason, "Report unusable; keeping its alerts as they were.");
                    }
                    self.unreadable.insert(name, reason);
                }
            }
        }
        out
    }

    pub fn reload_policy(&mut self) {
        match self.policy_reader.read(Utc::now().timestamp()) {
            Ok(p) => {
                self.policy = p;
                self.policy_error = None;
            }
            Err(e) => {
                if self.policy_error.as_deref() != Some(e.as_str()) {
                    tracing::warn!(error = %e, "Cannot read acknowledgements and silences; using the last ones read.");
                }
                self.policy_error = Some(e);
            }
        }
    }

    /// One transaction: observe the changed reports, decide, group into the outbox.
    pub fn step(
        &mut self,
        changed: &[(String, String, Vec<Alert>)],
        now: i64,
        ignore_wait: bool,
    ) -> Result<StepStats, StoreError> {
        let path = self.store.path.clone();
        self.engine.begin_step();
        let tx = self.store.conn.transaction().ctx(&path)?;
        let mut total = StepStats::default();
        for (component, host, alerts) in changed {
            let s = self.engine.observe(&tx, component, host, alerts, now).ctx(&path)?;
            total.transitions += s.transitions;
            total.events += s.events;
        }
        // A report changed: only its component's alerts need deciding now; the periodic
        // step (no changes) looks at every alert for repeats and escalations.
        let only: Vec<&str> = changed.iter().map(|(c, _, _)| c.as_str()).collect();
        let t =
            self.engine.tick(&tx, &self.policy, now, if changed.is_empty() { None } else { Some(&only) }).ctx(&path)?;
        let f = self.engine.flush(&tx, now, ignore_wait).ctx(&path)?;
        if let Err(e) = tx.commit() {
            self.engine.created.clear();
            return Err(e).ctx(&path);
        }
        self.fresh.append(&mut self.engine.created);
        total.events += t.events;
        total.messages += f.messages;
        total.suppressed += f.suppressed;
        if total != StepStats::default() {
            tracing::debug!(?total, "Step.");
        }
        Ok(total)
    }

    /// Outbox rows due now whose target has nothing in flight.
    pub fn due(&mut self, now: i64, limit: usize) -> Result<Vec<(i64, String, i64, Message)>, StoreError> {
        let path = self.store.path.clone();
        let mut st = self
            .store
            .conn
            .prepare_cached(
                "SELECT id, channel, target, message FROM outbox WHERE next_attempt_at <= ?1 ORDER BY id LIMIT ?2",
            )
            .ctx(&path)?;
        let rows: Vec<(i64, String, i64, String)> = st
            .query_map(params![now, (limit + self.in_flight.len()) as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .ctx(&path)?
            .collect::<rusqlite::Result<_>>()
            .ctx(&path)?;
        drop(st);
        let mut out = Vec::new();
        let mut claimed: HashSet<(String, i64)> = HashSet::new();
        for (id, channel, target, json) in rows {
            let key = (channel.clone(), target);
            if self.in_flight.contains(&key) || !claimed.insert(key) {
                continue;
            }
            match serde_json::from_str::<Message>(&json) {
                Ok(m) => out.push((id, channel, target, m)),
                Err(e) => {
                    tracing::error!(id, error = %e, "Unreadable outbox row; moving it to the dead letters.");
                    let done = Done {
                        outbox_id: id,
                        channel,
                        target,
                        result: Err(Failure::Permanent(format!("unreadable message: {e}"))),
                        latency: Duration::ZERO,
                    };
                    self.complete(&done, now)?;
                }
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Start sending the due rows; results arrive on `done`.
    /// `all`: also read the outbox for other due rows (retries, rows from before a restart);
    /// otherwise only this step's new rows are sent (the alert-to-notification path).
    pub fn dispatch(&mut self, now: i64, done: &mpsc::UnboundedSender<Done>, all: bool) -> Result<usize, StoreError> {
        let mut due = Vec::new();
        for row in std::mem::take(&mut self.fresh) {
            let key = (row.1.clone(), row.2);
            if self.in_flight.contains(&key)
                || due.iter().any(|d: &(i64, String, i64, Message)| d.1 == row.1 && d.2 == row.2)
            {
                continue; // sent after the one in flight, from the outbox
            }
            due.push(row);
        }
        for (_, c, t, _) in &due {
            self.in_flight.insert((c.clone(), *t));
        }
        if all {
            due.extend(self.due(now, 64)?);
        }
        let n = due.len();
        for (id, channel, target, msg) in due {
            self.in_flight.insert((channel.clone(), target));
            let sender = self.sender.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let result = sender.send(&msg, usize::try_from(target).unwrap_or(usize::MAX)).await;
                let _ = done.send(Done { outbox_id: id, channel, target, result, latency: started.elapsed() });
            });
        }
        Ok(n)
    }

    /// Exponential backoff ±20 %, or the server's `Retry-After` when that is longer.
    fn backoff(cfg: &NotifyConfig, attempt: i64, after: Option<Duration>) -> Duration {
        let attempt = u32::try_from(attempt.clamp(1, 31)).unwrap_or(1);
        let d = qmoi_core::retry::backoff(cfg.retry.backoff_initial.get(), cfg.retry.backoff_max.get(), attempt, 0.2);
        after.map_or(d, |a| a.max(d))
    }

    /// Record the result of an attempt: delivered → history; failed → retry later or, after
    /// the last attempt (or a permanent error), the dead letters. One transaction.
    pub fn complete(&mut self, d: &Done, now: i64) -> Result<(), StoreError> {
        self.in_flight.remove(&(d.channel.clone(), d.target));
        let path = self.store.path.clone();
        let target_label = self.engine.target_label(&d.channel, usize::try_from(d.target).unwrap_or(usize::MAX));
        let tx = self.store.conn.transaction().ctx(&path)?;
        let row: Option<(String, i64, i64, i64, String)> = {
            use rusqlite::OptionalExtension;
            tx.row(
                "SELECT msg_id, attempts, max_attempts, created_at, message FROM outbox WHERE id = ?1",
                [d.outbox_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()
            .ctx(&path)?
        };
        let Some((msg_id, attempts, max_attempts, created_at, json)) = row else {
            return Ok(());
        };
        let msg: Option<Message> = serde_json::from_str(&json).ok();
        let description = msg.as_ref().map_or_else(|| "(unreadable)".into(), Message::describe);
        let fps = msg.as_ref().map(Message::fingerprints).unwrap_or_default();
        let attempt = attempts + 1;
        let latency_ms = (now - created_at).max(0);
        let history = |result: &str, detail: &str| {
            tx.exec(
                "INSERT INTO history (at, msg_id, channel, target, result, description, fingerprints, attempt, latency_ms, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![now, msg_id, d.channel, target_label, result, description, fps, attempt, latency_ms, detail],
            )
        };
        match &d.result {
            Ok(detail) => {
                tx.exec("DELETE FROM outbox WHERE id = ?1", [d.outbox_id]).ctx(&path)?;
                history("sent", detail).ctx(&path)?;
                bump(&tx, &d.channel, "sent", 1).ctx(&path)?;
                tracing::info!(channel = %d.channel, target = %target_label, msg = %description, attempt, ms = d.latency.as_millis() as u64, "Delivered.");
                self.last_latency.insert(d.channel.clone(), latency_ms as f64 / 1000.0);
            }
            Err(f) => {
                bump(&tx, &d.channel, "failed", 1).ctx(&path)?;
                let best_effort = msg.as_ref().is_some_and(|m| m.best_effort);
                let retry = matches!(f, Failure::Retry { .. }) && attempt < max_attempts;
                if best_effort && !retry {
                    tx.exec("DELETE FROM outbox WHERE id = ?1", [d.outbox_id]).ctx(&path)?;
                    history("failed", &format!("{f} (a refresh; the next one replaces it)")).ctx(&path)?;
                } else if retry {
                    let after = match f {
                        Failure::Retry { after, .. } => *after,
                        Failure::Permanent(_) => None,
                    };
                    let wait = Self::backoff(&self.cfg, attempt, after);
                    tx.exec(
                        "UPDATE outbox SET attempts = ?2, next_attempt_at = ?3, last_error = ?4 WHERE id = ?1",
                        params![d.outbox_id, attempt, now + wait.as_millis() as i64, f.message()],
                    )
                    .ctx(&path)?;
                    let detail =
                        format!("attempt {attempt}/{max_attempts} failed: {f}; next in {:.1}s", wait.as_secs_f64());
                    history("failed", &detail).ctx(&path)?;
                    tracing::warn!(channel = %d.channel, target = %target_label, error = %f, attempt, max_attempts, "Delivery failed; will retry.");
                } else {
                    tx.exec(
                        "INSERT INTO dead_letters (msg_id, channel, target, created_at, failed_at, attempts, last_error, message)
                         SELECT msg_id, channel, target, created_at, ?2, ?3, ?4, message FROM outbox WHERE id = ?1",
                        params![d.outbox_id, now, attempt, f.message()],
                    )
                    .ctx(&path)?;
                    tx.exec("DELETE FROM outbox WHERE id = ?1", [d.outbox_id]).ctx(&path)?;
                    let why = if matches!(f, Failure::Permanent(_)) { "permanent error" } else { "last attempt" };
                    history("dead", &format!("{why} ({attempt}/{max_attempts}): {f}")).ctx(&path)?;
                    bump(&tx, &d.channel, "dead", 1).ctx(&path)?;
                    tracing::error!(channel = %d.channel, target = %target_label, error = %f, attempt, "Delivery failed for good; moved to the dead letters (qmoi-notify --status, --retry-dead).");
                }
            }
        }
        tx.commit().ctx(&path)
    }

    pub fn prune(&self, now: i64) {
        let age = self.cfg.database.history_retention.get().as_millis() as i64;
        match self.store.prune_history(now, age, self.cfg.database.history_max_rows) {
            Ok(n) if n > 0 => tracing::info!(rows = n, "Pruned notification history."),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "Cannot prune the notification history."),
        }
    }

    /// What the notifier's own report says: channel health, backlog, dead letters, recent
    /// history; `attempted`: what `--once` sent.
    fn outcome(&self, attempted: Option<Result<usize, StoreError>>) -> Outcome {
        let now = Utc::now();
        let mut checks = Vec::new();
        match attempted {
            Some(Ok(n)) => checks.push(CheckResult::ok("delivery", format!("{n} delivery attempt(s) in this run"))),
            Some(Err(e)) => checks.push(
                CheckResult::unknown("delivery", format!("cannot deliver: {e}"))
                    .with_title("The notifier cannot work through its outbox"),
            ),
            None => {}
        }
        let mut metrics = BTreeMap::new();
        let store = &self.store;
        // A database that cannot be read is reported as such, never as "0 pending".
        let mut db_errors: Vec<String> = Vec::new();
        let mut got = |what: &str, e: &dyn std::fmt::Display| db_errors.push(format!("{what}: {e}"));
        let pending = store.pending(1000).map_err(|e| got("the outbox", &e)).ok();
        let dead = store.dead_letters(1000).map_err(|e| got("the dead letters", &e)).ok();
        let counters = store.counters().map_err(|e| got("the counters", &e)).unwrap_or_default();
        let recent = store.history(20).map_err(|e| got("the history", &e)).unwrap_or_default();
        let queued = store.count("queue").map_err(|e| got("the group queue", &e)).ok();
        let firing = Engine::firing_counts(&store.conn).map_err(|e| got("the alert states", &e)).ok();
        let held = self
            .engine
            .suppressed_by_parent(&store.conn, now.timestamp_millis())
            .map_err(|e| got("the dependencies", &e))
            .ok();
        let (pending_rows, dead_rows) = (pending.as_deref().unwrap_or(&[]), dead.as_deref().unwrap_or(&[]));
        let mut channels = Vec::new();
        for (name, c) in &self.cfg.channels {
            let (check, row) = self.channel_health(name, c, pending_rows, dead_rows, &counters, &mut metrics);
            checks.push(check);
            channels.push(row);
        }
        let refs = self.cfg.unusable_channel_refs();
        checks.push(if refs.is_empty() {
            CheckResult::ok("routing", "every channel named in priorities and routes is configured")
        } else {
            let text: Vec<String> = refs.iter().map(|(k, m)| format!("{k}: {m}")).collect();
            CheckResult::new("routing", Status::Warning, text.join("; "))
                .with_title("Notification routing names unusable channels")
        });
        let oldest = store.oldest_pending_ms().map_err(|e| got("the oldest pending notification", &e)).ok().flatten();
        let backlog_age = oldest.map_or(0.0, |t| (now.timestamp_millis() - t).max(0) as f64 / 1000.0);
        if !db_errors.is_empty() {
            checks.push(
                CheckResult::unknown("database", format!("cannot read {}: {}", self.store.path, db_errors.join("; ")))
                    .with_title("The notifier cannot read its database"),
            );
        }
        if let Some(note) = store.note.as_ref().filter(|_| db_errors.is_empty()) {
            // Until the notifier restarts: what was pending in the old file was not sent.
            checks.push(
                CheckResult::new("database", Status::Warning, format!("{note}; what it held pending was not sent"))
                    .with_title("The notifier's database was unreadable and started anew"),
            );
        }
        checks.push(if let (Some(pending), Some(queued)) = (&pending, queued) {
            if backlog_age > 300.0 {
                CheckResult::new(
                    "backlog",
                    Status::Warning,
                    format!(
                        "{} notification(s) pending, the oldest for {}",
                        pending.len(),
                        qmoi_core::human::duration(backlog_age)
                    ),
                )
                .with_title("Notifications are not going out")
            } else {
                CheckResult::ok("backlog", format!("{} pending, {queued} waiting for their group", pending.len()))
            }
            .with_value(backlog_age, "seconds")
        } else {
            CheckResult::unknown("backlog", "unknown: the outbox cannot be read (see the database check)")
        });
        self.input_checks(&mut checks);
        // What could not be read has no metric (an absent series, not a false 0).
        if let Some(p) = &pending {
            metrics.insert("qmoi_notify_pending".into(), p.len() as f64);
            metrics.insert("qmoi_notify_oldest_pending_seconds".into(), backlog_age);
        }
        if let Some(q) = queued {
            metrics.insert("qmoi_notify_queued_events".into(), q as f64);
        }
        if let Some(d) = &dead {
            metrics.insert("qmoi_notify_dead_letters".into(), d.len() as f64);
        }
        if let Some(h) = held.as_ref().filter(|_| !self.cfg.dependencies.is_empty()) {
            metrics.insert("qmoi_notify_suppressed_by_parent".into(), h.len() as f64);
        }
        if let Some(f) = &firing {
            for l in ["critical", "warning", "info"] {
                metrics.insert(format!("qmoi_notify_firing_alerts{{level=\"{l}\"}}"), *f.get(l).unwrap_or(&0) as f64);
            }
        }
        let details = qmoi_core::report::Details::of(&serde_json::json!({
            "channels": channels,
            "firing_alerts": firing,
            "suppressed_by_parent": held.unwrap_or_default().iter()
                .map(|(fp, rule, parent)| serde_json::json!({"fingerprint": fp, "dependency": rule, "parent": parent}))
                .collect::<Vec<_>>(),
            "pending": pending_rows.iter().take(20).collect::<Vec<_>>(),
            "dead_letters": dead_rows.iter().take(20).collect::<Vec<_>>(),
            "recent": recent,
            "database": self.store.path,
        }));
        Outcome { checks, metrics, details, ..Outcome::default() }
    }

    /// What the notifier reads: the report folder's watch, the dashboard's
    /// acknowledgements and silences, and each report it cannot use.
    fn input_checks(&self, checks: &mut Vec<CheckResult>) {
        checks.push(match &self.watch_note {
            Some(n) => CheckResult::new("watch", Status::Warning, n.clone()),
            None => CheckResult::ok("watch", format!("watching {} for report changes", self.report_dir.display())),
        });
        if let Some(e) = &self.policy_error {
            checks.push(CheckResult::new(
                "policy",
                Status::Warning,
                format!("acknowledgements and silences unreadable: {e}"),
            ));
        }
        for (name, reason) in &self.unreadable {
            checks.push(CheckResult::new(format!("report:{name}"), Status::Warning, reason.clone()));
        }
    }

    /// One channel's check, metrics and `details.channels` row: dead letters (critical),
    /// retries (warning), else its counts.
    fn channel_health(
        &self,
        name: &str,
        c: &config::ChannelConfig,
        pending_rows: &[store::PendingRow],
        dead_rows: &[store::DeadRow],
        counters: &[(String, String, u64)],
        metrics: &mut BTreeMap<String, f64>,
    ) -> (CheckResult, serde_json::Value) {
        let count = |what: &str| counters.iter().find(|(c, n, _)| c == name && n == what).map_or(0, |(_, _, v)| *v);
        let kind = c.kind_for(name).map_or("?", ChannelKind::as_str);
        let targets: Vec<String> = (0..self.engine.targets(name)).map(|i| self.engine.target_label(name, i)).collect();
        let retrying: Vec<&store::PendingRow> =
            pending_rows.iter().filter(|p| p.channel == name && p.attempts > 0).collect();
        let dead_n = dead_rows.iter().filter(|d| d.channel == name).count();
        let (sent, failed, suppressed) = (count("sent"), count("failed"), count("suppressed"));
        let check_name = format!("channel:{name}");
        let check = if !c.enabled {
            CheckResult::ok(check_name, format!("{name} ({kind}) disabled"))
        } else if dead_n > 0 {
            let last = dead_rows.iter().find(|d| d.channel == name).map_or(String::new(), |d| d.last_error.clone());
            CheckResult::new(
                check_name,
                Status::Critical,
                format!("{name} ({kind}): {dead_n} notification(s) in the dead letters; last error: {last}"),
            )
            .with_title(format!("Notifications to channel {name} failed for good"))
        } else if let Some(r) = retrying.first() {
            CheckResult::new(
                check_name,
                Status::Warning,
                format!("{name} ({kind}): {} notification(s) retrying; last error: {}", retrying.len(), r.last_error),
            )
            .with_title(format!("Channel {name} is failing; retrying"))
        } else {
            CheckResult::ok(
                check_name,
                format!("{name} ({kind}): {sent} sent, {failed} failed attempts, {suppressed} suppressed"),
            )
        };
        for (m, v) in [("sent", sent), ("failed", failed), ("suppressed", suppressed), ("dead", count("dead"))] {
            metrics.insert(format!("qmoi_notify_messages_total{{channel=\"{name}\",result=\"{m}\"}}"), v as f64);
        }
        if let Some(l) = self.last_latency.get(name) {
            metrics.insert(format!("qmoi_notify_last_delivery_seconds{{channel=\"{name}\"}}"), *l);
        }
        let row = serde_json::json!({
            "name": name, "type": kind, "enabled": c.enabled, "targets": targets,
            "sent": sent, "failed_attempts": failed, "suppressed": suppressed, "dead_letters": dead_n,
            "retrying": retrying.len(),
        });
        (check, row)
    }

    /// `--once`: read every report, decide, send everything due now (one attempt each, no
    /// waiting for group_wait or backoff), and return the number of messages attempted.
    async fn once(&mut self) -> Result<usize, StoreError> {
        self.reload_policy();
        let changed = self.scan(None);
        self.step(&changed, now_ms(), true)?;
        self.fresh.clear();
        let due = self.due(now_ms(), usize::MAX / 2)?;
        let n = due.len();
        for (id, channel, target, msg) in due {
            let started = Instant::now();
            let result = self.sender.send(&msg, usize::try_from(target).unwrap_or(usize::MAX)).await;
            let d = Done { outbox_id: id, channel, target, result, latency: started.elapsed() };
            self.complete(&d, now_ms())?;
        }
        Ok(n)
    }
}

/// The daemon's deliveries, until `stopping` resolves: each report change is decided at
/// once, the timer (250 ms) drives repeats, escalations and group waits, and every due
/// message is sent concurrently (one at a time per target). The lock on the notifier is
/// held only between awaits, so the report runs see a consistent state.
async fn deliver(shared: Arc<tokio::sync::Mutex<Notifier>>, mut stopping: Stopping) {
    let (ev_tx, mut ev_rx) = mpsc::channel::<String>(4096);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let (rescan, _watcher) = {
        let mut n = shared.lock().await;
        let watcher = match watch(&n.report_dir, ev_tx) {
            Ok(w) => Some(w),
            Err(e) => {
                let note = format!("file-system events unavailable ({e}); rescanning every {}", n.cfg.watch.rescan);
                tracing::warn!("{note}");
                n.watch_note = Some(note);
                None
            }
        };
        n.reload_policy();
        (n.cfg.watch.rescan.get(), watcher)
    };
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut next_rescan = Instant::now();
    let mut next_prune = Instant::now();
    loop {
        let mut names: HashSet<String> = HashSet::new();
        let mut full = false;
        // Decisions are due on a report change and on the timer (repeats, escalation,
        // group waits); a delivery result only frees its target for the next message.
        let mut decide = false;
        let mut results = Vec::new();
        tokio::select! {
            () = stopping.wait() => break,
            Some(n) = ev_rx.recv() => {
                decide = true;
                names.insert(n);
                while let Ok(n) = ev_rx.try_recv() {
                    names.insert(n);
                }
            }
            Some(d) = done_rx.recv() => {
                results.push(d);
                while let Ok(d) = done_rx.try_recv() {
                    results.push(d);
                }
            }
            _ = tick.tick() => {
                decide = true;
                if Instant::now() >= next_rescan {
                    full = true;
                    next_rescan = Instant::now() + rescan;
                }
            }
        }
        let mut n = shared.lock().await;
        for d in results {
            if let Err(e) = n.complete(&d, now_ms()) {
                tracing::error!(error = %e, "Cannot record a delivery result; it will be sent again.");
                n.in_flight.remove(&(d.channel.clone(), d.target));
            }
        }
        if decide && names.is_empty() {
            n.reload_policy();
        }
        let changed = if full {
            n.scan(None)
        } else if names.is_empty() {
            Vec::new()
        } else {
            n.scan(Some(&names))
        };
        let now = now_ms();
        if decide && let Err(e) = n.step(&changed, now, false) {
            tracing::error!(error = %e, "Cannot record alert changes; will try again.");
            // Read those reports again next time.
            for (c, _, _) in &changed {
                n.seen.remove(c);
            }
        }
        if let Err(e) = n.dispatch(now, &done_tx, names.is_empty() || full) {
            tracing::error!(error = %e, "Cannot read the outbox.");
        }
        if Instant::now() >= next_prune {
            n.prune(now);
            next_prune = Instant::now() + Duration::from_secs(600);
        }
    }
    // Let deliveries in flight finish (and be recorded), so a polite stop sends no
    // duplicate after restart; anything unfinished stays in the outbox.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !shared.lock().await.in_flight.is_empty() && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(100), done_rx.recv()).await {
            Ok(Some(d)) => {
                let _ = shared.lock().await.complete(&d, now_ms());
            }
            Ok(None) => break,
            Err(_) => {}
        }
    }
}

/// Watch the report folder: each changed `<component>_latest.json` sends its component id.
fn watch(dir: &Path, tx: mpsc::Sender<String>) -> Result<notify::RecommendedWatcher, String> {
    use notify::Watcher;
    fs_err::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else { return };
        if matches!(ev.kind, notify::EventKind::Access(_)) {
            return;
        }
        for p in ev.paths {
            if let Some(name) = p.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix("_latest.json")) {
                // A full channel only means a burst: the periodic rescan catches up.
                let _ = tx.try_send(name.to_string());
            }
        }
    })
    .map_err(|e| e.to_string())?;
    w.watch(dir, notify::RecursiveMode::NonRecursive).map_err(|e| e.to_string())?;
    Ok(w)
}

/// `--test-*`: send a test message through every channel of `kind` (or just `only`) right
/// now, without the outbox; print each target's result. Returns whether all succeeded.
pub async fn send_test(
    cfg: &Arc<NotifyConfig>,
    sender: &Sender,
    kind: ChannelKind,
    only: Option<&str>,
) -> Result<bool, String> {
    let engine = Engine::new(cfg.clone(), qmoi_core::report::hostname());
    let names: Vec<&String> = cfg
        .channels
        .iter()
        .filter(|(n, c)| c.kind_for(n) == Some(kind) && only.is_none_or(|o| o == n.as_str()))
        .map(|(n, _)| n)
        .collect();
    if names.is_empty() {
        return Err(match only {
            Some(o) => format!("no {} channel named '{o}' in the configuration", kind.as_str()),
            None => format!("no {} channel in the configuration", kind.as_str()),
        });
    }
    let mut all_ok = true;
    for name in names {
        if !cfg.channels.get(name).is_some_and(|c| c.enabled) {
            println!("{name}: disabled in the configuration; sending the test anyway");
        }
        let now = Utc::now();
        let msg = Message {
            id: Message::new_id(now),
            channel: name.clone(),
            group: "test".into(),
            host: qmoi_core::report::hostname(),
            created_at: now,
            events: Vec::new(),
            suppressed: 0,
            test: true,
            best_effort: false,
        };
        for t in 0..engine.targets(name) {
            let label = engine.target_label(name, t);
            print!("{name} → {label}: ");
            let started = Instant::now();
            match sender.send(&msg, t).await {
                Ok(detail) => println!("OK in {} ms — {detail}", started.elapsed().as_millis()),
                Err(f) => {
                    all_ok = false;
                    println!("FAILED after {} ms — {f}", started.elapsed().as_millis());
                }
            }
        }
    }
    Ok(all_ok)
}
