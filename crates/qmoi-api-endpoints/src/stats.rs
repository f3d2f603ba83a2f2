//! Per-endpoint state: up/down with failure/success thresholds, the probes of the last hour
//! (exact percentiles and availability), hourly buckets for 24 h and 7 d (availability and
//! a log-scale latency histogram), and the error rate of the last 20 probes. Kept across
//! restarts in the state file.

use crate::probe::ProbeResult;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Latency histogram: bucket `i` holds latencies up to `2^(i/4)` ms (±19%), 0.2 ms to ~17 min.
const BUCKETS: usize = 80;
const ERROR_WINDOW: usize = 20;
/// The exact window holds the last hour, but at most this many probes (at a 1 s interval,
/// the last 4 minutes), so memory does not grow with the probe rate.
pub const RECENT_MAX: usize = 240;
/// Hours whose latency histogram is kept (older hours keep only their counts).
const HIST_HOURS: i64 = 24;
const HOUR: i64 = 3600;

fn bucket_of(ms: f64) -> usize {
    if ms <= 1.0 { 0 } else { ((ms.log2() * 4.0).ceil() as usize).min(BUCKETS - 1) }
}

fn bucket_upper_ms(i: usize) -> f64 {
    2f64.powf(i as f64 / 4.0)
}

/// One hour of one endpoint: counts, and a sparse latency histogram of
/// `(bucket, count)` pairs (a few pairs in practice) for the last 24 hours.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HourBucket {
    pub total: u32,
    pub ok: u32,
    #[serde(default)]
    pub hist: Vec<(u8, u32)>,
}

impl HourBucket {
    fn add(&mut self, bucket: usize) {
        let b = u8::try_from(bucket).unwrap_or(u8::MAX);
        match self.hist.iter_mut().find(|(k, _)| *k == b) {
            Some((_, c)) => *c += 1,
            None => self.hist.push((b, 1)),
        }
    }
}

/// One probe in the exact window: 16 bytes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Sample {
    /// Unix seconds.
    pub t: i64,
    pub ms: f32,
    pub ok: bool,
}

/// One endpoint's memory.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EndpointState {
    /// `None` until enough probes decided (thresholds).
    pub up: Option<bool>,
    /// Unix seconds when `up` last changed.
    pub since: Option<i64>,
    #[serde(skip)]
    pub consecutive_fail: u32,
    #[serde(skip)]
    pub consecutive_ok: u32,
    #[serde(skip)]
    pub slow_streak: u32,
    #[serde(skip)]
    pub last: Option<ProbeResult>,
    pub last_at: Option<i64>,
    /// (unix seconds, ok, latency ms) of the last hour.
    pub recent: VecDeque<Sample>,
    /// Hour start (unix seconds) → bucket, the last 7 days.
    pub hours: BTreeMap<i64, HourBucket>,
    #[serde(skip)]
    pub window: VecDeque<bool>,
    /// Probed by this process (state loaded from the file does not count).
    #[serde(skip)]
    pub probed: bool,
}

impl EndpointState {
    /// Take in one probe result at `now`.
    pub fn record(
        &mut self,
        r: ProbeResult,
        now: i64,
        failure_threshold: u32,
        success_threshold: u32,
        slow_ms: Option<f64>,
    ) {
        let ms = r.latency.as_secs_f64() * 1000.0;
        if r.ok {
            self.consecutive_ok += 1;
            self.consecutive_fail = 0;
        } else {
            self.consecutive_fail += 1;
            self.consecutive_ok = 0;
        }
        let next = match self.up {
            Some(true) | None if self.consecutive_fail >= failure_threshold => Some(false),
            Some(false) | None if self.consecutive_ok >= success_threshold => Some(true),
            other => other,
        };
        if next != self.up {
            self.up = next;
            self.since = Some(now);
        }
        self.slow_streak = match slow_ms {
            Some(limit) if r.ok && ms > limit => self.slow_streak + 1,
            _ => 0,
        };
        self.recent.push_back(Sample { t: now, ms: ms as f32, ok: r.ok });
        while self.recent.front().is_some_and(|s| s.t <= now - HOUR) || self.recent.len() > RECENT_MAX {
            self.recent.pop_front();
        }
        let hour = now - now.rem_euclid(HOUR);
        let is_new = !self.hours.contains_key(&hour);
        let h = self.hours.entry(hour).or_default();
        h.total += 1;
        if r.ok {
            h.ok += 1;
            h.add(bucket_of(ms));
        }
        if is_new {
            // Once an hour: forget hours past 7 days, and histograms past 24 hours.
            let cutoff = now - 7 * 24 * HOUR;
            self.hours.retain(|t, _| *t > cutoff - HOUR);
            for (t, b) in self.hours.iter_mut() {
                if *t + HOUR <= now - HIST_HOURS * HOUR {
                    b.hist = Vec::new();
                }
            }
        }
        self.window.push_back(r.ok);
        if self.window.len() > ERROR_WINDOW {
            self.window.pop_front();
        }
        self.last = Some(r);
        self.last_at = Some(now);
        self.probed = true;
    }

    /// Percentage of successful probes in the last `secs` (None without probes).
    pub fn availability(&self, secs: i64, now: i64) -> Option<f64> {
        if secs <= HOUR {
            let probes: Vec<bool> = self.recent.iter().filter(|s| s.t > now - secs).map(|s| s.ok).collect();
            if !probes.is_empty() {
                return Some(probes.iter().filter(|o| **o).count() as f64 / probes.len() as f64 * 100.0);
            }
        }
        let (total, ok) = self
            .hours
            .iter()
            .filter(|(t, _)| **t + HOUR > now - secs)
            .fold((0u64, 0u64), |(a, b), (_, h)| (a + u64::from(h.total), b + u64::from(h.ok)));
        (total > 0).then(|| ok as f64 / total as f64 * 100.0)
    }

