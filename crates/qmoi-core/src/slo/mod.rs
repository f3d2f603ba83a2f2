//! Service level objectives: `slo = { objective = 99.9, window = "30d" }` on an endpoint
//! (qmoi-api-endpoints: probes) or a heartbeat (qmoi-heartbeat: seconds of status).
//!
//! What is counted goes, good or bad, into minute and hour buckets of a SQLite database
//! ([`Store`]), unless a maintenance window of the monitor's component is in force: then
//! it is counted as excluded only ([`Maintenance`]). From the buckets, at each report:
//!
//! - *availability* over the window: good ÷ counted, over the hours it covers;
//! - *error budget*: the bad units the objective allows over the window,
//!   `(1 − objective) × counted`; *remaining* is `1 − bad ÷ allowed` (negative: overspent);
//! - *burn rate* over a duration: its error rate ÷ `(1 − objective)` (1 spends the budget
//!   exactly over the window);
//! - *burn alerts* (the SRE workbook's multiwindow, multi-burn-rate alerts): a rule fires
//!   when the burn rate is at least `burn` over both its `long` and its `short` duration —
//!   by default a page (critical) at 14.4 over 1 h and 5 min, a ticket (warning) at 6 over
//!   6 h and 30 min.
//!
//! - [`config`]: the `slo` of an endpoint or check and the monitor's `[slo]`.
//! - [`store`]: the buckets and the maintenance windows.
//! - [`tally`]: what the monitor counts between reports, and each report's statuses.
//! - [`month`]: the monthly report (`--sla-report`).

pub mod config;
pub mod month;
pub mod store;
pub mod tally;

pub use config::{BurnAlert, SloSettings, SloTarget};
pub use store::{Maintenance, Store};
pub use tally::{Objectives, Tally};

use crate::config::ConfigDuration;
use crate::{AlertLevel, CheckResult, Status};
use std::collections::HashMap;

pub const MINUTE: i64 = 60;
pub const HOUR: i64 = 3600;

/// Counts of one bucket or window: probes (endpoints) or seconds (heartbeats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: u64,
    pub bad: u64,
    /// During a maintenance window: not in `total` nor `bad`.
    pub excluded: u64,
}

impl Counts {
    /// Count `n` units (a probe, or seconds), good or bad, or excluded.
    pub fn add(&mut self, n: u64, ok: bool, excluded: bool) {
        if excluded {
            self.excluded += n;
        } else {
            self.total += n;
            if !ok {
                self.bad += n;
            }
        }
    }

    fn merge(&mut self, o: Counts) {
        self.total += o.total;
        self.bad += o.bad;
        self.excluded += o.excluded;
    }

    /// Good ÷ counted, in percent (None without counted probes).
    pub fn availability(&self) -> Option<f64> {
        (self.total > 0).then(|| (self.total - self.bad) as f64 / self.total as f64 * 100.0)
    }

    /// Error rate ÷ the rate `objective` allows (None without counted probes).
    pub fn burn_rate(&self, objective: f64) -> Option<f64> {
        (self.total > 0).then(|| (self.bad as f64 / self.total as f64) / allowed_error_ratio(objective))
    }

    /// What is left of the error budget, in percent of it: 100 untouched, 0 spent,
    /// negative overspent. 100 without counted probes.
    pub fn budget_remaining(&self, objective: f64) -> f64 {
        let allowed = allowed_error_ratio(objective) * self.total as f64;
        if self.total == 0 { 100.0 } else { (1.0 - self.bad as f64 / allowed) * 100.0 }
    }
}

fn allowed_error_ratio(objective: f64) -> f64 {
    (1.0 - objective / 100.0).max(f64::MIN_POSITIVE)
}

