//! The dashboard's live state: the latest overview, every component's latest report, the
//! alerts firing now, and a broadcast of changes for `/api/events` and `/ws`.
//!
//! The supervisor calls [`Hub::refresh`] about once a second with its overview. Reports
//! are re-read only when their file changed; each new report's metrics go into the
//! history store. Request handlers only read the cached state (no file IO, no JSON
//! encoding on the hot paths `/api/monitor/status` and `/metrics`).

use crate::metrics;
use crate::store::{PastAlert, Store};
use bytes::Bytes;
use qmoi_core::component::{self, MASTER_MONITOR};
use qmoi_core::overview::{Overview, State};
use qmoi_core::report::{Alert, Report, read_report_bytes};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;
use tokio::sync::broadcast;

/// One firing alert and where it comes from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FiringAlert {
    pub component: String,
    #[serde(flatten)]
    pub alert: Alert,
    /// From the component's last usable report: its report file cannot be read now, so
    /// the alert is not known to have ended and stays firing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
}

/// A component's latest report: decoded (for metrics and alerts) and as the file's bytes
/// (served as they are: a large report is never encoded again per request).
#[derive(Clone)]
pub struct CachedReport {
    pub report: Arc<Report>,
    pub json: Bytes,
}

#[derive(Default)]
struct Cache {
    overview: Option<Arc<Overview>>,
    status_json: Bytes,
    metrics_text: Bytes,
    reports: BTreeMap<String, (SystemTime, CachedReport)>,
    firing: Arc<Vec<FiringAlert>>,
}

pub struct Hub {
    pub store: Arc<Store>,
    report_dir: PathBuf,
    cache: RwLock<Cache>,
    events: broadcast::Sender<LiveEvent>,
}

/// An event for live clients: what changed, typed (for the APIs that send their own
/// messages: gRPC, GraphQL), and `{"type": kind, "data": {...}}` as SSE and the
/// WebSocket send it (encoded once for every client).
#[derive(Debug, Clone)]
pub struct LiveEvent {
    pub change: Change,
    pub json: Arc<str>,
}

/// What a [`LiveEvent`] is about.
#[derive(Debug, Clone)]
pub enum Change {
    /// The overview changed: read it with [`Hub::overview`].
    Overview,
    /// This component has a new report: read it with [`Hub::report`].
    Report(Arc<str>),
    Alert(Arc<AlertChange>),
}

impl Change {
    /// The event's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Overview => "overview",
            Self::Report(_) => "report",
            Self::Alert(_) => "alert",
        }
    }
}

/// What happened to an alert (`data` of an `alert` event).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertChange {
    pub action: AlertAction,
    /// The alert's; `None` for silences, which cover alerts by matcher.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// The alert as it fired (`Fired` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<FiringAlert>,
    /// `Acknowledged` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<crate::store::Ack>,
    /// The silence's id (`Silenced`, `Unsilenced`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silence: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertAction {
    Fired,
    Resolved,
    Acknowledged,
    Silenced,
    Unsilenced,
}

impl AlertAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fired => "fired",
            Self::Resolved => "resolved",
            Self::Acknowledged => "acknowledged",
            Self::Silenced => "silenced",
            Self::Unsilenced => "unsilenced",
        }
    }
}

impl AlertChange {
    pub fn new(action: AlertAction) -> Self {
        Self { action, fingerprint: None, alert: None, acknowledged: None, silence: None }
    }
}

impl LiveEvent {
    fn new(change: Change, data: &impl Serialize) -> Self {
        let v = serde_json::json!({"type": change.kind(), "data": data});
        Self { change, json: Arc::from(v.to_string()) }
    }

    pub fn overview(o: &Overview) -> Self {
        Self::new(Change::Overview, o)
    }

    fn alert(a: AlertChange) -> Self {
        let a = Arc::new(a);
        Self::new(Change::Alert(a.clone()), a.as_ref())
    }
}

pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Hub {
    pub fn new(store: Arc<Store>, report_dir: PathBuf) -> Self {
        let (events, _) = broadcast::channel(256);
        Self { store, report_dir, cache: RwLock::new(Cache::default()), events }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.cache.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.events.subscribe()
    }

    /// Tell live clients (no receivers is fine).
    fn send(&self, e: LiveEvent) {
        let _ = self.events.send(e);
    }

    /// Tell live clients what happened to an alert.
    pub fn publish_alert(&self, a: AlertChange) {
        self.send(LiveEvent::alert(a));
    }

    pub fn overview(&self) -> Option<Arc<Overview>> {
        self.read().overview.clone()
    }

    pub fn status_json(&self) -> Bytes {
        self.read().status_json.clone()
    }

    pub fn metrics_text(&self) -> Bytes {
        self.read().metrics_text.clone()
    }

    pub fn report(&self, id: &str) -> Option<CachedReport> {
        self.read().reports.get(id).map(|(_, r)| r.clone())
    }

    /// The alerts firing now (shared: the list is built once per change, not per request).
    pub fn firing(&self) -> Arc<Vec<FiringAlert>> {
        self.read().firing.clone()
    }

    /// Read the reports of `ids` whose file changed since `known`, record their metrics in
    /// the history and put them in `reports`; returns the fresh ones.
    fn read_changed(
        &self,
        ids: &[String],
        known: &BTreeMap<String, SystemTime>,
        reports: &mut BTreeMap<String, (SystemTime, CachedReport)>,
    ) -> Vec<(String, CachedReport)> {
        let mut fresh: Vec<(String, CachedReport)> = Vec::new();
        for id in ids {
            let path = self.report_dir.join(component::latest_report_name(id));
            let Ok(mtime) = std::fs::metadata(&path).and_then(|m| m.modified()) else { continue };
            if known.get(id) == Some(&mtime) {
                continue;
            }
            match read_report_bytes(&path) {
                Ok((report, bytes, _)) => {
                    let report = Arc::new(report);
                    if let Err(e) = self.store.ingest(id, report.generated_at.timestamp(), &report.metrics) {
                        tracing::warn!(error = %e, "Cannot record history.");
                    }
                    let cached = CachedReport { report, json: Bytes::from(bytes) };
                    reports.insert(id.clone(), (mtime, cached.clone()));
                    fresh.push((id.clone(), cached));
                }
                Err(reason) => tracing::debug!(component = %id, %reason, "Report unusable."),
            }
        }
        fresh
    }

    /// Record the alerts that started and ended in the history, and tell the event
    /// streams: alerts fired and resolved, fresh reports.
    fn record_and_publish(
        &self,
        past: &[PastAlert],
        started_events: Vec<LiveEvent>,
        firing: &[FiringAlert],
        fresh: &[(String, CachedReport)],
    ) {
        if let Err(e) = self.store.alerts_started(past) {
            tracing::warn!(error = %e, "Cannot record alert history.");
        }
        for ev in started_events {
            self.send(ev);
        }
        let active: HashSet<&str> = firing.iter().map(|f| f.alert.fingerprint.as_str()).collect();
        match self.store.alerts_resolved_except(&active, unix_now()) {
            Ok(ended) => {
                for fp in ended {
                    self.publish_alert(AlertChange {
                        fingerprint: Some(fp),
                        ..AlertChange::new(AlertAction::Resolved)
                    });
                }
            }
            Err(e) => tracing::warn!(error = %e, "Cannot record alert history."),
        }
        for (id, r) in fresh {
            if id != MASTER_MONITOR {
                let r = &r.report;
                let data = serde_json::json!({"component": id, "generated_at": r.generated_at, "status": r.status, "summary": r.summary});
                self.send(LiveEvent::new(Change::Report(Arc::from(id.as_str())), &data));
            }
        }
    }

    /// Take in a new overview: re-read changed reports, record history, diff alerts, and
    /// publish what changed. Blocking (file and database IO): call it off the async threads.
    ///
    /// Everything is computed before the cache's write lock is taken, and the lock is held
    /// only to swap the results in: a report with 100,000 alerts must not stall the readers
    /// of `/api/monitor/status` (it did, for 9.6 s, when the diff ran under the lock).
    pub fn refresh(&self, overview: Overview) {
        let mut ids: Vec<String> =
            overview.components.iter().filter(|c| c.state != State::Disabled).map(|c| c.id.clone()).collect();
        ids.push(MASTER_MONITOR.to_string());
        let (known, mut reports, before) = {
            let c = self.read();
            let known: BTreeMap<String, SystemTime> = c.reports.iter().map(|(k, (m, _))| (k.clone(), *m)).collect();
            (known, c.reports.clone(), c.firing.clone())
        };
        let fresh = self.read_changed(&ids, &known, &mut reports);
        reports.retain(|id, _| ids.contains(id));
        let status_json = Bytes::from(serde_json::to_vec(&overview).unwrap_or_default());
        let overview_changed = self.read().status_json != status_json;
        // Alerts of a component whose report is stale are not known to be firing any more.
        let fresh_ids: HashSet<&str> = overview
            .components
            .iter()
            .filter(|c| c.report_status.is_some())
            .map(|c| c.id.as_str())
            .chain([MASTER_MONITOR])
            .collect();
        // A component whose report file turned unusable keeps its last report's alerts
        // (marked stale) and shows `unknown` in /metrics.
        let unusable: HashSet<&str> =
            overview.components.iter().filter(|c| c.report_error.is_some()).map(|c| c.id.as_str()).collect();
        let firing: Vec<FiringAlert> = reports
            .iter()
            .filter(|(id, _)| fresh_ids.contains(id.as_str()))
            .flat_map(|(id, (_, r))| {
                let stale = unusable.contains(id.as_str());
                r.report.alerts.iter().map(move |a| FiringAlert { component: id.clone(), alert: a.clone(), stale })
            })
            .collect();
        let before_fps: HashSet<&str> = before.iter().map(|f| f.alert.fingerprint.as_str()).collect();
        let started: Vec<&FiringAlert> =
            firing.iter().filter(|f| !before_fps.contains(f.alert.fingerprint.as_str())).collect();
        let alerts_changed = before.len() != firing.len() || !started.is_empty();
        let metrics_text = Bytes::from(metrics::render(reports.iter().map(|(id, (_, r))| {
            let status = if unusable.contains(id.as_str()) { qmoi_core::Status::Unknown } else { r.report.status };
            (id.as_str(), r.report.as_ref(), status)
        })));
        let past: Vec<PastAlert> = started
            .iter()
            .map(|f| PastAlert {
                fingerprint: f.alert.fingerprint.clone(),
                component: f.component.clone(),
                level: f.alert.level.as_str().into(),
                title: f.alert.title.clone(),
                detail: f.alert.detail.clone(),
                started_at: f.alert.since.timestamp(),
                ended_at: None,
            })
            .collect();
        let started_events: Vec<LiveEvent> = started
            .iter()
            .map(|f| {
                LiveEvent::alert(AlertChange {
                    fingerprint: Some(f.alert.fingerprint.clone()),
                    alert: Some((*f).clone()),
                    ..AlertChange::new(AlertAction::Fired)
                })
            })
            .collect();
        let firing = Arc::new(firing);
        {
            let mut cache = self.cache.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            cache.reports = reports;
            cache.firing = firing.clone();
            cache.metrics_text = metrics_text;
            if overview_changed {
                cache.status_json = status_json;
            }
            cache.overview = Some(Arc::new(overview));
        }

        self.record_and_publish(&past, started_events, &firing, &fresh);
        if (overview_changed || alerts_changed)
            && let Some(o) = self.overview()
        {
            self.send(LiveEvent::overview(&o));
        }
    }
}