    /// Latency quantiles (ms) of successful probes in the last hour, exact.
    pub fn quantiles_1h(&self, qs: &[f64]) -> Option<Vec<f64>> {
        let mut v: Vec<f64> = self.recent.iter().filter(|s| s.ok).map(|s| f64::from(s.ms)).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(qs.iter().map(|q| percentile(&v, *q)).collect())
    }

    /// Sum (ms) and count of successful probes' latencies in the last hour.
    pub fn latency_sum_count_1h(&self) -> (f64, usize) {
        self.recent.iter().filter(|s| s.ok).fold((0.0, 0), |(sum, n), s| (sum + f64::from(s.ms), n + 1))
    }

    /// Latency quantiles (ms) over the last 24 hours, from the histograms (upper bucket edge).
    pub fn quantiles_24h(&self, qs: &[f64], now: i64) -> Option<Vec<f64>> {
        let mut merged = vec![0u64; BUCKETS];
        for (_, h) in self.hours.iter().filter(|(t, _)| **t + HOUR > now - 24 * HOUR) {
            for (b, c) in &h.hist {
                if let Some(m) = merged.get_mut(usize::from(*b)) {
                    *m += u64::from(*c);
                }
            }
        }
        let total: u64 = merged.iter().sum();
        if total == 0 {
            return None;
        }
        Some(
            qs.iter()
                .map(|q| {
                    let rank = (q * total as f64).ceil().max(1.0) as u64;
                    let mut seen = 0;
                    for (i, c) in merged.iter().enumerate() {
                        seen += c;
                        if seen >= rank {
                            return bucket_upper_ms(i);
                        }
                    }
                    bucket_upper_ms(BUCKETS - 1)
                })
                .collect(),
        )
    }

    /// Percentage of the last 20 probes that failed.
    pub fn error_rate(&self) -> Option<f64> {
        (!self.window.is_empty())
            .then(|| self.window.iter().filter(|o| !**o).count() as f64 / self.window.len() as f64 * 100.0)
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn res(ok: bool, ms: u64) -> ProbeResult {
        ProbeResult { ok, latency: Duration::from_millis(ms), ..ProbeResult::default() }
    }

    #[test]
    fn thresholds_prevent_flapping() {
        let mut s = EndpointState::default();
        s.record(res(true, 10), 0, 2, 2, None);
        assert_eq!(s.up, None, "one success is not yet up with success_threshold 2");
        s.record(res(true, 10), 1, 2, 2, None);
        assert_eq!(s.up, Some(true));
        s.record(res(false, 10), 2, 2, 2, None);
        assert_eq!(s.up, Some(true), "one failure is not down with failure_threshold 2");
        s.record(res(false, 10), 3, 2, 2, None);
        assert_eq!((s.up, s.since), (Some(false), Some(3)));
        s.record(res(true, 10), 4, 2, 2, None);
        s.record(res(true, 10), 5, 2, 2, None);
        assert_eq!((s.up, s.since), (Some(true), Some(5)));
    }

    #[test]
    fn percentiles_availability_and_error_rate_from_known_series() {
        let mut s = EndpointState::default();
        let now = 1_800_000_000;
        for i in 1..=100u64 {
            s.record(res(i % 10 != 0, i), now - 100 + i as i64, 1, 1, None);
        }
        assert_eq!(s.availability(HOUR, now), Some(90.0));
        let q = s.quantiles_1h(&[0.5, 0.99]).unwrap_or_default();
        // Successful latencies are 1..=99 without the multiples of 10: 90 values. The
        // nearest-rank median is the 45th, 49; p99 the 90th, 99.
        assert_eq!(q, vec![49.0, 99.0]);
        assert_eq!(s.error_rate(), Some(10.0));
        let q24 = s.quantiles_24h(&[0.5], now).unwrap_or_default();
        assert!(q24[0] >= 49.0 && q24[0] <= 49.0 * 1.2, "histogram estimate within one bucket: {q24:?}");
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.0);
    }

    #[test]
    fn memory_stays_bounded_histograms_24h_counts_7d_window_capped() {
        let mut s = EndpointState::default();
        let t0 = 1_800_000_000 - 1_800_000_000 % HOUR;
        for i in 0..(RECENT_MAX as i64 + 50) {
            s.record(res(true, 20), t0 + i, 1, 1, None);
        }
        assert_eq!(s.recent.len(), RECENT_MAX, "the exact window is capped");
        s.record(res(true, 20), t0 + 25 * HOUR, 1, 1, None);
        assert!(s.hours[&t0].hist.is_empty() && s.hours[&t0].total > 0, "past 24 h: counts only");
        s.record(res(true, 20), t0 + 8 * 24 * HOUR, 1, 1, None);
        assert!(!s.hours.contains_key(&t0), "past 7 days: gone");
        assert_eq!(s.hours.len(), 2);
    }

    #[test]
    fn slow_streak_counts_only_consecutive_slow_successes() {
        let mut s = EndpointState::default();
        for ms in [500, 600, 700] {
            s.record(res(true, ms), 0, 1, 1, Some(300.0));
        }
        assert_eq!(s.slow_streak, 3);
        s.record(res(true, 100), 0, 1, 1, Some(300.0));
        assert_eq!(s.slow_streak, 0);
    }
}