/// One objective as the report shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SloStatus {
    pub name: String,
    pub objective_percent: f64,
    pub window: ConfigDuration,
    pub availability_percent: Option<f64>,
    pub good: u64,
    pub total: u64,
    pub excluded: u64,
    pub budget_remaining_percent: f64,
    /// Burn rate over each duration of the burn alerts (`"1h"`, `"5m"`, …).
    pub burn_rates: std::collections::BTreeMap<String, Option<f64>>,
    /// The first burn alert (in config order) that fires, if any.
    pub alerting: Option<String>,
}

/// Work out one objective's status from its window and the burn durations' counts.
pub fn status(
    name: &str,
    target: &SloTarget,
    window: Counts,
    burn: &HashMap<i64, Counts>,
    rules: &[BurnAlert],
) -> SloStatus {
    let rate = |d: ConfigDuration| burn.get(&secs(d)).and_then(|c| c.burn_rate(target.objective));
    let mut burn_rates = std::collections::BTreeMap::new();
    for r in rules {
        for d in [r.long, r.short] {
            burn_rates.insert(d.to_string(), rate(d));
        }
    }
    let alerting = rules
        .iter()
        .find(|r| rate(r.long).is_some_and(|b| b >= r.burn) && rate(r.short).is_some_and(|b| b >= r.burn))
        .map(|r| r.name.clone());
    SloStatus {
        name: name.to_string(),
        objective_percent: target.objective,
        window: target.window,
        availability_percent: window.availability(),
        good: window.total - window.bad,
        total: window.total,
        excluded: window.excluded,
        budget_remaining_percent: window.budget_remaining(target.objective),
        burn_rates,
        alerting,
    }
}

fn secs(d: ConfigDuration) -> i64 {
    i64::try_from(d.get().as_secs()).unwrap_or(i64::MAX)
}

/// The check of one objective: critical or warning while a burn alert fires, warning
/// once the budget is spent, ok otherwise.
pub fn check(s: &SloStatus, rules: &[BurnAlert]) -> CheckResult {
    let name = &s.name;
    let avail = s.availability_percent.map_or_else(|| "no probes counted yet".to_string(), |a| format!("{a:.3}%"));
    let summary = format!(
        "{avail} over {} (objective {}%), {:.1}% of the error budget left",
        s.window, s.objective_percent, s.budget_remaining_percent
    );
    let key = format!("slo:{name}");
    if let Some(r) = s.alerting.as_ref().and_then(|a| rules.iter().find(|r| &r.name == a)) {
        let rate = |d: ConfigDuration| s.burn_rates.get(&d.to_string()).copied().flatten().unwrap_or(f64::NAN);
        let status = if r.level == AlertLevel::Critical { Status::Critical } else { Status::Warning };
        return CheckResult::new(
            key,
            status,
            format!(
                "{name}: the error budget burns {:.1}× over {} and {:.1}× over {} ({}: at least {}×); {summary}",
                rate(r.long),
                r.long,
                rate(r.short),
                r.short,
                r.name,
                r.burn
            ),
        )
        .with_title(format!("SLO of {name} burns its error budget ({})", r.name))
        .with_value((s.budget_remaining_percent * 10.0).round() / 10.0, "percent");
    }
    let c = if s.total > 0 && s.budget_remaining_percent <= 0.0 {
        CheckResult::new(key, Status::Warning, format!("{name}: error budget spent: {summary}"))
            .with_title(format!("SLO of {name}: error budget spent"))
    } else {
        CheckResult::ok(key, format!("{name}: {summary}"))
    };
    c.with_value((s.budget_remaining_percent * 10.0).round() / 10.0, "percent")
}

