//! The GraphQL object types: views of the dashboard's cached overview and reports
//! (resolved field by field from the shared data, nothing copied that is not asked for),
//! and small owned objects for alerts, silences, history and the notifier's deliveries.
//!
//! Times are RFC 3339 strings; history points carry unix seconds (`t`), which keeps long
//! series compact. A report's free-form `details` and the effective configuration are
//! `JSON` scalars: they differ per component and are documented with the report schema.

use async_graphql::{Enum, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, SecondsFormat, Utc};
use qmoi_core::overview as ov;
use qmoi_dashboard::hub::{AlertChange, FiringAlert};
use qmoi_dashboard::store::{self, Marks, PastAlert};
use serde::Deserialize;
use std::sync::Arc;

pub(crate) fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Unix seconds as RFC 3339 (an impossible time as it was given).
pub(crate) fn unix_rfc3339(t: i64) -> String {
    DateTime::from_timestamp(t, 0).map_or_else(|| t.to_string(), |d| d.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// The stack's verdict.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Healthy,
    Degraded,
    Critical,
}

/// A check's or a report's status.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl From<qmoi_core::Status> for Status {
    fn from(s: qmoi_core::Status) -> Self {
        match s {
            qmoi_core::Status::Ok => Self::Ok,
            qmoi_core::Status::Warning => Self::Warning,
            qmoi_core::Status::Critical => Self::Critical,
            qmoi_core::Status::Unknown => Self::Unknown,
        }
    }
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum AlertLevel {
    Info,
    Warning,
    Critical,
}

impl AlertLevel {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }

    fn of(s: &str) -> Self {
        match s {
            "critical" => Self::Critical,
            "warning" => Self::Warning,
            _ => Self::Info,
        }
    }
}

impl From<qmoi_core::AlertLevel> for AlertLevel {
    fn from(l: qmoi_core::AlertLevel) -> Self {
        Self::of(l.as_str())
    }
}

/// A component's lifecycle state under the supervisor (docs/ARCHITECTURE.md, "The component
/// state machine").
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Starting,
    Running,
    Stale,
    Restarting,
    Failed,
    Disabled,
}

impl From<ov::State> for RunState {
    fn from(s: ov::State) -> Self {
        match s {
            ov::State::Starting => Self::Starting,
            ov::State::Running => Self::Running,
            ov::State::Stale => Self::Stale,
            ov::State::Restarting => Self::Restarting,
            ov::State::Failed => Self::Failed,
            ov::State::Disabled => Self::Disabled,
        }
    }
}

/// The supervisor's view of the stack.
pub struct Overview(pub Arc<ov::Overview>);

#[Object]
impl Overview {
    async fn generated_at(&self) -> String {
        rfc3339(&self.0.generated_at)
    }

    async fn verdict(&self) -> Verdict {
        match self.0.verdict.overall {
            ov::Overall::Healthy => Verdict::Healthy,
            ov::Overall::Degraded => Verdict::Degraded,
            ov::Overall::Critical => Verdict::Critical,
        }
    }

    /// Why the verdict is what it is, one line per cause.
    async fn reasons(&self) -> &[String] {
        &self.0.verdict.reasons
    }

    /// Every configured component (or only `id`).
    async fn components(&self, id: Option<String>) -> Vec<ComponentState<'_>> {
        self.0.components.iter().filter(|c| id.as_ref().is_none_or(|i| *i == c.id)).map(ComponentState).collect()
    }

    async fn supervisor(&self) -> Option<SupervisorInfo<'_>> {
        self.0.supervisor.as_ref().map(SupervisorInfo)
    }
}

pub struct SupervisorInfo<'a>(&'a ov::SupervisorInfo);

#[Object]
impl SupervisorInfo<'_> {
    async fn pid(&self) -> u32 {
        self.0.pid
    }
    async fn started_at(&self) -> String {
        rfc3339(&self.0.started_at)
    }
    async fn version(&self) -> &str {
        &self.0.version
    }
}

