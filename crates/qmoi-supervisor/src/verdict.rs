//! The overall verdict: `healthy`, `degraded` or `critical`, with the reasons spelled out.
//!
//! Rules, in words an operator can check against the status table:
//! - **critical** when a component of priority `high` or `critical` has `failed`, or its
//!   latest report is `critical`; or when at least `alerts.critical_threshold` critical
//!   alerts fire at once across all components.
//! - **degraded** when any other component has failed, is stale or restarting; when any
//!   report is `warning`, `critical` (lower priority) or `unknown`; when any critical alert
//!   fires (below the threshold); or when at least `alerts.warning_threshold` warning
//!   alerts fire at once.
//! - A report file that is there but cannot be used makes its component `unknown`:
//!   degraded, and **critical** for a component of priority `critical`; its last usable
//!   report's alerts still count. A component restarted twice or more within the restart
//!   window that is starting again (a crash loop) is degraded, with its last exit and the
//!   last line it wrote to stderr as the reason.
//! - A component in a maintenance window counts for nothing (nor do its alerts).
//! - **healthy** otherwise. Components starting for the first time count for nothing
//!   until their startup timeout, after which they are stale.

use crate::config::AlertsConfig;
use crate::state::{ComponentStatus, State};
use qmoi_core::Status;
use qmoi_core::component::Priority;
pub use qmoi_core::overview::{Overall, Verdict};

