//! Baselines, predictions and recommendations, and the state they keep across restarts
//! (`<data_dir>/performance_state.json`).

use crate::stats::{Ewma, fit};
use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PerfState {
    /// EWMA baseline per metric (with `@h<hour of week>` when by hour of week).
    #[serde(default)]
    pub baselines: BTreeMap<String, Ewma>,
    /// Consecutive degraded intervals per metric.
    #[serde(default)]
    pub degraded: BTreeMap<String, u32>,
    /// Usage series for predictions: (unix seconds, used, total) per resource.
    #[serde(default)]
    pub series: BTreeMap<String, VecDeque<(f64, f64, f64)>>,
}

impl PerfState {
    pub fn load(path: &Path) -> Self {
        qmoi_core::statefile::load(path, "Performance state")
    }

    pub fn save(&self, path: &Path) -> Result<(), String> {
        qmoi_core::statefile::save(path, self, false)
    }
}

/// Result of comparing one interval value with its baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Degradation {
    pub metric: String,
    pub value: f64,
    pub baseline: f64,
    pub deviation: f64,
    pub score: f64,
    pub intervals: u32,
}

/// Update the baseline of `metric` with `value`; Some when it has been beyond `k`
/// deviations for `need` intervals in a row.
#[allow(clippy::too_many_arguments)]
pub fn baseline(
    state: &mut PerfState,
    metric: &str,
    value: f64,
    now: DateTime<Utc>,
    cfg: &crate::config::BaselineConfig,
) -> Option<Degradation> {
    if !value.is_finite() {
        return None;
    }
    let key = if cfg.by_hour_of_week {
        let how = now.weekday().num_days_from_monday() * 24 + now.hour();
        format!("{metric}@h{how}")
    } else {
        metric.to_string()
    };
    let e = state.baselines.entry(key).or_default();
    let trusted = e.n >= cfg.min_samples;
    let score = e.score(value);
    let beyond = trusted && score > cfg.k;
    let count = state.degraded.entry(metric.to_string()).or_default();
    *count = if beyond { *count + 1 } else { 0 };
    let snapshot = (e.mean, e.dev);
    // While degraded the baseline learns ten times slower, so a lasting problem keeps
    // being reported instead of becoming the new normal within a few intervals.
    e.update(value, if beyond { cfg.alpha / 10.0 } else { cfg.alpha });
    (beyond && *count >= cfg.intervals).then(|| Degradation {
        metric: metric.to_string(),
        value,
        baseline: snapshot.0,
        deviation: snapshot.1,
        score,
        intervals: *count,
    })
}

/// A prediction of when a resource fills.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub resource: String,
    pub used: f64,
    pub total: f64,
    /// Growth per hour, in the resource's unit.
    pub rate_per_hour: f64,
    /// Seconds until full at that rate; None when not growing.
    pub seconds_to_full: Option<f64>,
    pub r2: f64,
    pub points: usize,
}

/// Record (now, used, total) for `resource` and fit a line over `window` seconds.
pub fn predict(
    state: &mut PerfState,
    resource: &str,
    now: f64,
    used: f64,
    total: f64,
    window: f64,
) -> Option<Prediction> {
    let s = state.series.entry(resource.to_string()).or_default();
    // At most ~360 points per window: a point every window/360 seconds.
    let spacing = window / 360.0;
    if s.back().is_none_or(|b| now - b.0 >= spacing) {
        s.push_back((now, used, total));
    } else if let Some(b) = s.back_mut() {
        *b = (now, used, total);
    }
    while s.front().is_some_and(|f| now - f.0 > window) {
        s.pop_front();
    }
    let pts: Vec<(f64, f64)> = s.iter().map(|p| (p.0, p.1)).collect();
    let line = fit(&pts)?;
    let seconds_to_full = line.reaches(total).map(|t| (t - now).max(0.0));
    Some(Prediction {
        resource: resource.to_string(),
        used,
        total,
        rate_per_hour: line.slope * 3600.0,
        seconds_to_full,
        r2: line.r2,
        points: pts.len(),
    })
}

