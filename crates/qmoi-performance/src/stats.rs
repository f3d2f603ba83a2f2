//! The statistics: interval summaries with percentiles, EWMA baselines, least-squares
//! lines for predictions and trends.

use qmoi_core::stats::percentile;
use serde::{Deserialize, Serialize};

/// min / avg / max / p50 / p95 / p99 of the samples of one interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub avg: f64,
    pub max: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

impl Summary {
    /// None for no samples. Percentiles by the nearest-rank method on the sorted samples.
    pub fn of(samples: &mut [f64]) -> Option<Self> {
        let n = samples.len();
        if n == 0 {
            return None;
        }
        samples.sort_by(f64::total_cmp);
        let sum: f64 = samples.iter().sum();
        Some(Self {
            n,
            min: samples[0],
            avg: sum / n as f64,
            max: samples[n - 1],
            p50: percentile(samples, 0.5),
            p95: percentile(samples, 0.95),
            p99: percentile(samples, 0.99),
        })
    }
}

/// Exponentially weighted mean and mean absolute deviation.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Ewma {
    pub mean: f64,
    pub dev: f64,
    pub n: u32,
}

impl Ewma {
    pub fn update(&mut self, x: f64, alpha: f64) {
        if !x.is_finite() {
            return;
        }
        if self.n == 0 {
            self.mean = x;
            self.dev = 0.0;
        } else {
            let diff = x - self.mean;
            self.mean += alpha * diff;
            self.dev = (1.0 - alpha) * self.dev + alpha * diff.abs();
        }
        self.n = self.n.saturating_add(1);
    }

    /// How many deviations `x` lies above the mean (a floor on the deviation keeps a
    /// flat-lined metric from alarming on noise: 1% of the mean, at least 1e-9).
    pub fn score(&self, x: f64) -> f64 {
        let floor = (self.mean.abs() * 0.01).max(1e-9);
        (x - self.mean) / self.dev.max(floor)
    }
}

/// Least-squares line through (x, y): slope, intercept and R².
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    pub slope: f64,
    pub intercept: f64,
    pub r2: f64,
}

pub fn fit(points: &[(f64, f64)]) -> Option<Line> {
    let n = points.len() as f64;
    if points.len() < 3 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let syy: f64 = points.iter().map(|p| (p.1 - my).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let r2 = if syy == 0.0 { 1.0 } else { (sxy * sxy) / (sxx * syy) };
    Some(Line { slope, intercept: my - slope * mx, r2 })
}

impl Line {
    /// When (x) the line reaches `y`; None when it never does going forward.
    pub fn reaches(&self, y: f64) -> Option<f64> {
        if self.slope <= 0.0 {
            return None;
        }
        Some((y - self.intercept) / self.slope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_series() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        v.reverse();
        let s = Summary::of(&mut v).unwrap_or_else(|| panic!("samples"));
        assert_eq!((s.min, s.max, s.avg), (1.0, 100.0, 50.5));
        assert_eq!((s.p50, s.p95, s.p99), (50.0, 95.0, 99.0));
        let mut one = vec![7.0];
        let s = Summary::of(&mut one).unwrap_or_else(|| panic!("samples"));
        assert_eq!((s.p50, s.p99), (7.0, 7.0));
        assert!(Summary::of(&mut []).is_none());
    }

    #[test]
    fn ewma_follows_a_step_and_scores_outliers() {
        let mut e = Ewma::default();
        for _ in 0..50 {
            e.update(10.0, 0.1);
            e.update(12.0, 0.1);
        }
        assert!((e.mean - 11.0).abs() < 0.2, "{e:?}");
        assert!(e.dev > 0.5 && e.dev < 1.5, "{e:?}");
        assert!(e.score(30.0) > 10.0);
        assert!(e.score(11.5) < 1.0);
        let mut flat = Ewma::default();
        for _ in 0..20 {
            flat.update(5.0, 0.1);
        }
        assert!(flat.score(5.01) < 1.0, "noise on a flat line is not an outlier");
    }

    #[test]
    fn linear_fit_and_time_to_full() {
        // 1 MB every 10 s from 100 MB: 1 GB is reached at t = 9000 s.
        let pts: Vec<(f64, f64)> = (0..60).map(|i| (i as f64 * 10.0, 100e6 + i as f64 * 1e6)).collect();
        let l = fit(&pts).unwrap_or_else(|| panic!("fit"));
        assert!((l.slope - 1e5).abs() < 1e-6);
        assert!((l.r2 - 1.0).abs() < 1e-12);
        assert!((l.reaches(1e9).unwrap_or(0.0) - 9000.0).abs() < 1e-6);
        let flat: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 5.0)).collect();
        assert_eq!(fit(&flat).and_then(|l| l.reaches(10.0)), None);
        assert!(fit(&pts[..2]).is_none());
    }
}