/// One component as the supervisor sees it.
pub struct ComponentState<'a>(pub &'a ov::ComponentStatus);

#[Object]
impl ComponentState<'_> {
    async fn id(&self) -> &str {
        &self.0.id
    }
    async fn state(&self) -> RunState {
        self.0.state.into()
    }
    /// low, medium, high or critical: how much its failure weighs in the verdict.
    async fn priority(&self) -> String {
        self.0.priority.to_string()
    }
    async fn pid(&self) -> Option<u32> {
        self.0.pid
    }
    async fn started_at(&self) -> Option<String> {
        self.0.started_at.as_ref().map(rfc3339)
    }
    /// Restarts since the supervisor started.
    async fn restarts(&self) -> u32 {
        self.0.restarts
    }
    /// Restarts within the restart window (what the give-up rule counts).
    async fn restarts_in_window(&self) -> u32 {
        self.0.restarts_in_window
    }
    async fn recent_restarts(&self) -> Vec<RestartEvent<'_>> {
        self.0.recent_restarts.iter().map(RestartEvent).collect()
    }
    async fn last_exit(&self) -> Option<&str> {
        self.0.last_exit.as_deref()
    }
    /// The last lines the process wrote to stderr.
    async fn stderr_tail(&self) -> &[String] {
        &self.0.stderr_tail
    }
    async fn note(&self) -> Option<&str> {
        self.0.note.as_deref()
    }
    async fn interval_s(&self) -> u64 {
        self.0.interval_s
    }
    async fn stale_after_s(&self) -> u64 {
        self.0.stale_after_s
    }
    async fn report_age_s(&self) -> Option<f64> {
        self.0.report_age_s
    }
    async fn report_status(&self) -> Option<Status> {
        self.0.report_status.map(Status::from)
    }
    async fn summary(&self) -> Option<&str> {
        self.0.summary.as_deref()
    }
    async fn critical_alerts(&self) -> usize {
        self.0.critical_alerts
    }
    async fn warning_alerts(&self) -> usize {
        self.0.warning_alerts
    }
    /// Why the report file cannot be used (then its last alerts stay, marked stale).
    async fn report_error(&self) -> Option<&str> {
        self.0.report_error.as_deref()
    }
    /// In a maintenance window now: until when, why, by whom (it then counts for nothing
    /// in the verdict and its alerts are not notified).
    async fn maintenance(&self) -> Option<&str> {
        self.0.maintenance.as_deref()
    }
}

pub struct RestartEvent<'a>(&'a ov::RestartEvent);

#[Object]
impl RestartEvent<'_> {
    async fn at(&self) -> String {
        rfc3339(&self.0.at)
    }
    async fn reason(&self) -> &str {
        &self.0.reason
    }
    async fn delay_ms(&self) -> u64 {
        self.0.delay_ms
    }
}

/// A component: its supervisor state and its latest report.
pub struct Component {
    pub id: String,
    pub state: Option<ov::ComponentStatus>,
    pub report: Option<Report>,
}

#[Object]
impl Component {
    async fn id(&self) -> &str {
        &self.id
    }
    /// Configured in master_monitor.toml (else `state` is null).
    async fn configured(&self) -> bool {
        self.state.is_some()
    }
    async fn state(&self) -> Option<ComponentState<'_>> {
        self.state.as_ref().map(ComponentState)
    }
    /// Null before its first report.
    async fn report(&self) -> Option<&Report> {
        self.report.as_ref()
    }
}

/// A component's report (docs/ARCHITECTURE.md, "The report").
pub struct Report(pub Arc<qmoi_core::report::Report>);

