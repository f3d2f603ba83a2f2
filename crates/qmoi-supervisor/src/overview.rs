//! The overview: every component's state joined with its latest report, and the verdict.
//! Served by `status`, written into `master_monitor_latest.json`, and rebuilt from report
//! files alone when no supervisor runs.

use crate::config::{AlertsConfig, Plan};
use crate::state::{ComponentStatus, State};
use crate::verdict;
use chrono::Utc;
use qmoi_core::alerts::Scope;
pub use qmoi_core::overview::{Overview, SupervisorInfo};
use qmoi_core::report::{Labels, ReadOutcome, read_report};
use qmoi_core::{AlertLevel, component};
use std::path::Path;
use std::time::SystemTime;

/// What the overview takes from one report file.
#[derive(Debug, Clone)]
struct Digest {
    summary: String,
    status: qmoi_core::Status,
    critical: usize,
    warning: usize,
    /// The checks that are not ok and the alerts, by name and fingerprint, with their
    /// labels: without what a maintenance window of part of the component covers, status
    /// and counts are worked out again.
    not_ok: Vec<(String, qmoi_core::Status, Labels)>,
    alerts: Vec<(String, AlertLevel, Labels)>,
}

impl Digest {
    /// (status, critical alerts, warning alerts) without what `covered` says is in
    /// maintenance.
    fn without(&self, covered: impl Fn(&str, &Labels) -> bool) -> (qmoi_core::Status, usize, usize) {
        let status =
            qmoi_core::Status::worst_of(self.not_ok.iter().filter(|(n, _, l)| !covered(n, l)).map(|(_, s, _)| *s));
        let count = |lv: AlertLevel| self.alerts.iter().filter(|(f, a, l)| *a == lv && !covered(f, l)).count();
        (status, count(AlertLevel::Critical), count(AlertLevel::Warning))
    }
}

/// The overview is rebuilt every second, but a report file changes only once per interval
/// and can be megabytes (thousands of endpoints): decode a file only when its mtime or size
/// changed, and keep just the few fields the overview needs.
/// A file's identity for the cache (mtime, size) and what was read from it.
type Entry = ((SystemTime, u64), Result<Digest, String>);

#[derive(Debug, Default)]
pub struct ReportCache {
    entries: std::sync::Mutex<std::collections::HashMap<std::path::PathBuf, Entry>>,
    /// Each file's last usable digest: when the file turns unusable, its alerts are
    /// still counted (a file that cannot be read resolves nothing).
    last_good: std::sync::Mutex<std::collections::HashMap<std::path::PathBuf, Digest>>,
    decoded: std::sync::atomic::AtomicUsize,
}