/// RSS series of processes, for the leak recommendation (kept in memory only: pids do
/// not survive a restart).
#[derive(Debug, Default)]
pub struct Leaks {
    series: BTreeMap<String, VecDeque<(f64, f64)>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Leak {
    pub process: String,
    pub rss_bytes: f64,
    pub mib_per_hour: f64,
    pub r2: f64,
    pub points: usize,
    pub over_seconds: f64,
}

impl Leaks {
    pub fn observe(&mut self, process: &str, now: f64, rss: f64, window: f64) {
        let s = self.series.entry(process.to_string()).or_default();
        s.push_back((now, rss));
        while s.front().is_some_and(|f| now - f.0 > window) {
            s.pop_front();
        }
    }

    /// Forget processes not seen since `before`.
    pub fn prune(&mut self, before: f64) {
        self.series.retain(|_, s| s.back().is_some_and(|b| b.0 >= before));
    }

    /// Processes whose RSS grew steadily (R² ≥ 0.9 over ≥ 5 points spanning at least a
    /// quarter of the window) faster than `mib_per_hour`.
    pub fn suspects(&self, mib_per_hour: f64, window: f64) -> Vec<Leak> {
        let mut out = Vec::new();
        for (name, s) in &self.series {
            if s.len() < 5 {
                continue;
            }
            let span = s.back().map_or(0.0, |b| b.0) - s.front().map_or(0.0, |f| f.0);
            if span < window / 4.0 {
                continue;
            }
            let pts: Vec<(f64, f64)> = s.iter().copied().collect();
            let Some(l) = fit(&pts) else { continue };
            let rate = l.slope * 3600.0 / (1024.0 * 1024.0);
            if l.r2 >= 0.9 && rate > mib_per_hour {
                out.push(Leak {
                    process: name.clone(),
                    rss_bytes: s.back().map_or(0.0, |b| b.1),
                    mib_per_hour: rate,
                    r2: l.r2,
                    points: pts.len(),
                    over_seconds: span,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BaselineConfig;

    #[test]
    fn degradation_needs_k_deviations_for_n_intervals_after_learning() {
        let cfg = BaselineConfig { min_samples: 10, k: 3.0, intervals: 3, ..BaselineConfig::default() };
        let mut st = PerfState::default();
        let now = Utc::now();
        for i in 0..30 {
            let v = 20.0 + f64::from(i % 3);
            assert!(baseline(&mut st, "cpu", v, now, &cfg).is_none(), "learning / normal: {v}");
        }
        assert!(baseline(&mut st, "cpu", 80.0, now, &cfg).is_none(), "1st interval beyond");
        assert!(baseline(&mut st, "cpu", 80.0, now, &cfg).is_none(), "2nd");
        let d = baseline(&mut st, "cpu", 80.0, now, &cfg).unwrap_or_else(|| panic!("3rd interval alerts"));
        assert_eq!(d.intervals, 3);
        assert!((d.baseline - 21.0).abs() < 3.0, "{d:?}");
        assert!(baseline(&mut st, "cpu", 21.0, now, &cfg).is_none(), "back to normal resets");
    }

    #[test]
    fn prediction_of_a_disk_filling_at_a_known_rate() {
        let mut st = PerfState::default();
        let mut last = None;
        // 10 MB a minute on a 1 GB disk holding 400 MB at t = 0.
        for m in 0..30 {
            let t = f64::from(m) * 60.0;
            last = predict(&mut st, "disk:/data", t, 400e6 + f64::from(m) * 10e6, 1e9, 6.0 * 3600.0);
        }
        let p = last.unwrap_or_else(|| panic!("prediction"));
        // At t = 1740 s, 690 MB used: 310 MB left at 10 MB/min = 1860 s.
        assert!((p.seconds_to_full.unwrap_or(0.0) - 1860.0).abs() < 1.0, "{p:?}");
        assert!((p.rate_per_hour - 600e6).abs() < 1.0);
    }

    #[test]
    fn steady_growth_is_a_leak_and_noise_is_not() {
        let mut l = Leaks::default();
        for i in 0..20 {
            let t = f64::from(i) * 60.0;
            l.observe("leaky", t, 100e6 + f64::from(i) * 2e6, 3600.0);
            l.observe("steady", t, 100e6 + if i % 2 == 0 { 1e6 } else { -1e6 }, 3600.0);
        }
        let s = l.suspects(10.0, 3600.0);
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].process, "leaky");
        assert!((s[0].mib_per_hour - 2e6 * 60.0 / 1048576.0).abs() < 0.01);
    }
}
