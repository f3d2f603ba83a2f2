//! What is notified: alert events, grouped into messages.

use chrono::{DateTime, Utc};
use qmoi_core::status::AlertLevel;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// The alert started firing (or changed level).
    Firing,
    /// Still firing after `repeat_interval`, not acknowledged.
    Repeat,
    /// Still firing and not acknowledged after an escalation step's delay.
    Escalation,
    /// No longer in its component's report.
    Resolved,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Repeat => "repeat",
            Self::Escalation => "escalation",
            Self::Resolved => "resolved",
        }
    }

    pub fn is_firing(self) -> bool {
        self != Self::Resolved
    }
}

/// One alert transition, as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub fingerprint: String,
    pub component: String,
    pub host: String,
    pub level: AlertLevel,
    pub title: String,
    pub detail: String,
    /// When the alert started firing (from the report).
    pub since: DateTime<Utc>,
    /// When this transition was seen.
    pub at: DateTime<Utc>,
    /// The alert's labels (an endpoint's, a heartbeat check's `labels`).
    #[serde(default, skip_serializing_if = "qmoi_core::report::Labels::is_empty")]
    pub labels: qmoi_core::report::Labels,
}

impl Event {
    /// `status` as Alertmanager and the generic payload say it.
    pub fn status(&self) -> &'static str {
        if self.kind.is_firing() { "firing" } else { "resolved" }
    }
}

/// One message to one channel: the events of a group, or a rate-limit summary, or a test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Unique; sent as `X-QMOI-Notification-Id` and in payloads so that receivers can
    /// drop the rare duplicate of at-least-once delivery.
    pub id: String,
    pub channel: String,
    pub group: String,
    pub host: String,
    pub created_at: DateTime<Utc>,
    pub events: Vec<Event>,
    /// Notifications that the channel's rate limit held back since the last message.
    #[serde(default)]
    pub suppressed: u64,
    #[serde(default)]
    pub test: bool,
    /// A refresh (Alertmanager re-send) that the next refresh supersedes: on failure it is
    /// recorded, not retried into the dead letters.
    #[serde(default)]
    pub best_effort: bool,
}

impl Message {
    pub fn new_id(now: DateTime<Utc>) -> String {
        format!("{:x}-{:08x}", now.timestamp_millis(), fastrand::u32(..))
    }

    pub fn top_level(&self) -> AlertLevel {
        self.events.iter().filter(|e| e.kind.is_firing()).map(|e| e.level).max().unwrap_or(AlertLevel::Info)
    }

    /// "critical", "resolved", "summary" or "test": for history and logs.
    pub fn describe(&self) -> String {
        if self.test {
            return "test".into();
        }
        if self.events.is_empty() {
            return format!("summary: {} suppressed", self.suppressed);
        }
        let firing = self.events.iter().filter(|e| e.kind.is_firing()).count();
        let resolved = self.events.len() - firing;
        match (firing, resolved) {
            (1, 0) => format!("{} {}: {}", self.events[0].kind.as_str(), self.events[0].level, self.events[0].title),
            (0, 1) => format!("resolved: {}", self.events[0].title),
            _ => format!("{firing} firing, {resolved} resolved ({})", self.group),
        }
    }

    pub fn fingerprints(&self) -> String {
        self.events.iter().map(|e| e.fingerprint.as_str()).collect::<Vec<_>>().join(" ")
    }
}
