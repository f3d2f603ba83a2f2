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

/// One hour of one endpoint as the state file writes it: counts, and a sparse latency
/// histogram of `(bucket, count)` pairs for the last 24 hours.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HourBucket {
    pub total: u32,
    pub ok: u32,
    #[serde(default)]
    pub hist: Vec<(u8, u32)>,
}

const WEEK_HOURS: usize = 7 * 24;

/// The last 7 days of one endpoint, hour by hour, packed: probe counts of each hour
/// (4 bytes an hour, 672 bytes a week) and `(hours ago, bucket, count)` latency
/// histogram entries (4 bytes each) for the last 24 hours. In the state file it is the
/// readable map `{hour start: {total, ok, hist}}`.
#[derive(Debug, Clone, Default)]
pub struct Hours {
    /// Start (unix seconds) of the newest hour; `counts[i]` is the hour `i` hours before.
    newest: i64,
    counts: VecDeque<(u16, u16)>,
    hist: Vec<(u8, u8, u16)>,
}

impl Hours {
    fn hour_start(&self, i: usize) -> i64 {
        self.newest - i as i64 * HOUR
    }

    /// Count one probe at `now` (and its latency bucket when it succeeded).
    pub fn add(&mut self, now: i64, bucket: Option<usize>) {
        let hour = now - now.rem_euclid(HOUR);
        if self.counts.is_empty() {
            self.counts.reserve_exact(WEEK_HOURS);
            self.newest = hour;
            self.counts.push_front((0, 0));
        } else if hour > self.newest {
            let shift = usize::try_from((hour - self.newest) / HOUR).unwrap_or(usize::MAX);
            for _ in 0..shift.min(WEEK_HOURS) {
                if self.counts.len() == WEEK_HOURS {
                    self.counts.pop_back();
                }
                self.counts.push_front((0, 0));
            }
            self.newest = hour;
            self.hist.retain_mut(|(age, _, _)| {
                let a = usize::from(*age) + shift;
                *age = u8::try_from(a).unwrap_or(u8::MAX);
                a < HIST_HOURS as usize
            });
            if self.hist.capacity() > 2 * self.hist.len() + 8 {
                self.hist.shrink_to_fit();
            }
        }
        // A clock that went back lands in its own (older) hour, if still held.
        let Ok(idx) = usize::try_from((self.newest - hour) / HOUR) else { return };
        let Some(c) = self.counts.get_mut(idx) else { return };
        c.0 = c.0.saturating_add(1);
        if let Some(b) = bucket {
            c.1 = c.1.saturating_add(1);
            if idx < HIST_HOURS as usize {
                let (age, b) = (u8::try_from(idx).unwrap_or(u8::MAX), u8::try_from(b).unwrap_or(u8::MAX));
                match self.hist.iter_mut().find(|(a, k, _)| *a == age && *k == b) {
                    Some((_, _, n)) => *n = n.saturating_add(1),
                    None => self.hist.push((age, b, 1)),
                }
            }
        }
    }

    /// (total, ok) over the hours that overlap the last `secs`.
    fn counts_since(&self, secs: i64, now: i64) -> (u64, u64) {
        self.counts
            .iter()
            .enumerate()
            .filter(|(i, _)| self.hour_start(*i) + HOUR > now - secs)
            .fold((0, 0), |(a, b), (_, (t, o))| (a + u64::from(*t), b + u64::from(*o)))
    }

    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The hour starting at `start`, if held: (total, ok, has a histogram).
    pub fn get(&self, start: i64) -> Option<(u64, u64, bool)> {
        let idx = usize::try_from((self.newest - start) / HOUR).ok()?;
        if (self.newest - start) % HOUR != 0 {
            return None;
        }
        let (t, o) = self.counts.get(idx)?;
        let has_hist = self.hist.iter().any(|(a, _, _)| usize::from(*a) == idx);
        Some((u64::from(*t), u64::from(*o), has_hist))
    }
}

impl Serialize for Hours {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = BTreeMap::new();
        for (i, (t, o)) in self.counts.iter().enumerate() {
            if *t == 0 {
                continue;
            }
            let mut hist: Vec<(u8, u32)> = self
                .hist
                .iter()
                .filter(|(a, _, _)| usize::from(*a) == i)
                .map(|(_, b, n)| (*b, u32::from(*n)))
                .collect();
            hist.sort_unstable();
            map.insert(self.hour_start(i), HourBucket { total: u32::from(*t), ok: u32::from(*o), hist });
        }
        map.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Hours {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<i64, HourBucket>::deserialize(d)?;
        let mut h = Hours::default();
        let Some(newest) = map.keys().next_back().copied() else { return Ok(h) };
        h.newest = newest - newest.rem_euclid(HOUR);
        h.counts.reserve_exact(WEEK_HOURS);
        for i in 0..WEEK_HOURS {
            let start = h.newest - i as i64 * HOUR;
            let b = map.get(&start);
            h.counts.push_back(b.map_or((0, 0), |b| {
                (u16::try_from(b.total).unwrap_or(u16::MAX), u16::try_from(b.ok).unwrap_or(u16::MAX))
            }));
            if let Some(b) = b
                && i < HIST_HOURS as usize
            {
                for (k, n) in &b.hist {
                    h.hist.push((u8::try_from(i).unwrap_or(u8::MAX), *k, u16::try_from(*n).unwrap_or(u16::MAX)));
                }
            }
        }
        while h.counts.back() == Some(&(0, 0)) && h.counts.len() > 1 {
            h.counts.pop_back();
        }
        Ok(h)
    }
}

