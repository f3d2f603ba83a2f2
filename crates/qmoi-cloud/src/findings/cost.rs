//! Spend: month to date and forecast, the budget, a daily cost anomaly.

use super::{Collection, Found, fmt_time, money};
use crate::config::{CloudConfig, Provider};
use crate::cost::{self, Cached};
use chrono::{DateTime, Utc};
use qmoi_core::{CheckResult, Status};

/// The cost checks of a provider with `cost = true`; returns its `cost` summary.
pub fn check(
    f: &mut Found,
    cfg: &CloudConfig,
    p: &Provider,
    c: &Collection,
    cost: Option<&Cached>,
    now: DateTime<Utc>,
) -> serde_json::Value {
    let name = p.name.as_str();
    let mut cost_json = serde_json::Value::Null;
    let cached = cost.cloned().unwrap_or_default();
    match (&cached.data, &cached.error) {
        (Some(data), err) => {
            let s = cost::summarize(
                data,
                now.date_naive(),
                cfg.anomaly_baseline_days,
                cfg.anomaly_factor,
                cfg.anomaly_min_amount,
            );
            let cur = s.currency.clone();
            f.out.metric("qmoi_cloud_cost_month_to_date", &[("provider", name)], s.month_to_date);
            f.out.metric("qmoi_cloud_cost_forecast", &[("provider", name)], s.forecast);
            if let Some((_, v)) = s.last_day {
                f.out.metric("qmoi_cloud_cost_last_day", &[("provider", name)], v);
            }
            let stale = match err {
                Some(e) => format!(" (last fetch failed: {e}; figures from {})", fmt_time(cached.fetched_at)),
                None => String::new(),
            };
            let status = if err.is_some() { Status::Unknown } else { Status::Ok };
            f.out.check(CheckResult::new(
                format!("cost:{name}"),
                status,
                format!(
                    "{name}: month to date {}, forecast {} for the month{stale}",
                    money(s.month_to_date, &cur),
                    money(s.forecast, &cur)
                ),
            ));
            if let Some(budget) = p.monthly_budget {
                budget_check(f, cfg, name, budget, &s, &cur);
            }
            match (s.last_day, s.baseline) {
                (Some((day, v)), Some(b)) => f.out.check(CheckResult::new(
                    format!("cost_anomaly:{name}"),
                    if s.anomaly { Status::Warning } else { Status::Ok },
                    format!(
                        "{name}: {day} cost {} against a {}-day mean of {}{}",
                        money(v, &cur),
                        cfg.anomaly_baseline_days,
                        money(b, &cur),
                        if s.anomaly { format!(" ({:.1}×)", v / b.max(f64::MIN_POSITIVE)) } else { String::new() }
                    ),
                )),
                _ => f.out.check(CheckResult::ok(
                    format!("cost_anomaly:{name}"),
                    format!("{name}: not enough daily cost data yet for an anomaly baseline"),
                )),
            }
            cost_json = serde_json::json!({
                "currency": cur,
                "month_to_date": s.month_to_date,
                "forecast": s.forecast,
                "daily_rate": s.daily_rate,
                "budget": p.monthly_budget,
                "last_day": s.last_day.map(|(d, v)| serde_json::json!({"day": d, "amount": v})),
                "baseline": s.baseline,
                "anomaly": s.anomaly,
                "fetched_at": cached.fetched_at,
                "error": cached.error,
            });
        }
        (None, Some(e)) => {
            f.out.check(CheckResult::unknown(format!("cost:{name}"), format!("{name}: cost unavailable: {e}")));
            cost_json = serde_json::json!({"error": e, "failed_at": cached.failed_at});
        }
        (None, None) => {
            let why = if c.setup_error.is_some() { "no connection" } else { "not fetched yet" };
            f.out.check(CheckResult::ok(format!("cost:{name}"), format!("{name}: cost {why}")));
        }
    }
    cost_json
}

/// `budget:<provider>`: the month's forecast against the budget.
fn budget_check(f: &mut Found, cfg: &CloudConfig, name: &str, budget: f64, s: &cost::CostSummary, cur: &str) {
    f.out.metric("qmoi_cloud_budget", &[("provider", name)], budget);
    let pct = s.forecast / budget * 100.0;
    let status = if pct >= cfg.budget_critical_percent {
        Status::Critical
    } else if pct >= cfg.budget_warning_percent {
        Status::Warning
    } else {
        Status::Ok
    };
    f.out.check(
        CheckResult::new(
            format!("budget:{name}"),
            status,
            format!(
                "{name}: forecast {} is {pct:.0}% of the {} monthly budget (month to date {})",
                money(s.forecast, cur),
                money(budget, cur),
                money(s.month_to_date, cur)
            ),
        )
        .with_value((pct * 10.0).round() / 10.0, "percent")
        .with_thresholds(cfg.budget_warning_percent, cfg.budget_critical_percent),
    );
}
