//! Month-to-date spend, the month's forecast and the daily anomaly, from daily costs; and
//! the on-disk cache (`<data_dir>/cloud_cost_cache.json`) that keeps cost APIs, billed per
//! call, from being called more than every `cost_refresh`.

use crate::model::CostData;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Days of daily cost fetched before the month's start (the anomaly baseline and the
/// forecast's rate need them early in a month).
pub const LOOKBACK_DAYS: u64 = 30;
/// The forecast extrapolates the mean of this many most recent complete days.
const RATE_DAYS: usize = 7;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostSummary {
    pub currency: String,
    pub month_to_date: f64,
    /// Complete days this month plus the recent daily rate for the rest of the month.
    pub forecast: f64,
    /// Mean cost of the most recent complete days (the forecast's rate).
    pub daily_rate: Option<f64>,
    /// The last complete day (yesterday) and its cost.
    pub last_day: Option<(NaiveDate, f64)>,
    /// Mean of the baseline days before `last_day`.
    pub baseline: Option<f64>,
    pub anomaly: bool,
}

/// Summarise `data` as of `today` (whose own cost is partial).
pub fn summarize(data: &CostData, today: NaiveDate, baseline_days: u32, factor: f64, min_amount: f64) -> CostSummary {
    let month_start = today.with_day(1).unwrap_or(today);
    let next_month = month_start.checked_add_months(chrono::Months::new(1)).unwrap_or(today);
    let days_in_month = (next_month - month_start).num_days();
    let in_month = |d: NaiveDate| d >= month_start && d <= today;
    // `+ 0.0`: an empty f64 sum is -0.0, which would print as "-0.00".
    let month_to_date: f64 = data.days.iter().filter(|(d, _)| in_month(*d)).map(|(_, a)| a).sum::<f64>() + 0.0;
    let complete: Vec<&(NaiveDate, f64)> = data.days.iter().filter(|(d, _)| *d < today).collect();
    let recent: Vec<f64> = complete.iter().rev().take(RATE_DAYS).map(|(_, a)| *a).collect();
    let daily_rate = (!recent.is_empty()).then(|| recent.iter().sum::<f64>() / recent.len() as f64);
    let complete_this_month: f64 =
        complete.iter().filter(|(d, _)| *d >= month_start).map(|(_, a)| a).sum::<f64>() + 0.0;
    let complete_days_this_month = (today - month_start).num_days();
    let forecast = match daily_rate {
        Some(rate) => complete_this_month + rate * (days_in_month - complete_days_this_month) as f64,
        None => month_to_date,
    };
    let yesterday = today.pred_opt().unwrap_or(today);
    let last_day = data.days.iter().find(|(d, _)| *d == yesterday).copied();
    let baseline_from = yesterday - chrono::Days::new(u64::from(baseline_days));
    let base: Vec<f64> =
        data.days.iter().filter(|(d, _)| *d >= baseline_from && *d < yesterday).map(|(_, a)| *a).collect();
    let baseline = (base.len() >= 3).then(|| base.iter().sum::<f64>() / base.len() as f64);
    let anomaly = match (last_day, baseline) {
        (Some((_, v)), Some(b)) => v >= factor * b && v - b >= min_amount,
        _ => false,
    };
    CostSummary { currency: data.currency.clone(), month_to_date, forecast, daily_rate, last_day, baseline, anomaly }
}