/// One probe in the exact window: 8 bytes (5,000 endpoints × 240 probes = 9.6 MB). The
/// sign bit of `ms` is the failure flag; the state file keeps the readable form
/// `{"t": …, "ms": …, "ok": …}`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(from = "SampleRepr", into = "SampleRepr")]
pub struct Sample {
    t: u32,
    ms: f32,
}

#[derive(Serialize, Deserialize)]
struct SampleRepr {
    t: i64,
    ms: f32,
    ok: bool,
}

impl From<SampleRepr> for Sample {
    fn from(r: SampleRepr) -> Self {
        Self::new(r.t, r.ms, r.ok)
    }
}

impl From<Sample> for SampleRepr {
    fn from(s: Sample) -> Self {
        Self { t: s.t(), ms: s.ms(), ok: s.ok() }
    }
}

impl Sample {
    pub fn new(t: i64, ms: f32, ok: bool) -> Self {
        let ms = ms.abs();
        Self { t: u32::try_from(t.max(0)).unwrap_or(u32::MAX), ms: if ok { ms } else { -ms - 0.0 } }
    }

    /// Unix seconds.
    pub fn t(&self) -> i64 {
        i64::from(self.t)
    }

    pub fn ms(&self) -> f32 {
        self.ms.abs()
    }

    pub fn ok(&self) -> bool {
        !self.ms.is_sign_negative()
    }
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
    /// Counts of the last 7 days and latency histograms of the last 24 hours, by hour.
    pub hours: Hours,
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
        self.recent.push_back(Sample::new(now, ms as f32, r.ok));
        while self.recent.front().is_some_and(|s| s.t() <= now - HOUR) || self.recent.len() > RECENT_MAX {
            self.recent.pop_front();
        }
        self.hours.add(now, r.ok.then(|| bucket_of(ms)));
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
            let probes: Vec<bool> = self.recent.iter().filter(|s| s.t() > now - secs).map(|s| s.ok()).collect();
            if !probes.is_empty() {
                return Some(probes.iter().filter(|o| **o).count() as f64 / probes.len() as f64 * 100.0);
            }
        }
        let (total, ok) = self.hours.counts_since(secs, now);
        (total > 0).then(|| ok as f64 / total as f64 * 100.0)
    }

    /// Latency quantiles (ms) of successful probes in the last hour, exact.
    pub fn quantiles_1h(&self, qs: &[f64]) -> Option<Vec<f64>> {
        let mut v: Vec<f64> = self.recent.iter().filter(|s| s.ok()).map(|s| f64::from(s.ms())).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(qs.iter().map(|q| percentile(&v, *q)).collect())
    }

    /// Sum (ms) and count of successful probes' latencies in the last hour.
    pub fn latency_sum_count_1h(&self) -> (f64, usize) {
        self.recent.iter().filter(|s| s.ok()).fold((0.0, 0), |(sum, n), s| (sum + f64::from(s.ms()), n + 1))
    }

    /// Latency quantiles (ms) over the last 24 hours, from the histograms (upper bucket edge).
    pub fn quantiles_24h(&self, qs: &[f64], now: i64) -> Option<Vec<f64>> {
        let mut merged = vec![0u64; BUCKETS];
        for (age, b, c) in &self.hours.hist {
            if self.hours.hour_start(usize::from(*age)) + HOUR > now - 24 * HOUR
                && let Some(m) = merged.get_mut(usize::from(*b))
            {
                *m += u64::from(*c);
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

    #[test]
    fn samples_are_eight_bytes_and_keep_their_file_format() {
        assert_eq!(std::mem::size_of::<Sample>(), 8);
        for (t, ms, ok) in [(1_790_000_000, 12.5, true), (1_790_000_001, 0.0, false), (1_790_000_002, 3000.0, false)] {
            let s = Sample::new(t, ms, ok);
            assert_eq!((s.t(), s.ms(), s.ok()), (t, ms, ok));
            let text = serde_json::to_string(&s).unwrap_or_default();
            assert_eq!(text, format!("{{\"t\":{t},\"ms\":{ms:?},\"ok\":{ok}}}"));
            let back: Sample = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((back.t(), back.ms(), back.ok()), (t, ms, ok));
        }
    }

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
        let (total, _, hist) = s.hours.get(t0).unwrap_or_default();
        assert!(!hist && total > 0, "past 24 h: counts only");
        s.record(res(true, 20), t0 + 8 * 24 * HOUR, 1, 1, None);
        assert!(s.hours.get(t0).is_none(), "past 7 days: gone");
        assert!(s.hours.len() <= WEEK_HOURS);
        // The state file keeps the readable map, and reads back the same.
        let text = serde_json::to_string(&s.hours).unwrap_or_default();
        let back: Hours = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(serde_json::to_string(&back).unwrap_or_default(), text);
        assert_eq!(back.get(t0 + 8 * 24 * HOUR).map(|(t, o, _)| (t, o)), Some((1, 1)));
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
