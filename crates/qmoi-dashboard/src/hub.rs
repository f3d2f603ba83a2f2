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
use qmoi_core::report::{Alert, ReadOutcome, Report, read_report};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;
use tokio::sync::broadcast;

/// One firing alert and where it comes from.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FiringAlert {
    pub component: String,
    #[serde(flatten)]
    pub alert: Alert,
}

#[derive(Default)]
struct Cache {
    overview: Option<Arc<Overview>>,
    status_json: Bytes,
    metrics_text: Bytes,
    reports: BTreeMap<String, (SystemTime, Arc<Report>)>,
    firing: Vec<FiringAlert>,
}

pub struct Hub {
    pub store: Arc<Store>,
    report_dir: PathBuf,
    cache: RwLock<Cache>,
    events: broadcast::Sender<Arc<str>>,
}

/// An event as sent to live clients: `{"type": "...", "data": {...}}`.
pub fn event_json(kind: &str, data: &impl Serialize) -> Arc<str> {
    let v = serde_json::json!({"type": kind, "data": data});
    Arc::from(v.to_string())
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

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.events.subscribe()
    }

    /// Tell live clients something happened (no receivers is fine).
    pub fn publish(&self, kind: &str, data: &impl Serialize) {
        let _ = self.events.send(event_json(kind, data));
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

    pub fn report(&self, id: &str) -> Option<Arc<Report>> {
        self.read().reports.get(id).map(|(_, r)| r.clone())
    }

    pub fn firing(&self) -> Vec<FiringAlert> {
        self.read().firing.clone()
    }

    /// Take in a new overview: re-read changed reports, record history, diff alerts, and
    /// publish what changed. Blocking (file and database IO): call it off the async threads.
    pub fn refresh(&self, overview: Overview) {
        let mut ids: Vec<String> =
            overview.components.iter().filter(|c| c.state != State::Disabled).map(|c| c.id.clone()).collect();
        ids.push(MASTER_MONITOR.to_string());
        let known: BTreeMap<String, SystemTime> =
            self.read().reports.iter().map(|(k, (m, _))| (k.clone(), *m)).collect();
        let mut fresh: Vec<(String, SystemTime, Arc<Report>)> = Vec::new();
        for id in &ids {
            let path = self.report_dir.join(component::latest_report_name(id));
            let Ok(mtime) = std::fs::metadata(&path).and_then(|m| m.modified()) else { continue };
            if known.get(id) == Some(&mtime) {
                continue;
            }
            if let ReadOutcome::Ok { report, .. } = read_report(&path) {
                let report = Arc::new(*report);
                if let Err(e) = self.store.ingest(id, report.generated_at.timestamp(), &report.metrics) {
                    tracing::warn!(error = %e, "Cannot record history.");
                }
                fresh.push((id.clone(), mtime, report));
            }
        }
        let status_json = Bytes::from(serde_json::to_vec(&overview).unwrap_or_default());
        let overview_changed = self.read().status_json != status_json;
        let mut cache = self.cache.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (id, mtime, report) in &fresh {
            cache.reports.insert(id.clone(), (*mtime, report.clone()));
        }
        cache.reports.retain(|id, _| ids.contains(id));
        // Alerts of a component whose report is stale are not known to be firing any more.
        let fresh_ids: Vec<&str> = overview
            .components
            .iter()
            .filter(|c| c.report_status.is_some())
            .map(|c| c.id.as_str())
            .chain([MASTER_MONITOR])
            .collect();
        let firing: Vec<FiringAlert> = cache
            .reports
            .iter()
            .filter(|(id, _)| fresh_ids.contains(&id.as_str()))
            .flat_map(|(id, (_, r))| {
                r.alerts.iter().map(move |a| FiringAlert { component: id.clone(), alert: a.clone() })
            })
            .collect();
        let before: Vec<String> = cache.firing.iter().map(|f| f.alert.fingerprint.clone()).collect();
        let started: Vec<FiringAlert> =
            firing.iter().filter(|f| !before.contains(&f.alert.fingerprint)).cloned().collect();
        let alerts_changed = before.len() != firing.len() || !started.is_empty();
        cache.firing = firing.clone();
        cache.metrics_text = Bytes::from(metrics::render(cache.reports.values().map(|(_, r)| r.as_ref())));
        if overview_changed {
            cache.status_json = status_json;
        }
        cache.overview = Some(Arc::new(overview));
        drop(cache);

        for f in &started {
            let past = PastAlert {
                fingerprint: f.alert.fingerprint.clone(),
                component: f.component.clone(),
                level: f.alert.level.as_str().into(),
                title: f.alert.title.clone(),
                detail: f.alert.detail.clone(),
                started_at: f.alert.since.timestamp(),
                ended_at: None,
            };
            if let Err(e) = self.store.alert_started(&past) {
                tracing::warn!(error = %e, "Cannot record alert history.");
            }
            self.publish("alert", &serde_json::json!({"action": "fired", "alert": f}));
        }
        let active: Vec<&str> = firing.iter().map(|f| f.alert.fingerprint.as_str()).collect();
        match self.store.alerts_resolved_except(&active, unix_now()) {
            Ok(ended) => {
                for fp in ended {
                    self.publish("alert", &serde_json::json!({"action": "resolved", "fingerprint": fp}));
                }
            }
            Err(e) => tracing::warn!(error = %e, "Cannot record alert history."),
        }
        for (id, _, r) in &fresh {
            if id != MASTER_MONITOR {
                self.publish(
                    "report",
                    &serde_json::json!({"component": id, "generated_at": r.generated_at, "status": r.status, "summary": r.summary}),
                );
            }
        }
        if overview_changed || alerts_changed {
            if let Some(o) = self.overview() {
                self.publish("overview", o.as_ref());
            }
        }
    }
}
