//! The supervisor's view of the stack, as it is served (control socket, `status --json`,
//! the dashboard's API) and stored in `master_monitor_latest.json` under `details`.
//! The supervisor fills it in; readers (the dashboard, `status`) only decode it.

use crate::Status;
use crate::component::Priority;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Lifecycle state of a component under the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Spawned (or waiting for its dependencies), no fresh report yet.
    Starting,
    /// Alive and writing fresh reports.
    Running,
    /// Alive but its report is older than `stale_after`; about to be restarted.
    Stale,
    /// Exited or was stopped; waiting for its backoff delay before the next start.
    Restarting,
    /// Given up on: configuration error (exit 2), missing binary, too many restarts.
    Failed,
    /// `enabled = false` in the config.
    Disabled,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Stale => "stale",
            State::Restarting => "restarting",
            State::Failed => "failed",
            State::Disabled => "disabled",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One restart, kept for the status output and the tests of backoff.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestartEvent {
    pub at: DateTime<Utc>,
    pub reason: String,
    pub delay_ms: u64,
}

/// Everything known about one component, as served by `status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComponentStatus {
    pub id: String,
    pub priority: Priority,
    pub state: State,
    pub pid: Option<u32>,
    pub started_at: Option<DateTime<Utc>>,
    /// Restarts since the supervisor started (manual ones included).
    pub restarts: u32,
    /// Restarts counted toward `max_restarts` (reset after a healthy period).
    pub restarts_in_window: u32,
    pub ready: bool,
    /// Why it is in its state (failure message, what it waits for…).
    pub note: Option<String>,
    pub last_exit: Option<String>,
    /// Last lines the monitor wrote to stderr (shown when it fails).
    pub stderr_tail: Vec<String>,
    pub recent_restarts: Vec<RestartEvent>,
    /// A watchdog restart reason, kept until the component is healthy again.
    pub watchdog: Option<String>,
    pub interval_s: u64,
    pub stale_after_s: u64,
    pub binary: Option<String>,
    // Filled from the report file at snapshot time.
    pub report_age_s: Option<f64>,
    pub report_status: Option<Status>,
    pub summary: Option<String>,
    pub critical_alerts: usize,
    pub warning_alerts: usize,
    /// Why the report file present for this component cannot be used (not a regular
    /// file, too large, invalid, another schema version). The status is then `unknown`,
    /// and the alerts counted are those of its last usable report, still firing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_error: Option<String>,
    /// In a maintenance window now: why, by whom, until when. The component then counts
    /// for nothing in the verdict and its alerts are not notified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<String>,
    /// Subjects of the component (an endpoint, a heartbeat check) in a maintenance window
    /// now, as `<subject> until …: why (who)`: their checks and alerts count for nothing
    /// in the verdict and their alerts are not notified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintenance_subjects: Vec<String>,
}

impl ComponentStatus {
    pub fn new(id: &str, priority: Priority, interval_s: u64, stale_after_s: u64) -> Self {
        Self {
            id: id.to_string(),
            priority,
            state: State::Starting,
            pid: None,
            started_at: None,
            restarts: 0,
            restarts_in_window: 0,
            ready: false,
            note: None,
            last_exit: None,
            stderr_tail: Vec::new(),
            recent_restarts: Vec::new(),
            watchdog: None,
            interval_s,
            stale_after_s,
            binary: None,
            report_age_s: None,
            report_status: None,
            summary: None,
            critical_alerts: 0,
            warning_alerts: 0,
            report_error: None,
            maintenance: None,
            maintenance_subjects: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overall {
    Healthy,
    Degraded,
    Critical,
}

impl Overall {
    pub fn as_str(self) -> &'static str {
        match self {
            Overall::Healthy => "healthy",
            Overall::Degraded => "degraded",
            Overall::Critical => "critical",
        }
    }

    /// `status` exit code: 0 healthy, 1 degraded, 2 critical.
    pub fn exit_code(self) -> u8 {
        match self {
            Overall::Healthy => 0,
            Overall::Degraded => 1,
            Overall::Critical => 2,
        }
    }

    pub fn status(self) -> Status {
        match self {
            Overall::Healthy => Status::Ok,
            Overall::Degraded => Status::Warning,
            Overall::Critical => Status::Critical,
        }
    }
}

impl fmt::Display for Overall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub overall: Overall,
    /// Why, worst first; empty when healthy.
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SupervisorInfo {
    pub pid: u32,
    pub started_at: DateTime<Utc>,
    pub version: String,
    pub config: Option<String>,
    /// Where the dashboard listens (`http://127.0.0.1:8080/`), when it does.
    #[serde(default)]
    pub dashboard: Option<String>,
    /// The last configuration reload (SIGHUP or `qmoi-supervisor reload`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload: Option<ReloadInfo>,
}

/// What the last configuration reload did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReloadInfo {
    pub at: DateTime<Utc>,
    /// False: the new configuration is invalid and nothing changed.
    pub ok: bool,
    /// Why nothing changed (each problem with its file and place).
    #[serde(default)]
    pub errors: Vec<String>,
    /// What changed: a component restarted, started, stopped; a setting applied.
    #[serde(default)]
    pub changes: Vec<String>,
    /// Sections that changed in the file but take effect only when the supervisor
    /// restarts (the listeners, the folders).
    #[serde(default)]
    pub pending_restart: Vec<String>,
    pub took_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Overview {
    pub generated_at: DateTime<Utc>,
    pub verdict: Verdict,
    pub components: Vec<ComponentStatus>,
    /// `None` when built from report files without a running supervisor.
    pub supervisor: Option<SupervisorInfo>,
}
