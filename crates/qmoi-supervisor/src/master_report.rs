//! `master_monitor_latest.json` (the supervisor's own report, schema v1) and
//! `monitoring_startup_<UTC>.json`.

use crate::config::Plan;
use crate::overview::Overview;
use crate::state::State;
use crate::verdict::Overall;
use chrono::{DateTime, Utc};
use qmoi_core::alerts::{AlertTracker, fingerprint};
use qmoi_core::component::{MASTER_MONITOR, Priority};
use qmoi_core::report::{Alert, CheckResult, Report, write_json_atomic};
use qmoi_core::{AlertLevel, Status};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The supervisor's own alerts: a component failed, stale, or restarted by the watchdog.
/// (Each monitor's own alerts stay in its own report, so nothing is notified twice.)
fn supervisor_alerts(o: &Overview) -> Vec<Alert> {
    let now = Utc::now();
    let mut out = Vec::new();
    for c in &o.components {
        let note = c.note.clone().unwrap_or_default();
        let important = c.priority >= Priority::High;
        let mut push = |kind: &str, level: AlertLevel, title: String| {
            out.push(Alert {
                fingerprint: fingerprint(MASTER_MONITOR, &format!("{kind}:{}", c.id)),
                level,
                title,
                detail: note.clone(),
                since: now,
                labels: Default::default(),
            });
        };
        match c.state {
            State::Failed => push(
                "component_failed",
                if important { AlertLevel::Critical } else { AlertLevel::Warning },
                format!("Monitor {} failed", c.id),
            ),
            State::Stale => push("component_stale", AlertLevel::Warning, format!("Monitor {} stopped reporting", c.id)),
            State::Restarting => {
                push("component_restarting", AlertLevel::Warning, format!("Monitor {} is restarting", c.id))
            }
            _ => {}
        }
        if let Some(w) = &c.watchdog {
            out.push(Alert {
                fingerprint: fingerprint(MASTER_MONITOR, &format!("watchdog:{}", c.id)),
                level: AlertLevel::Warning,
                title: format!("Monitor {} restarted by the watchdog", c.id),
                detail: w.clone(),
                since: now,
                labels: Default::default(),
            });
        }
    }
    if let Some(r) = o.supervisor.as_ref().and_then(|s| s.reload.as_ref()).filter(|r| !r.ok) {
        out.push(Alert {
            fingerprint: fingerprint(MASTER_MONITOR, "config_reload"),
            level: AlertLevel::Warning,
            title: "Configuration reload failed; the previous configuration keeps running".into(),
            detail: r.errors.join("; "),
            since: now,
            labels: Default::default(),
        });
    }
    out
}

fn component_check(c: &crate::state::ComponentStatus) -> CheckResult {
    let important = c.priority >= Priority::High;
    let status = match c.state {
        State::Failed if important => Status::Critical,
        State::Failed | State::Stale | State::Restarting => Status::Warning,
        State::Running => c.report_status.unwrap_or(Status::Unknown),
        State::Starting | State::Disabled => Status::Ok,
    };
    let mut msg = format!("{} {}", c.id, c.state);
    if let Some(p) = c.pid {
        msg.push_str(&format!(" (pid {p})"));
    }
    if let Some(n) = &c.note {
        msg.push_str(&format!(": {n}"));
    } else if let Some(s) = &c.summary {
        msg.push_str(&format!(": {s}"));
    }
    CheckResult::new(format!("component:{}", c.id), status, msg)
}

/// Build the master report from an overview; `notes` are the supervisor's own problems
/// to alert on (its database found unreadable and set aside), as `(subject, detail)`.
pub fn build(
    o: &Overview,
    tracker: &mut AlertTracker,
    host: &str,
    interval_s: u64,
    notes: &[(&str, String)],
) -> Report {
    let checks: Vec<CheckResult> = o.components.iter().map(component_check).collect();
    let mut metrics = BTreeMap::new();
    // A disabled component is not monitored: no series (its `up` of 0 would page).
    for c in o.components.iter().filter(|c| c.state != State::Disabled) {
        let l = format!("{{component=\"{}\"}}", c.id);
        let up = if c.state == State::Running { 1.0 } else { 0.0 };
        metrics.insert(format!("qmoi_component_up{l}"), up);
        metrics.insert(format!("qmoi_component_restarts_total{l}"), f64::from(c.restarts));
        metrics.insert(format!("qmoi_component_stale_after_seconds{l}"), c.stale_after_s as f64);
        metrics.insert(format!("qmoi_maintenance_active{l}"), if c.maintenance.is_some() { 1.0 } else { 0.0 });
        for (level, n) in [("critical", c.critical_alerts), ("warning", c.warning_alerts)] {
            metrics.insert(format!("qmoi_component_alerts{{component=\"{}\",level=\"{level}\"}}", c.id), n as f64);
        }
        if let Some(a) = c.report_age_s {
            metrics.insert(format!("qmoi_component_report_age_seconds{l}"), a);
        }
    }
    let verdict_num = match o.verdict.overall {
        Overall::Healthy => 0.0,
        Overall::Degraded => 1.0,
        Overall::Critical => 2.0,
    };
    metrics.insert("qmoi_verdict".into(), verdict_num);
    let now = Utc::now();
    // "Last seen" for a fleet: the newest of these across scrapes and pushes.
    metrics.insert("qmoi_last_report_timestamp_seconds".into(), now.timestamp_millis() as f64 / 1000.0);
    let mut own = supervisor_alerts(o);
    own.extend(notes.iter().map(|(subject, detail)| Alert {
        fingerprint: fingerprint(MASTER_MONITOR, subject),
        level: AlertLevel::Warning,
        title: "A database of the supervisor was unreadable and started anew".into(),
        detail: detail.clone(),
        since: now,
        labels: Default::default(),
    }));
    let alerts = tracker.update(MASTER_MONITOR, &[], own, now);
    let running = o.components.iter().filter(|c| c.state == State::Running).count();
    let enabled = o.components.iter().filter(|c| c.state != State::Disabled).count();
    let summary = if o.verdict.reasons.is_empty() {
        format!("healthy: {running} of {enabled} components running")
    } else {
        format!("{}: {}", o.verdict.overall, o.verdict.reasons.join("; "))
    };
    // The status is the verdict, not the worst of the component checks.
    Report {
        host: host.to_string(),
        generated_at: now,
        interval_s,
        status: o.verdict.overall.status(),
        summary,
        metrics,
        alerts,
        details: qmoi_core::report::Details::of(o),
        ..Report::from_checks(MASTER_MONITOR, checks)
    }
}