/// The metrics of one objective.
///
/// `subject` is the label that names it (`endpoint`, `check`).
pub fn metrics(
    s: &SloStatus,
    subject: &str,
    put: &mut dyn FnMut(&str, f64) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use crate::report::metric_key as key;
    let e = (subject, s.name.as_str());
    put(&key("qmoi_slo_objective_ratio", &[e]), s.objective_percent / 100.0)?;
    if let Some(a) = s.availability_percent {
        put(&key("qmoi_slo_availability_ratio", &[e, ("window", &s.window.to_string())]), a / 100.0)?;
    }
    put(&key("qmoi_slo_error_budget_remaining_ratio", &[e]), s.budget_remaining_percent / 100.0)?;
    put(&key("qmoi_slo_probes_total", &[e]), s.total as f64)?;
    put(&key("qmoi_slo_probes_bad_total", &[e]), (s.total - s.good) as f64)?;
    for (w, r) in &s.burn_rates {
        if let Some(r) = r {
            put(&key("qmoi_slo_burn_rate", &[e, ("window", w)]), *r)?;
        }
    }
    put(&key("qmoi_slo_alerting", &[e]), if s.alerting.is_some() { 1.0 } else { 0.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, long: &str, short: &str, burn: f64) -> BurnAlert {
        BurnAlert {
            name: name.into(),
            level: AlertLevel::Critical,
            long: ConfigDuration::parse(long).unwrap(),
            short: ConfigDuration::parse(short).unwrap(),
            burn,
        }
    }
    /// The figures of the SRE workbook's example, by hand: a 99.9% objective over 30
    /// days allows 0.1% bad probes.
    #[test]
    fn budget_and_burn_rates_by_hand() {
        let target = SloTarget { objective: 99.9, window: ConfigDuration::parse("30d").unwrap() };
        // 43,200 probes in the window (one a minute for 30 days), 21 bad: the budget is
        // 43.2 bad probes, 21 of them spent: 51.39% left; availability 43,179 / 43,200.
        let window = Counts { total: 43_200, bad: 21, excluded: 60 };
        assert!((window.budget_remaining(99.9) - (1.0 - 21.0 / 43.2) * 100.0).abs() < 1e-9);
        assert!((window.availability().unwrap() - 99.951_388_888).abs() < 1e-6);
        // The last hour: 60 probes, 1 bad → error rate 1/60 = 1.667% → burn 16.67 ≥ 14.4.
        // The last 5 minutes: 5 probes, 1 bad → 20% → burn 200.
        let mut burn = HashMap::new();
        burn.insert(3600, Counts { total: 60, bad: 1, excluded: 0 });
        burn.insert(300, Counts { total: 5, bad: 1, excluded: 0 });
        burn.insert(6 * 3600, Counts { total: 360, bad: 1, excluded: 0 });
        burn.insert(1800, Counts { total: 30, bad: 1, excluded: 0 });
        let rules = [rule("page", "1h", "5m", 14.4), rule("ticket", "6h", "30m", 6.0)];
        let s = status("checkout", &target, window, &burn, &rules);
        assert_eq!(s.alerting.as_deref(), Some("page"));
        assert!((s.burn_rates["1h"].unwrap() - 1.0 / 60.0 / 0.001).abs() < 1e-6);
        assert!((s.burn_rates["5m"].unwrap() - 200.0).abs() < 1e-6);
        // 6 h: 1/360 / 0.001 = 2.78 < 6: the ticket alone would not fire.
        assert!((s.burn_rates["6h"].unwrap() - 1.0 / 360.0 / 0.001).abs() < 1e-6);
        assert_eq!((s.good, s.total, s.excluded), (43_179, 43_200, 60));
        // The short window recovered (no bad probe in the last 5 minutes): no page.
        burn.insert(300, Counts { total: 5, bad: 0, excluded: 0 });
        assert_eq!(status("checkout", &target, window, &burn, &rules).alerting, None);
        // Overspent: 100 bad of an allowance of 43.2 → -131.48%.
        let over = Counts { total: 43_200, bad: 100, excluded: 0 };
        assert!((over.budget_remaining(99.9) - (1.0 - 100.0 / 43.2) * 100.0).abs() < 1e-9);
        assert_eq!(Counts::default().budget_remaining(99.9), 100.0);
        assert_eq!(Counts::default().availability(), None);
    }
}