#[Object]
impl Report {
    async fn component(&self) -> &str {
        &self.0.component
    }
    async fn host(&self) -> &str {
        &self.0.host
    }
    async fn generated_at(&self) -> String {
        rfc3339(&self.0.generated_at)
    }
    async fn interval_s(&self) -> u64 {
        self.0.interval_s
    }
    async fn duration_ms(&self) -> u64 {
        self.0.duration_ms
    }
    async fn status(&self) -> Status {
        self.0.status.into()
    }
    async fn summary(&self) -> &str {
        &self.0.summary
    }
    /// The checks (or only those with `status`).
    async fn checks(&self, status: Option<Status>) -> Vec<Check<'_>> {
        self.0.checks.iter().filter(|c| status.is_none_or(|s| Status::from(c.status) == s)).map(Check).collect()
    }
    /// The metrics (or those whose name starts with `prefix`), as `/metrics` names them.
    async fn metrics(&self, prefix: Option<String>) -> Vec<Metric<'_>> {
        let p = prefix.unwrap_or_default();
        self.0.metrics.range(p.clone()..).take_while(|(k, _)| k.starts_with(&p)).map(|(k, v)| Metric(k, *v)).collect()
    }
    /// The alerts the report raises now.
    async fn alerts(&self) -> Vec<Alert> {
        self.0
            .alerts
            .iter()
            .map(|a| {
                let f = FiringAlert { component: self.0.component.clone(), alert: a.clone(), stale: false };
                Alert::firing(&f, &Marks::default())
            })
            .collect()
    }
    /// The component's own details (free-form; see its documentation).
    async fn details(&self) -> Json<serde_json::Value> {
        Json(serde_json::from_str(self.0.details.get()).unwrap_or_default())
    }
}

pub struct Check<'a>(&'a qmoi_core::report::CheckResult);

#[Object]
impl Check<'_> {
    /// `kind:subject`, e.g. `disk_usage:/`.
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn status(&self) -> Status {
        self.0.status.into()
    }
    async fn message(&self) -> &str {
        &self.0.message
    }
    async fn title(&self) -> Option<&str> {
        self.0.title.as_deref()
    }
    async fn value(&self) -> Option<f64> {
        self.0.value
    }
    async fn unit(&self) -> Option<&str> {
        self.0.unit.as_deref()
    }
    async fn warning(&self) -> Option<f64> {
        self.0.warning
    }
    async fn critical(&self) -> Option<f64> {
        self.0.critical
    }
}

pub struct Metric<'a>(&'a str, f64);

#[Object]
impl Metric<'_> {
    /// `name{label="value",…}`.
    async fn name(&self) -> &str {
        self.0
    }
    async fn value(&self) -> f64 {
        self.1
    }
}

/// Firing: listed by its component's report now; resolved: it was, and stopped.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum AlertState {
    Firing,
    Resolved,
}

/// An alert, firing now or resolved.
#[derive(SimpleObject)]
pub struct Alert {
    /// `<component>/<subject>`, stable across runs and restarts.
    pub fingerprint: String,
    pub component: String,
    pub level: AlertLevel,
    pub title: String,
    pub detail: String,
    pub state: AlertState,
    /// When it started firing.
    pub since: String,
    pub ended_at: Option<String>,
    /// From the component's last usable report: its report cannot be read now.
    pub stale: bool,
    pub acknowledged: Option<Acknowledgement>,
    /// The id of the silence that covers it.
    pub silenced_by: Option<i64>,
    pub silenced: bool,
    /// Its check's labels (an endpoint's, a heartbeat check's); empty for past alerts.
    pub labels: Vec<Label>,
}

/// A label of a check, an alert or a maintenance window.
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "LabelInput")]
pub struct Label {
    pub name: String,
    pub value: String,
}

impl Label {
    pub fn all(labels: &qmoi_core::report::Labels) -> Vec<Self> {
        labels.iter().map(|(k, v)| Self { name: k.clone(), value: v.clone() }).collect()
    }
}

