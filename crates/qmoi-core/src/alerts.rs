//! Alerts from check results, with `since` kept stable across runs and restarts.

use crate::report::{Alert, CheckResult, Labels, Report};
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

/// Give each of `checks` the labels of its subject (`endpoint:checkout`, `slo:checkout`
/// → those of `checkout`), as `labels_of` knows them.
pub fn label_by_subject<'a>(checks: &mut [CheckResult], labels_of: impl Fn(&str) -> Option<&'a Labels>) {
    for c in checks {
        if let Some(l) = subject_of(&c.name).and_then(&labels_of) {
            c.labels.clone_from(l);
        }
    }
}

/// What part of a component a maintenance window covers: all of it, one subject (an
/// endpoint, a heartbeat check: the checks and alerts named `<kind>:<subject>`), the
/// checks and alerts carrying all of `labels`, or one subject when it carries them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub subject: Option<String>,
    pub labels: Labels,
}

impl Scope {
    /// The whole component.
    pub fn all(&self) -> bool {
        self.subject.is_none() && self.labels.is_empty()
    }

    /// Whether the check or alert `name` (a check name or a fingerprint) with `labels`
    /// is covered.
    pub fn covers(&self, name: &str, labels: &Labels) -> bool {
        self.covers_subject(subject_of(name), labels)
    }

    /// Whether what is named `subject` (an endpoint's or a check's own name) with
    /// `labels` is covered.
    pub fn covers_subject(&self, subject: Option<&str>, labels: &Labels) -> bool {
        self.subject.as_deref().is_none_or(|s| subject == Some(s))
            && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// `team=payments,env=prod` (commas or spaces between pairs) as labels; the error says
/// which pair is wrong. Names as Prometheus has them (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn parse_labels(s: &str) -> Result<Labels, String> {
    let mut out = Labels::new();
    for pair in s.split([',', ' ']).map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(format!("label '{pair}' is not name=value"));
        };
        check_label(k.trim(), v.trim())?;
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

/// A label name as Prometheus has them, and a value of at most 200 characters without
/// control characters.
pub fn check_label(name: &str, value: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') || name.len() > 100 {
        return Err(format!("label name '{name}' must match [a-zA-Z_][a-zA-Z0-9_]* (at most 100 characters)"));
    }
    if value.is_empty() || value.chars().count() > 200 || value.chars().any(char::is_control) {
        return Err(format!("label {name}: the value must be 1 to 200 characters without control characters"));
    }
    Ok(())
}

/// `team=payments,env=prod`.
pub fn format_labels(labels: &Labels) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
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
                    labels: c.labels.clone(),
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
    fn scopes_cover_by_subject_and_labels() {
        let payments = parse_labels("team=payments, env=prod").unwrap();
        let other = parse_labels("team=search").unwrap();
        let by_labels = Scope { subject: None, labels: parse_labels("team=payments").unwrap() };
        assert!(by_labels.covers("endpoint:checkout", &payments));
        assert!(!by_labels.covers("endpoint:search", &other));
        assert!(!by_labels.covers("endpoint:search", &Labels::new()));
        let one = Scope { subject: Some("checkout".into()), labels: Labels::new() };
        assert!(one.covers("api_endpoints/slo:checkout", &Labels::new()));
        assert!(one.covers_subject(Some("checkout"), &Labels::new()));
        assert!(!one.covers("endpoint:checkout-v2", &payments));
        assert!(Scope::default().all() && Scope::default().covers("anything", &Labels::new()));
        assert_eq!(format_labels(&payments), "env=prod,team=payments");
        assert!(parse_labels("team").unwrap_err().contains("'team' is not name=value"));
        assert!(parse_labels("1x=a").unwrap_err().contains("label name '1x'"));
        assert!(parse_labels("x=").is_err());
    }

    #[test]
    fn labels_of_a_check_go_into_its_alert() {
        let mut t = AlertTracker::new();
        let l = parse_labels("team=payments").unwrap();
        let checks = vec![CheckResult::new("endpoint:checkout", Status::Critical, "down").with_labels(&l)];
        assert_eq!(t.update("api_endpoints", &checks, vec![], Utc::now())[0].labels, l);
    }

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