impl ReportCache {
    /// How many times a file was actually decoded (for tests).
    pub fn decoded(&self) -> usize {
        self.decoded.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The file's mtime and its digest (or why it is unusable).
    fn get(&self, path: &Path) -> (Option<SystemTime>, Result<Digest, String>) {
        let key = std::fs::metadata(path).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
        let mut map = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let (Some(k), Some((cached, d))) = (key, map.get(path))
            && *cached == k
        {
            return (Some(k.0), d.clone());
        }
        self.decoded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (modified, digest) = match read_report(path) {
            ReadOutcome::Ok { report, modified } => (
                modified,
                Ok(Digest {
                    summary: report.summary.clone(),
                    status: report.status,
                    critical: report.alerts.iter().filter(|a| a.level == AlertLevel::Critical).count(),
                    warning: report.alerts.iter().filter(|a| a.level == AlertLevel::Warning).count(),
                    not_ok: report
                        .checks
                        .iter()
                        .filter(|c| c.status != qmoi_core::Status::Ok)
                        .map(|c| (c.name.clone(), c.status, c.labels.clone()))
                        .collect(),
                    alerts: report.alerts.iter().map(|a| (a.fingerprint.clone(), a.level, a.labels.clone())).collect(),
                }),
            ),
            ReadOutcome::Unusable { reason } => (None, Err(reason)),
        };
        match key {
            Some(k) => {
                map.insert(path.to_path_buf(), (k, digest.clone()));
            }
            None => {
                map.remove(path);
            }
        }
        if let Ok(d) = &digest
            && let Ok(mut good) = self.last_good.lock()
        {
            good.insert(path.to_path_buf(), d.clone());
        }
        (modified, digest)
    }

    fn last_good(&self, path: &Path) -> Option<Digest> {
        self.last_good.lock().ok().and_then(|m| m.get(path).cloned())
    }
}

/// Fill each component's report fields from `<report_dir>/<id>_latest.json`. A report older
/// than `stale_after` still gives its summary and age, but no status or alerts: what it
/// says is no longer known to be true.
///
/// `parts`: per component, the parts of it in a maintenance window now (subjects,
/// labels); their checks and alerts are left out of its status and alert counts.
pub fn attach_reports(
    components: &mut [ComponentStatus],
    report_dir: &Path,
    cache: &ReportCache,
    parts: &std::collections::HashMap<String, Vec<Scope>>,
) {
    let now = SystemTime::now();
    for c in components.iter_mut() {
        c.report_age_s = None;
        c.report_status = None;
        c.critical_alerts = 0;
        c.warning_alerts = 0;
        c.report_error = None;
        if c.state == State::Disabled {
            continue;
        }
        let path = report_dir.join(component::latest_report_name(&c.id));
        match cache.get(&path) {
            (modified, Ok(d)) => {
                let age = modified.and_then(|m| now.duration_since(m).ok()).map(|d| d.as_secs_f64());
                c.report_age_s = age.map(|a| (a * 10.0).round() / 10.0);
                c.summary = Some(d.summary.clone());
                if age.is_some_and(|a| a <= c.stale_after_s as f64) {
                    let (status, critical, warning) = match parts.get(&c.id).filter(|s| !s.is_empty()) {
                        None => (d.status, d.critical, d.warning),
                        Some(s) => d.without(|name, labels| s.iter().any(|p| p.covers(name, labels))),
                    };
                    c.report_status = Some(status);
                    c.critical_alerts = critical;
                    c.warning_alerts = warning;
                }
            }
            // A file that is there but cannot be used (not a regular file, too big,
            // invalid, another schema version) is never "nothing to report": the
            // component is `unknown`, and what its last usable report said still fires.
            (_, Err(reason)) if std::fs::symlink_metadata(&path).is_ok() => {
                c.report_status = Some(qmoi_core::Status::Unknown);
                if let Some(d) = cache.last_good(&path) {
                    c.critical_alerts = d.critical;
                    c.warning_alerts = d.warning;
                }
                c.summary = Some(format!("report unusable: {reason}"));
                c.report_error = Some(reason);
            }
            (_, Err(reason)) => {
                if c.summary.is_none() {
                    c.summary = Some(reason);
                }
            }
        }
    }
}

/// The overview of `components` with their reports; `parts` as for [`attach_reports`].
pub fn build(
    mut components: Vec<ComponentStatus>,
    report_dir: &Path,
    cache: &ReportCache,
    alerts: &AlertsConfig,
    supervisor: Option<SupervisorInfo>,
    parts: &std::collections::HashMap<String, Vec<Scope>>,
) -> Overview {
    attach_reports(&mut components, report_dir, cache, parts);
    let verdict = verdict::evaluate(&components, alerts);
    Overview { generated_at: Utc::now(), verdict, components, supervisor }
}

/// Without a supervisor (monitors under their own systemd units, or nothing running):
/// a component with a fresh report is `running`, one with an old or no report is `stale`.
pub fn from_reports(plan: &Plan, report_dir: &Path) -> Overview {
    let mut comps: Vec<ComponentStatus> = plan
        .components
        .iter()
        .map(|s| {
            let mut c = ComponentStatus::new(&s.id, s.priority, s.interval.as_secs(), s.stale_after.as_secs());
            c.state = if s.enabled { State::Stale } else { State::Disabled };
            c
        })
        .collect();
    attach_reports(&mut comps, report_dir, &ReportCache::default(), &Default::default());
    for c in &mut comps {
        if c.state == State::Disabled {
            continue;
        }
        if c.report_status.is_some() {
            c.state = State::Running;
        } else {
            c.note = Some(match c.report_age_s {
                Some(a) => format!("report is {a:.0}s old"),
                None => "no report".into(),
            });
        }
    }
    let verdict = verdict::evaluate(&comps, &plan.config.alerts);
    Overview { generated_at: Utc::now(), verdict, components: comps, supervisor: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qmoi_core::component::Priority;

    fn report(status: &str, summary: &str) -> String {
        format!(
            r#"{{"schema_version":1,"component":"system_health","host":"h","generated_at":"2026-11-27T03:00:00Z",
               "interval_s":60,"duration_ms":1,"status":"{status}","summary":"{summary}","checks":[],"metrics":{{}},
               "alerts":[{{"fingerprint":"system_health/x","level":"critical","title":"t","detail":"d","since":"2026-11-27T03:00:00Z"}}],
               "details":{{}}}}"#
        )
    }

    #[test]
    fn a_report_is_decoded_again_only_when_the_file_changes() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("system_health_latest.json");
        std::fs::write(&path, report("ok", "first"))?;
        let cache = ReportCache::default();
        let comps = || vec![ComponentStatus::new("system_health", Priority::High, 60, 180)];
        let mut c = comps();
        for _ in 0..3 {
            c = comps();
            attach_reports(&mut c, dir.path(), &cache, &Default::default());
        }
        assert_eq!(cache.decoded(), 1, "unchanged file decoded once");
        assert_eq!((c[0].summary.as_deref(), c[0].critical_alerts), (Some("first"), 1));
        // A new report (other size, so the change is seen even within one mtime tick).
        std::fs::write(&path, report("warning", "second, longer"))?;
        let mut c = comps();
        attach_reports(&mut c, dir.path(), &cache, &Default::default());
        assert_eq!(cache.decoded(), 2);
        assert_eq!(
            (c[0].summary.as_deref(), c[0].report_status),
            (Some("second, longer"), Some(qmoi_core::Status::Warning))
        );
        std::fs::remove_file(&path)?;
        let mut c = comps();
        attach_reports(&mut c, dir.path(), &cache, &Default::default());
        assert!(c[0].summary.as_deref().is_some_and(|s| s.contains("missing")), "{:?}", c[0].summary);
        Ok(())
    }
}
