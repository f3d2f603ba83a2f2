//! Alerts from check results, with `since` kept stable across runs and restarts.

use crate::report::{Alert, CheckResult, Report};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// `<component>/<check name>`: the fingerprint of the alert a check raises.
pub fn fingerprint(component: &str, subject: &str) -> String {
    format!("{component}/{subject}")
}

/// The subject of a check name or an alert fingerprint: what follows its last `:`
/// (`endpoint:checkout`, `api_endpoints/slo:checkout` → `checkout`). A maintenance window
/// of one subject of a component covers the checks and alerts with that subject.
pub fn subject_of(name: &str) -> Option<&str> {
    name.rsplit_once(':').map(|(_, s)| s)
}

/// Remembers when each alert started firing, so `since` does not move while it keeps
/// firing. Seeded from the previous report on start, so a restart does not reset it.
#[derive(Debug, Default)]
pub struct AlertTracker {
    since: HashMap<String, DateTime<Utc>>,
}

impl AlertTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Carry over `since` from a report written before this process started.
    pub fn seed_from(&mut self, previous: &Report) {
        self.seed_from_alerts(&previous.alerts);
    }

    pub fn seed_from_alerts(&mut self, alerts: &[Alert]) {
        for a in alerts {
            self.since.insert(a.fingerprint.clone(), a.since);
        }
    }

    /// Alerts for every non-ok check, plus `extra` alerts the monitor raised itself
    /// (their `since` is replaced by the tracked one). Alerts no longer firing are forgotten.
    pub fn update(
        &mut self,
        component: &str,
        checks: &[CheckResult],
        extra: Vec<Alert>,
        now: DateTime<Utc>,
    ) -> Vec<Alert> {
        let mut alerts: Vec<Alert> = checks
            .iter()
            .filter_map(|c| {
                let level = c.status.alert_level()?;
                Some(Alert {
                    fingerprint: fingerprint(component, &c.name),
                    level,
                    title: c.title.clone().unwrap_or_else(|| capitalize(&c.message)),
                    detail: c.message.clone(),
                    since: now,
                })
            })
            .collect();
        alerts.extend(extra);
        let mut next = HashMap::with_capacity(alerts.len());
        for a in &mut alerts {
            let since = *self.since.get(&a.fingerprint).unwrap_or(&now);
            a.since = since;
            next.insert(a.fingerprint.clone(), since);
        }
        self.since = next;
        alerts
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;

    #[test]
    fn since_is_kept_while_firing_and_reset_after_resolve() {
        let mut t = AlertTracker::new();
        let t0 = Utc::now();
        let warn = vec![CheckResult::new("disk_usage:/", Status::Warning, "disk / at 90%")];
        let a1 = t.update("system_health", &warn, vec![], t0);
        assert_eq!(a1.len(), 1);
        assert_eq!(a1[0].fingerprint, "system_health/disk_usage:/");
        assert_eq!(a1[0].title, "Disk / at 90%");
        let a2 = t.update("system_health", &warn, vec![], t0 + chrono::Duration::seconds(60));
        assert_eq!(a2[0].since, t0);
        assert!(t.update("system_health", &[], vec![], t0 + chrono::Duration::seconds(120)).is_empty());
        let a3 = t.update("system_health", &warn, vec![], t0 + chrono::Duration::seconds(180));
        assert_eq!(a3[0].since, t0 + chrono::Duration::seconds(180));
    }

    #[test]
    fn ok_checks_raise_nothing_and_unknown_raises_warning() {
        let mut t = AlertTracker::new();
        let checks = vec![CheckResult::ok("cpu", "cpu 3%"), CheckResult::unknown("temp", "no sensor")];
        let a = t.update("c", &checks, vec![], Utc::now());
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].level, crate::AlertLevel::Warning);
    }
}