/// Write `monitoring_startup_YYYYMMDD_HHMMSS.json`: what was configured and how each
/// component will be started (or why it cannot be).
pub fn write_startup(plan: &Plan, report_dir: &Path, started_at: DateTime<Utc>, host: &str) -> Result<PathBuf, String> {
    let comps: Vec<serde_json::Value> = plan
        .components
        .iter()
        .map(|s| {
            serde_json::json!({
                "id": s.id,
                "enabled": s.enabled,
                "priority": s.priority,
                "interval_s": s.interval.as_secs(),
                "stale_after_s": s.stale_after.as_secs(),
                "depends_on": s.depends_on,
                "binary": s.binary.as_ref().map(|p| p.display().to_string()).ok(),
                "problem": s.binary.as_ref().err(),
                "config": s.config.as_ref().map(|p| p.display().to_string()),
            })
        })
        .collect();
    let doc = serde_json::json!({
        "started_at": qmoi_core::report::rfc3339::format(&started_at),
        "host": host,
        "pid": std::process::id(),
        "version": env!("CARGO_PKG_VERSION"),
        "config": plan.source.as_ref().map(|p| p.display().to_string()),
        "start_order": plan.components.iter().filter(|c| c.enabled).map(|c| c.id.clone()).collect::<Vec<_>>(),
        "components": comps,
        "alerts": plan.config.alerts,
        "restart": plan.config.restart,
        "dashboard": plan.config.dashboard,
    });
    let path = report_dir.join(format!("monitoring_startup_{}.json", started_at.format("%Y%m%d_%H%M%S")));
    let mut bytes = serde_json::to_vec_pretty(&doc).map_err(|e| e.to_string())?;
    bytes.push(b'\n');
    write_json_atomic(&path, &bytes).map_err(|e| e.to_string())?;
    prune_startups(report_dir, STARTUPS_KEPT);
    Ok(path)
}

/// Startup reports kept: one per start, so a supervisor restarted in a loop (or by a
/// daily deploy) would otherwise fill the folder.
pub const STARTUPS_KEPT: usize = 20;

/// Remove all but the newest `keep` `monitoring_startup_*.json` (their names sort by time).
fn prune_startups(report_dir: &Path, keep: usize) {
    let Ok(rd) = std::fs::read_dir(report_dir) else { return };
    let mut names: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("monitoring_startup_") && n.ends_with(".json"))
        .collect();
    names.sort();
    let excess = names.len().saturating_sub(keep);
    for n in &names[..excess] {
        if let Err(e) = std::fs::remove_file(report_dir.join(n)) {
            tracing::warn!(file = %n, error = %e, "Cannot remove an old startup report.");
        }
    }
}

#[cfg(test)]
mod startup_tests {
    use super::prune_startups;

    /// Regression: `monitoring_startup_*.json` were never pruned (one per start).
    #[test]
    fn only_the_newest_startup_reports_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..25 {
            let name = format!("monitoring_startup_20261206_1200{i:02}.json");
            std::fs::write(dir.path().join(name), "{}").unwrap();
        }
        std::fs::write(dir.path().join("system_health_latest.json"), "{}").unwrap();
        prune_startups(dir.path(), 20);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .map(|rd| rd.flatten().filter_map(|e| e.file_name().into_string().ok()).collect())
            .unwrap_or_default();
        left.sort();
        assert_eq!(left.len(), 21);
        assert_eq!(left[0], "monitoring_startup_20261206_120005.json");
        assert!(left.contains(&"system_health_latest.json".to_string()));
    }
}
