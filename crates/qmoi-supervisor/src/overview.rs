//! The overview: every component's state joined with its latest report, and the verdict.
//! Served by `status`, written into `master_monitor_latest.json`, and rebuilt from report
//! files alone when no supervisor runs.

use crate::config::{AlertsConfig, Plan};
use crate::state::{ComponentStatus, State};
use crate::verdict;
use chrono::Utc;
pub use qmoi_core::overview::{Overview, SupervisorInfo};
use qmoi_core::report::{ReadOutcome, read_report};
use qmoi_core::{AlertLevel, component};
use std::path::Path;
use std::time::SystemTime;

/// Fill each component's report fields from `<report_dir>/<id>_latest.json`. A report older
/// than `stale_after` still gives its summary and age, but no status or alerts: what it
/// says is no longer known to be true.
pub fn attach_reports(components: &mut [ComponentStatus], report_dir: &Path) {
    let now = SystemTime::now();
    for c in components.iter_mut() {
        c.report_age_s = None;
        c.report_status = None;
        c.critical_alerts = 0;
        c.warning_alerts = 0;
        if c.state == State::Disabled {
            continue;
        }
        match read_report(&report_dir.join(component::latest_report_name(&c.id))) {
            ReadOutcome::Ok { report, modified } => {
                let age = modified.and_then(|m| now.duration_since(m).ok()).map(|d| d.as_secs_f64());
                c.report_age_s = age.map(|a| (a * 10.0).round() / 10.0);
                c.summary = Some(report.summary.clone());
                if age.is_some_and(|a| a <= c.stale_after_s as f64) {
                    c.report_status = Some(report.status);
                    c.critical_alerts = report.alerts.iter().filter(|a| a.level == AlertLevel::Critical).count();
                    c.warning_alerts = report.alerts.iter().filter(|a| a.level == AlertLevel::Warning).count();
                }
            }
            ReadOutcome::Unusable { reason } => {
                if c.summary.is_none() {
                    c.summary = Some(reason);
                }
            }
        }
    }
}

pub fn build(
    mut components: Vec<ComponentStatus>,
    report_dir: &Path,
    alerts: &AlertsConfig,
    supervisor: Option<SupervisorInfo>,
) -> Overview {
    attach_reports(&mut components, report_dir);
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
    attach_reports(&mut comps, report_dir);
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