pub fn evaluate(components: &[ComponentStatus], alerts: &AlertsConfig) -> Verdict {
    let mut critical = Vec::new();
    let mut degraded = Vec::new();
    let important = |c: &ComponentStatus| c.priority >= Priority::High;
    let mut n_crit = 0;
    let mut n_warn = 0;
    for c in components.iter().filter(|c| c.maintenance.is_none()) {
        let why = |what: &str| match &c.note {
            Some(n) if !n.is_empty() => format!("{} {what}: {n}", c.id),
            _ => format!("{} {what}", c.id),
        };
        match c.state {
            State::Starting if c.restarts_in_window >= 2 => {
                let last_words = c.stderr_tail.iter().rev().find(|l| !l.trim().is_empty());
                let mut r = format!("{} is crash-looping ({} restarts)", c.id, c.restarts_in_window);
                if let Some(e) = &c.last_exit {
                    r.push_str(&format!("; last exit: {e}"));
                }
                if let Some(l) = last_words {
                    r.push_str(&format!(": {}", l.trim()));
                }
                degraded.push(r);
            }
            State::Disabled | State::Starting => {}
            State::Failed if important(c) => critical.push(why("failed")),
            State::Failed => degraded.push(why("failed")),
            State::Stale => degraded.push(why("is stale")),
            State::Restarting => degraded.push(why("is restarting")),
            State::Running => {}
        }
        if c.state == State::Disabled || c.maintenance.is_some() {
            continue;
        }
        n_crit += c.critical_alerts;
        n_warn += c.warning_alerts;
        if let Some(st) = c.report_status {
            let summary = c.summary.as_deref().unwrap_or("");
            let line = format!("{} {st}: {summary}", c.id);
            match st {
                Status::Critical if important(c) => critical.push(line),
                Status::Unknown if c.report_error.is_some() && c.priority == Priority::Critical => critical.push(line),
                Status::Critical | Status::Warning | Status::Unknown => degraded.push(line),
                Status::Ok => {}
            }
        }
    }
    let total_crit = u32::try_from(n_crit).unwrap_or(u32::MAX);
    let total_warn = u32::try_from(n_warn).unwrap_or(u32::MAX);
    if total_crit >= alerts.critical_threshold {
        critical.push(format!(
            "{n_crit} critical alert{} firing (critical_threshold {})",
            if n_crit == 1 { "" } else { "s" },
            alerts.critical_threshold
        ));
    } else if n_crit > 0 {
        degraded.push(format!("{n_crit} critical alert{} firing", if n_crit == 1 { "" } else { "s" }));
    }
    if total_warn >= alerts.warning_threshold {
        degraded.push(format!("{n_warn} warning alerts firing (warning_threshold {})", alerts.warning_threshold));
    }
    let overall = if !critical.is_empty() {
        Overall::Critical
    } else if !degraded.is_empty() {
        Overall::Degraded
    } else {
        Overall::Healthy
    };
    critical.extend(degraded);
    Verdict { overall, reasons: critical }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comp(id: &str, prio: Priority, state: State, report: Option<Status>) -> ComponentStatus {
        let mut c = ComponentStatus::new(id, prio, 60, 180);
        c.state = state;
        c.report_status = report;
        c.summary = Some("summary".into());
        c
    }

    #[test]
    fn all_running_and_ok_is_healthy() {
        let v = evaluate(
            &[comp("system_health", Priority::High, State::Running, Some(Status::Ok))],
            &AlertsConfig::default(),
        );
        assert_eq!(v, Verdict { overall: Overall::Healthy, reasons: vec![] });
    }

    #[test]
    fn priority_decides_between_degraded_and_critical() {
        let a = AlertsConfig::default();
        let hi = evaluate(&[comp("security", Priority::Critical, State::Failed, None)], &a);
        assert_eq!(hi.overall, Overall::Critical);
        assert_eq!(hi.reasons, vec!["security failed"]);
        let lo = evaluate(&[comp("backup", Priority::Medium, State::Running, Some(Status::Critical))], &a);
        assert_eq!(lo.overall, Overall::Degraded);
        let warn = evaluate(&[comp("system_health", Priority::High, State::Running, Some(Status::Warning))], &a);
        assert_eq!(warn.overall, Overall::Degraded);
        assert_eq!(warn.reasons, vec!["system_health warning: summary"]);
    }

    #[test]
    fn alert_counts_reach_thresholds() {
        let a = AlertsConfig { critical_threshold: 2, warning_threshold: 3, auto_restart: true };
        let mut c = comp("backup", Priority::Medium, State::Running, Some(Status::Ok));
        c.critical_alerts = 2;
        let v = evaluate(&[c], &a);
        assert_eq!(v.overall, Overall::Critical);
        assert!(v.reasons[0].contains("2 critical alerts firing (critical_threshold 2)"), "{:?}", v.reasons);
        // Warning alerts: below warning_threshold they count for nothing, at it degraded.
        let mut w = comp("backup", Priority::Medium, State::Running, Some(Status::Ok));
        w.warning_alerts = 2;
        assert_eq!(evaluate(&[w.clone()], &a).overall, Overall::Healthy);
        w.warning_alerts = 3;
        let v = evaluate(&[w], &a);
        assert_eq!(v.overall, Overall::Degraded);
        assert_eq!(v.reasons, vec!["3 warning alerts firing (warning_threshold 3)"]);
    }

    /// Regression: a report rewritten with `"schema_version": 2` turned CRITICAL into
    /// HEALTHY; a crash-looping monitor counted for nothing while it was `starting`.
    #[test]
    fn unusable_reports_and_crash_loops_never_read_as_healthy() {
        let a = AlertsConfig::default();
        let mut sec = comp("security", Priority::Critical, State::Running, Some(Status::Unknown));
        sec.report_error = Some("unsupported schema_version 2".into());
        assert_eq!(evaluate(&[sec.clone()], &a).overall, Overall::Critical);
        sec.priority = Priority::Medium;
        assert_eq!(evaluate(&[sec], &a).overall, Overall::Degraded);
        // A monitor's own `unknown` (a check that cannot run) is not escalated.
        let own = comp("security", Priority::Critical, State::Running, Some(Status::Unknown));
        assert_eq!(evaluate(&[own], &a).overall, Overall::Degraded);
        let mut looping = comp("performance", Priority::High, State::Starting, None);
        looping.restarts_in_window = 3;
        looping.last_exit = Some("exit status 1".into());
        looping.stderr_tail =
            vec!["qmoi-performance: cannot write logs/x.tmp: No space left on device (os error 28)".into()];
        let v = evaluate(&[looping], &a);
        assert_eq!(v.overall, Overall::Degraded);
        assert!(
            v.reasons[0].contains("crash-looping (3 restarts); last exit: exit status 1")
                && v.reasons[0].contains("No space left on device"),
            "{:?}",
            v.reasons
        );
    }

    #[test]
    fn starting_and_disabled_count_for_nothing() {
        let v = evaluate(
            &[comp("a", Priority::High, State::Starting, None), comp("b", Priority::High, State::Disabled, None)],
            &AlertsConfig::default(),
        );
        assert_eq!(v.overall, Overall::Healthy);
    }
}