/// The days to ask for on `today`: from 30 days back (or the month's start, if earlier)
/// to today.
pub fn range(today: NaiveDate) -> (NaiveDate, NaiveDate) {
    let month_start = today.with_day(1).unwrap_or(today);
    let back = today - chrono::Days::new(LOOKBACK_DAYS);
    (back.min(month_start), today)
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Cache {
    #[serde(default)]
    pub providers: BTreeMap<String, Cached>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Cached {
    /// When `data` was fetched.
    #[serde(default)]
    pub fetched_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub data: Option<CostData>,
    /// The last failure (kept until a fetch succeeds) and when it happened.
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub failed_at: Option<DateTime<Utc>>,
}

impl Cached {
    /// Fetch now? When never fetched, older than `refresh`, fetched on an earlier day
    /// (the month may have turned) — but not within `retry` of a failure.
    pub fn due(&self, now: DateTime<Utc>, refresh: std::time::Duration, retry: std::time::Duration) -> bool {
        let age = |t: DateTime<Utc>| (now - t).to_std().unwrap_or_default();
        if self.failed_at.is_some_and(|f| age(f) < retry && self.fetched_at.is_none_or(|t| f > t)) {
            return false;
        }
        match self.fetched_at {
            None => true,
            Some(t) => age(t) >= refresh || t.date_naive() != now.date_naive(),
        }
    }
}

impl Cache {
    /// A missing file is an empty cache; a corrupt one is logged and ignored (the next
    /// fetch rebuilds it).
    pub fn load(path: &Path) -> Self {
        qmoi_core::statefile::load(path, "Cost cache")
    }

    pub fn save(&self, path: &Path) -> Result<(), String> {
        qmoi_core::statefile::save(path, self, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default()
    }

    fn series(from: &str, amounts: &[f64]) -> CostData {
        let start = d(from);
        CostData {
            currency: "USD".into(),
            days: amounts.iter().enumerate().map(|(i, a)| (start + chrono::Days::new(i as u64), *a)).collect(),
        }
    }

    #[test]
    fn month_to_date_and_forecast() {
        // 10 a day from Oct 20 to Nov 9, then today (Nov 10) so far 4.
        let mut amounts = vec![10.0; 21];
        amounts.push(4.0);
        let data = series("2026-10-20", &amounts);
        let s = summarize(&data, d("2026-11-10"), 14, 2.0, 10.0);
        assert_eq!(s.month_to_date, 94.0);
        // 9 complete days (90) + 10/day × the 21 days left, today included.
        assert_eq!(s.forecast, 300.0);
        assert_eq!(s.daily_rate, Some(10.0));
        assert!(!s.anomaly);
    }

    #[test]
    fn a_spike_yesterday_is_an_anomaly_only_above_factor_and_amount() {
        let mut amounts = vec![10.0; 14];
        amounts.push(45.0);
        let data = series("2026-11-01", &amounts);
        let today = d("2026-11-16");
        let s = summarize(&data, today, 14, 2.0, 10.0);
        assert_eq!(s.last_day, Some((d("2026-11-15"), 45.0)));
        assert_eq!(s.baseline, Some(10.0));
        assert!(s.anomaly);
        // Same ratio on tiny amounts: not worth an alert.
        let small = CostData { days: data.days.iter().map(|(d, a)| (*d, a / 100.0)).collect(), ..data.clone() };
        assert!(!summarize(&small, today, 14, 2.0, 10.0).anomaly);
        // Below the factor.
        assert!(!summarize(&data, today, 14, 5.0, 10.0).anomaly);
    }

    #[test]
    fn the_first_of_the_month_forecasts_from_last_month() {
        let data = series("2026-10-25", &[20.0; 7]);
        let s = summarize(&data, d("2026-11-01"), 14, 2.0, 10.0);
        assert_eq!(s.month_to_date, 0.0);
        assert_eq!(s.forecast, 600.0);
        assert_eq!(range(d("2026-11-01")), (d("2026-10-02"), d("2026-11-01")));
        assert_eq!(range(d("2026-11-27")).0, d("2026-10-28"));
    }

    #[test]
    fn the_cache_is_due_by_age_day_and_not_right_after_a_failure() {
        let now = Utc::now();
        let hour = std::time::Duration::from_secs(3600);
        assert!(Cached::default().due(now, hour * 6, hour / 2));
        let fresh = Cached { fetched_at: Some(now), ..Cached::default() };
        assert!(!fresh.due(now, hour * 6, hour / 2));
        let old = Cached { fetched_at: Some(now - chrono::Duration::hours(7)), ..Cached::default() };
        assert!(old.due(now, hour * 6, hour / 2));
        let failed = Cached { failed_at: Some(now - chrono::Duration::minutes(5)), ..Cached::default() };
        assert!(!failed.due(now, hour * 6, hour / 2));
        let failed_long_ago = Cached { failed_at: Some(now - chrono::Duration::hours(1)), ..Cached::default() };
        assert!(failed_long_ago.due(now, hour * 6, hour / 2));
    }
}