impl Alert {
    pub fn firing(f: &FiringAlert, marks: &Marks) -> Self {
        let a = &f.alert;
        let silenced_by = marks.silenced_by(&f.component, &a.fingerprint, a.level.as_str());
        Self {
            fingerprint: a.fingerprint.clone(),
            component: f.component.clone(),
            level: a.level.into(),
            title: a.title.clone(),
            detail: a.detail.clone(),
            state: AlertState::Firing,
            since: rfc3339(&a.since),
            ended_at: None,
            stale: f.stale,
            acknowledged: marks.ack(&a.fingerprint).map(|k| Acknowledgement::of(&a.fingerprint, k)),
            silenced_by,
            silenced: silenced_by.is_some(),
            labels: Label::all(&a.labels),
        }
    }

    pub fn past(p: &PastAlert) -> Self {
        Self {
            fingerprint: p.fingerprint.clone(),
            component: p.component.clone(),
            level: AlertLevel::of(&p.level),
            title: p.title.clone(),
            detail: p.detail.clone(),
            state: if p.ended_at.is_some() { AlertState::Resolved } else { AlertState::Firing },
            since: unix_rfc3339(p.started_at),
            ended_at: p.ended_at.map(unix_rfc3339),
            stale: false,
            acknowledged: None,
            silenced_by: None,
            silenced: false,
            labels: Vec::new(),
        }
    }
}

#[derive(SimpleObject)]
pub struct Acknowledgement {
    pub fingerprint: String,
    pub by: String,
    pub at: String,
    pub comment: String,
}

impl Acknowledgement {
    pub fn of(fingerprint: &str, a: &store::Ack) -> Self {
        Self { fingerprint: fingerprint.into(), by: a.by.clone(), at: unix_rfc3339(a.at), comment: a.comment.clone() }
    }
}

/// Alerts matched by every given field are recorded but not notified until `expiresAt`.
#[derive(SimpleObject)]
pub struct Silence {
    pub id: i64,
    pub component: Option<String>,
    pub fingerprint: Option<String>,
    pub level: Option<AlertLevel>,
    pub created_by: String,
    pub created_at: String,
    pub expires_at: String,
    pub comment: String,
}

impl From<&store::Silence> for Silence {
    fn from(s: &store::Silence) -> Self {
        Self {
            id: s.id,
            component: s.matcher.component.clone(),
            fingerprint: s.matcher.fingerprint.clone(),
            level: s.matcher.level.as_deref().map(AlertLevel::of),
            created_by: s.created_by.clone(),
            created_at: unix_rfc3339(s.created_at),
            expires_at: unix_rfc3339(s.expires_at),
            comment: s.comment.clone(),
        }
    }
}

/// A maintenance window: its component counts for nothing in the verdict and its alerts
/// are not notified from `startsAt` to `endsAt`.
#[derive(SimpleObject)]
pub struct MaintenanceWindow {
    pub id: i64,
    /// `*`: every component (a window of labels).
    pub component: String,
    /// Only this endpoint, check or target of the component (null: all of it).
    pub subject: Option<String>,
    /// Only the checks and alerts carrying all of these labels.
    pub labels: Vec<Label>,
    pub reason: String,
    pub created_by: String,
    pub created_at: String,
    pub starts_at: String,
    pub ends_at: String,
    /// In force now (else it starts later).
    pub active: bool,
}

impl MaintenanceWindow {
    pub fn of(w: &store::Maintenance, now: i64) -> Self {
        Self {
            id: w.id,
            component: w.component.clone(),
            subject: w.subject.clone(),
            labels: Label::all(&w.labels),
            reason: w.reason.clone(),
            created_by: w.created_by.clone(),
            created_at: unix_rfc3339(w.created_at),
            starts_at: unix_rfc3339(w.starts_at),
            ends_at: unix_rfc3339(w.ends_at),
            active: w.starts_at <= now,
        }
    }
}

/// What happened to an alert (subscription `alerts`).
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum AlertAction {
    Fired,
    Resolved,
    Acknowledged,
    Silenced,
    Unsilenced,
}

