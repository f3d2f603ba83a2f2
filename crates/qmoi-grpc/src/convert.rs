//! The dashboard's types as the proto's messages.

use crate::pb;
use qmoi_core::overview::{ComponentStatus, Overall, Overview};
use qmoi_core::report::Report;
use qmoi_dashboard::hub::{AlertChange, FiringAlert};
use qmoi_dashboard::store::Marks;

fn rfc3339(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn overview(o: &Overview) -> pb::Overview {
    let verdict = match o.verdict.overall {
        Overall::Healthy => pb::Verdict::Healthy,
        Overall::Degraded => pb::Verdict::Degraded,
        Overall::Critical => pb::Verdict::Critical,
    };
    pb::Overview {
        generated_at: rfc3339(&o.generated_at),
        verdict: verdict.into(),
        reasons: o.verdict.reasons.clone(),
        components: o.components.iter().map(component_state).collect(),
        supervisor: o.supervisor.as_ref().map(|s| pb::SupervisorInfo {
            pid: s.pid,
            started_at: rfc3339(&s.started_at),
            version: s.version.clone(),
            last_reload: s.reload.as_ref().map(|r| pb::Reload {
                at: rfc3339(&r.at),
                ok: r.ok,
                errors: r.errors.clone(),
                changes: r.changes.clone(),
                pending_restart: r.pending_restart.clone(),
                took_ms: r.took_ms,
            }),
        }),
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

pub fn component_state(c: &ComponentStatus) -> pb::ComponentState {
    pb::ComponentState {
        id: c.id.clone(),
        state: c.state.as_str().into(),
        priority: c.priority.to_string(),
        pid: c.pid,
        restarts: c.restarts,
        report_age_s: c.report_age_s,
        report_status: c.report_status.map(|s| s.as_str().into()),
        summary: c.summary.clone(),
        critical_alerts: count(c.critical_alerts),
        warning_alerts: count(c.warning_alerts),
        note: c.note.clone(),
        report_error: c.report_error.clone(),
        maintenance: c.maintenance.clone(),
        maintenance_subjects: c.maintenance_subjects.clone(),
    }
}

pub fn report(r: &Report) -> pb::Report {
    pb::Report {
        component: r.component.clone(),
        host: r.host.clone(),
        generated_at: rfc3339(&r.generated_at),
        status: r.status.as_str().into(),
        summary: r.summary.clone(),
        checks: r
            .checks
            .iter()
            .map(|c| pb::Check {
                name: c.name.clone(),
                status: c.status.as_str().into(),
                message: c.message.clone(),
                value: c.value,
                unit: c.unit.clone(),
                labels: c.labels.clone().into_iter().collect(),
            })
            .collect(),
        metrics: r.metrics.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        alerts: r
            .alerts
            .iter()
            .map(|a| pb::Alert {
                fingerprint: a.fingerprint.clone(),
                component: r.component.clone(),
                level: a.level.as_str().into(),
                title: a.title.clone(),
                detail: a.detail.clone(),
                since: rfc3339(&a.since),
                labels: a.labels.clone().into_iter().collect(),
                ..pb::Alert::default()
            })
            .collect(),
        details_json: r.details.get().to_string(),
    }
}

/// A firing alert with what the store says of it (acknowledged by, silenced by).
pub fn firing(f: &FiringAlert, marks: &Marks) -> pb::Alert {
    let a = &f.alert;
    pb::Alert {
        fingerprint: a.fingerprint.clone(),
        component: f.component.clone(),
        level: a.level.as_str().into(),
        title: a.title.clone(),
        detail: a.detail.clone(),
        since: rfc3339(&a.since),
        stale: f.stale,
        acknowledged_by: marks.ack(&a.fingerprint).map(|k| k.by.clone()),
        silenced_by: marks.silenced_by(&f.component, &a.fingerprint, a.level.as_str()),
        labels: a.labels.clone().into_iter().collect(),
    }
}

/// A change of an alert as an `AlertEvent`.
pub fn alert_event(c: &AlertChange) -> pb::AlertEvent {
    // As it fired: acknowledgement and silence are events of their own.
    let alert = c.alert.as_ref().map(|f| firing(f, &Marks::default()));
    pb::AlertEvent {
        fingerprint: c.fingerprint.clone().unwrap_or_default(),
        action: c.action.as_str().into(),
        alert,
        silence: c.silence,
        heartbeat: false,
    }
}

#[cfg(test)]
mod tests {
    use qmoi_dashboard::hub::{AlertAction, AlertChange, FiringAlert};

    #[test]
    fn alert_changes_become_alert_events() {
        let alert: FiringAlert = serde_json::from_str(
            r#"{"component":"backup","fingerprint":"backup/age:db","level":"critical","title":"Old","detail":"2 days","since":"2026-12-07T00:00:00Z"}"#,
        )
        .unwrap();
        let fired = AlertChange {
            fingerprint: Some("backup/age:db".into()),
            alert: Some(alert),
            ..AlertChange::new(AlertAction::Fired)
        };
        let e = super::alert_event(&fired);
        assert_eq!((e.action.as_str(), e.fingerprint.as_str()), ("fired", "backup/age:db"));
        assert_eq!(e.alert.unwrap().level, "critical");
        let silenced = AlertChange { silence: Some(7), ..AlertChange::new(AlertAction::Silenced) };
        let e = super::alert_event(&silenced);
        assert_eq!((e.action.as_str(), e.silence, e.fingerprint.as_str()), ("silenced", Some(7), ""));
    }
}
