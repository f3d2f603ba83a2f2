//! The supervisor's view of each component, shared between the component tasks, the
//! aggregator and the control socket. Guarded by a std `Mutex` that is never held across
//! an `.await`.

use chrono::{DateTime, Utc};
use qmoi_core::Status;
use qmoi_core::component::Priority;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

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
        }
    }
}

/// The shared table, keyed by component id.
#[derive(Debug, Clone, Default)]
pub struct Shared(Arc<Mutex<BTreeMap<String, ComponentStatus>>>);

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, BTreeMap<String, ComponentStatus>> {
        // Poisoning means a task panicked while holding the lock; the data is still the
        // best we have, and refusing to serve status would be worse.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Apply `f` to one component's entry.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut ComponentStatus)) {
        if let Some(c) = self.lock().get_mut(id) {
            f(c);
        }
    }

    pub fn snapshot(&self) -> Vec<ComponentStatus> {
        self.lock().values().cloned().collect()
    }
}