#[derive(SimpleObject)]
pub struct AlertEvent {
    pub action: AlertAction,
    /// Null for silences, which cover alerts by matcher.
    pub fingerprint: Option<String>,
    /// The alert as it fired (`FIRED` only).
    pub alert: Option<Alert>,
    /// `ACKNOWLEDGED` only.
    pub acknowledged: Option<Acknowledgement>,
    /// The silence's id (`SILENCED`, `UNSILENCED`).
    pub silence: Option<i64>,
}

impl From<&AlertChange> for AlertEvent {
    fn from(c: &AlertChange) -> Self {
        use qmoi_dashboard::hub::AlertAction as A;
        Self {
            action: match c.action {
                A::Fired => AlertAction::Fired,
                A::Resolved => AlertAction::Resolved,
                A::Acknowledged => AlertAction::Acknowledged,
                A::Silenced => AlertAction::Silenced,
                A::Unsilenced => AlertAction::Unsilenced,
            },
            fingerprint: c.fingerprint.clone(),
            alert: c.alert.as_ref().map(|f| Alert::firing(f, &Marks::default())),
            acknowledged: c
                .acknowledged
                .as_ref()
                .map(|a| Acknowledgement::of(c.fingerprint.as_deref().unwrap_or_default(), a)),
            silence: c.silence,
        }
    }
}

/// A metric's history at the resolution that fits the range.
#[derive(SimpleObject)]
pub struct Series {
    pub component: String,
    pub metric: String,
    pub points: Vec<Point>,
}

#[derive(SimpleObject)]
pub struct Point {
    /// Unix seconds: the start of the bucket.
    pub t: i64,
    /// The average over the bucket.
    pub value: f64,
}

/// A metric with history.
#[derive(SimpleObject)]
pub struct SeriesName {
    pub component: String,
    pub metric: String,
}

/// The notifier's deliveries, dead letters and backlog, from its latest report.
#[derive(SimpleObject, Deserialize)]
pub struct Notifications {
    /// When the notifier wrote them.
    #[serde(skip)]
    pub report_at: String,
    /// The most recent delivery attempts, newest first.
    #[serde(default, rename = "recent")]
    pub deliveries: Vec<Delivery>,
    /// Notifications that failed for good (at most 20 listed; `qmoi-notify --retry-dead`).
    #[serde(default)]
    pub dead_letters: Vec<DeadLetter>,
    /// Waiting for their next attempt (at most 20 listed).
    #[serde(default)]
    pub pending: Vec<PendingNotification>,
    /// Per channel: health, counters.
    #[serde(default)]
    pub channels: Json<serde_json::Value>,
}

#[derive(SimpleObject, Deserialize)]
pub struct Delivery {
    #[serde(default)]
    pub at: String,
    #[serde(default)]
    pub msg_id: String,
    #[serde(default)]
    pub channel: String,
    #[serde(default)]
    pub target: String,
    /// sent, failed, dead, suppressed or delivered-internal.
    #[serde(default)]
    pub result: String,
    #[serde(default)]
    pub description: String,
    /// The fingerprints of the alerts it carried, comma-separated.
    #[serde(default)]
    pub fingerprints: String,
    #[serde(default)]
    pub attempt: i64,
    #[serde(default)]
    pub latency_ms: Option<i64>,
    #[serde(default)]
    pub detail: String,
}

#[derive(SimpleObject, Deserialize)]
pub struct DeadLetter {
    #[serde(default)]
    pub msg_id: String,
    #[serde(default)]
    pub channel: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub failed_at: String,
    #[serde(default)]
    pub attempts: i64,
    #[serde(default)]
    pub last_error: String,
    #[serde(default)]
    pub description: String,
}

#[derive(SimpleObject, Deserialize)]
pub struct PendingNotification {
    #[serde(default)]
    pub msg_id: String,
    #[serde(default)]
    pub channel: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub attempts: i64,
    #[serde(default)]
    pub max_attempts: i64,
    #[serde(default)]
    pub next_attempt_at: String,
    #[serde(default)]
    pub last_error: String,
    #[serde(default)]
    pub description: String,
}
