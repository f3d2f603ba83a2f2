//! Per-endpoint state: up/down with failure/success thresholds, the probes of the last hour
//! (exact percentiles and availability), hourly buckets for 24 h and 7 d (availability and
//! a log-scale latency histogram), and the error rate of the last 20 probes. Kept across
//! restarts in the state file.

use crate::probe::ProbeResult;
pub use qmoi_core::stats::percentile;
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

/// One probe of the exact window, decoded; in the state file `{"t": …, "ms": …, "ok": …}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Unix seconds.
    pub t: i64,
    pub ms: f32,
    pub ok: bool,
}

/// Latency codes: `log2(ms × 10 + 1) × 2900`, so 0 ms to ~10.5 min (longer is stored as
/// that) in a `u16` with a relative error under 0.012% (±0.05 ms below 1 ms).
const MS_CODE_SCALE: f64 = 2900.0;

fn encode_ms(ms: f64) -> u16 {
    let c = ((ms.max(0.0) * 10.0 + 1.0).log2() * MS_CODE_SCALE).round();
    if c.is_finite() { c.min(f64::from(u16::MAX)) as u16 } else { u16::MAX }
}

fn decode_ms(c: u16) -> f64 {
    ((f64::from(c) / MS_CODE_SCALE).exp2() - 1.0) / 10.0
}

/// The probes of the last hour (at most [`RECENT_MAX`]), packed into 4 bytes each:
/// seconds since `base` (15 bits) with the failure flag (top bit), and the latency code.
/// 5,000 endpoints × 240 probes take 4.8 MB. In the state file: a list of [`Sample`]s.
#[derive(Debug, Clone, Default)]
pub struct Recent {
    base: i64,
    samples: VecDeque<(u16, u16)>,
}

const FAILED: u16 = 0x8000;
const MAX_OFFSET: i64 = 0x7FFF;

impl Recent {
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    fn decode(&self, (t, c): (u16, u16)) -> Sample {
        Sample { t: self.base + i64::from(t & !FAILED), ms: decode_ms(c) as f32, ok: t & FAILED == 0 }
    }

    pub fn iter(&self) -> impl Iterator<Item = Sample> + '_ {
        self.samples.iter().map(|s| self.decode(*s))
    }

    /// Add a probe (in time order; an earlier time is taken as the latest one's).
    pub fn push(&mut self, t: i64, ms: f64, ok: bool) {
        if self.samples.is_empty() {
            self.samples.reserve_exact(RECENT_MAX);
            self.base = t - HOUR;
        }
        if t - self.base > MAX_OFFSET {
            // Re-base on the last hour; older samples are dropped by `forget_before` anyway.
            let decoded: Vec<Sample> = self.iter().collect();
            self.base = t - HOUR;
            self.samples.clear();
            let base = self.base;
            for s in decoded.into_iter().filter(|s| s.t > base) {
                self.push_raw(s.t, f64::from(s.ms), s.ok);
            }
        }
        if self.samples.len() >= RECENT_MAX {
            self.samples.pop_front();
        }
        self.push_raw(t, ms, ok);
    }

    fn push_raw(&mut self, t: i64, ms: f64, ok: bool) {
        let last = self.samples.back().map_or(0, |(o, _)| i64::from(o & !FAILED));
        let off = (t - self.base).clamp(last, MAX_OFFSET) as u16;
        self.samples.push_back((if ok { off } else { off | FAILED }, encode_ms(ms)));
    }

    /// Drop probes at or before `cutoff` (unix seconds).
    pub fn forget_before(&mut self, cutoff: i64) {
        while let Some(front) = self.samples.front() {
            if self.decode(*front).t > cutoff {
                break;
            }
            self.samples.pop_front();
        }
    }
}

impl Serialize for Recent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Recent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list = Vec::<Sample>::deserialize(d)?;
        let mut r = Recent::default();
        for s in list {
            r.push(s.t, f64::from(s.ms), s.ok);
        }
        Ok(r)
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
    pub recent: Recent,
    /// Counts of the last 7 days and latency histograms of the last 24 hours, by hour.
    pub hours: Hours,
    /// The last [`ERROR_WINDOW`] probes, newest in bit 0 (a set bit: failed).
    #[serde(skip)]
    pub window: ErrorWindow,
    /// Probed by this process (state loaded from the file does not count).
    #[serde(skip)]
    pub probed: bool,
}

impl EndpointState {
    /// Take in one probe result at `now`. Not `counted` (a maintenance window): it
    /// decides up or down as any probe, but stays out of availability and latency.
    pub fn record(
        &mut self,
        r: ProbeResult,
        now: i64,
        (failure_threshold, success_threshold): (u32, u32),
        slow_ms: Option<f64>,
        counted: bool,
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
        if counted {
            self.recent.push(now, ms, r.ok);
            self.hours.add(now, r.ok.then(|| bucket_of(ms)));
        }
        self.recent.forget_before(now - HOUR);
        self.window.push(r.ok);
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
        let (total, ok) = self.hours.counts_since(secs, now);
        (total > 0).then(|| ok as f64 / total as f64 * 100.0)
    }

    /// Latency quantiles (ms) of successful probes in the last hour, exact.
    pub fn quantiles_1h<const N: usize>(&self, qs: &[f64; N]) -> Option<[f64; N]> {
        let mut v: Vec<f64> = self.recent.iter().filter(|s| s.ok).map(|s| f64::from(s.ms)).collect();
        if v.is_empty() {
            return None;
        }
        // Nearest rank, as `percentile`, by selection (O(n)) rather than a sort: this runs
        // for every endpoint on every report.
        let n = v.len();
        Some(qs.map(|q| {
            let rank = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
            *v.select_nth_unstable_by(rank, f64::total_cmp).1
        }))
    }

    /// Sum (ms) and count of successful probes' latencies in the last hour.
    pub fn latency_sum_count_1h(&self) -> (f64, usize) {
        self.recent.iter().filter(|s| s.ok).fold((0.0, 0), |(sum, n), s| (sum + f64::from(s.ms), n + 1))
    }

    /// Latency quantiles (ms) over the last 24 hours, from the histograms (upper bucket edge).
    pub fn quantiles_24h<const N: usize>(&self, qs: &[f64; N], now: i64) -> Option<[f64; N]> {
        let mut merged = [0u64; BUCKETS];
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
        Some(qs.map(|q| {
            let rank = (q * total as f64).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in merged.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return bucket_upper_ms(i);
                }
            }
            bucket_upper_ms(BUCKETS - 1)
        }))
    }

    /// Percentage of the last 20 probes that failed.
    pub fn error_rate(&self) -> Option<f64> {
        self.window.error_rate()
    }
}

/// The outcome of the last [`ERROR_WINDOW`] probes as bits (newest in bit 0, set when it
/// failed): 8 bytes inline instead of a queue on the heap, for every endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorWindow {
    failed: u32,
    len: u8,
}

impl ErrorWindow {
    pub fn push(&mut self, ok: bool) {
        let mask = (1u32 << ERROR_WINDOW) - 1;
        self.failed = ((self.failed << 1) | u32::from(!ok)) & mask;
        self.len = (self.len + 1).min(ERROR_WINDOW as u8);
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Percentage of the probes held that failed (None before the first).
    pub fn error_rate(&self) -> Option<f64> {
        (self.len > 0).then(|| f64::from(self.failed.count_ones()) / f64::from(self.len) * 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn samples_are_four_bytes_precise_and_keep_their_file_format() {
        assert_eq!(std::mem::size_of::<(u16, u16)>(), 4);
        for ms in [0.0, 0.05, 0.3, 1.0, 12.5, 49.0, 99.0, 1234.5, 60_000.0, 600_000.0] {
            let back = decode_ms(encode_ms(ms));
            assert!((back - ms).abs() <= ms * 0.00012 + 0.05, "{ms} -> {back}");
        }
        let mut r = Recent::default();
        r.push(1_790_000_000, 12.5, true);
        r.push(1_790_000_001, 0.0, false);
        r.push(1_790_040_000, 3000.0, false); // 11 hours later: re-based, the old ones dropped
        r.forget_before(1_790_040_000 - HOUR);
        let all: Vec<Sample> = r.iter().collect();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].t, all[0].ok), (1_790_040_000, false));
        let text = serde_json::to_string(&r).unwrap_or_default();
        assert!(text.starts_with(r#"[{"t":1790040000,"ms":"#) && text.ends_with(r#","ok":false}]"#), "{text}");
        let back: Recent = serde_json::from_str(&text).unwrap();
        assert_eq!(back.iter().collect::<Vec<_>>(), all);
    }

    fn res(ok: bool, ms: u64) -> ProbeResult {
        ProbeResult { ok, latency: Duration::from_millis(ms), ..ProbeResult::default() }
    }

    #[test]
    fn thresholds_prevent_flapping() {
        let mut s = EndpointState::default();
        s.record(res(true, 10), 0, (2, 2), None, true);
        assert_eq!(s.up, None, "one success is not yet up with success_threshold 2");
        s.record(res(true, 10), 1, (2, 2), None, true);
        assert_eq!(s.up, Some(true));
        s.record(res(false, 10), 2, (2, 2), None, true);
        assert_eq!(s.up, Some(true), "one failure is not down with failure_threshold 2");
        s.record(res(false, 10), 3, (2, 2), None, true);
        assert_eq!((s.up, s.since), (Some(false), Some(3)));
        s.record(res(true, 10), 4, (2, 2), None, true);
        s.record(res(true, 10), 5, (2, 2), None, true);
        assert_eq!((s.up, s.since), (Some(true), Some(5)));
    }

    #[test]
    fn percentiles_availability_and_error_rate_from_known_series() {
        let mut s = EndpointState::default();
        let now = 1_800_000_000;
        for i in 1..=100u64 {
            s.record(res(i % 10 != 0, i), now - 100 + i as i64, (1, 1), None, true);
        }
        assert_eq!(s.availability(HOUR, now), Some(90.0));
        let q = s.quantiles_1h(&[0.5, 0.99]).unwrap_or_default();
        // Successful latencies are 1..=99 without the multiples of 10: 90 values. The
        // nearest-rank median is the 45th, 49; p99 the 90th, 99.
        assert!((q[0] - 49.0).abs() < 0.01 && (q[1] - 99.0).abs() < 0.02, "{q:?}");
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
            s.record(res(true, 20), t0 + i, (1, 1), None, true);
        }
        assert_eq!(s.recent.len(), RECENT_MAX, "the exact window is capped");
        s.record(res(true, 20), t0 + 25 * HOUR, (1, 1), None, true);
        let (total, _, hist) = s.hours.get(t0).unwrap_or_default();
        assert!(!hist && total > 0, "past 24 h: counts only");
        s.record(res(true, 20), t0 + 8 * 24 * HOUR, (1, 1), None, true);
        assert!(s.hours.get(t0).is_none(), "past 7 days: gone");
        assert!(s.hours.len() <= WEEK_HOURS);
        // The state file keeps the readable map, and reads back the same.
        let text = serde_json::to_string(&s.hours).unwrap_or_default();
        let back: Hours = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(serde_json::to_string(&back).unwrap_or_default(), text);
        assert_eq!(back.get(t0 + 8 * 24 * HOUR).map(|(t, o, _)| (t, o)), Some((1, 1)));
    }

    #[test]
    fn error_rate_covers_only_the_last_twenty_probes() {
        let mut w = ErrorWindow::default();
        assert_eq!(w.error_rate(), None);
        for _ in 0..5 {
            w.push(false);
        }
        assert_eq!(w.error_rate(), Some(100.0));
        for _ in 0..15 {
            w.push(true);
        }
        assert_eq!((w.len(), w.error_rate()), (ERROR_WINDOW, Some(25.0)));
        for _ in 0..5 {
            w.push(true);
        }
        assert_eq!(w.error_rate(), Some(0.0), "the five failures fell out of the window");
        w.push(false);
        assert_eq!((w.len(), w.error_rate()), (ERROR_WINDOW, Some(5.0)));
    }

    /// Probes during a maintenance window decide up and down, but count for no
    /// availability and no latency.
    #[test]
    fn probes_in_maintenance_stay_out_of_availability() {
        let mut s = EndpointState::default();
        let now = 1_800_000_000;
        for i in 0..10 {
            s.record(res(true, 10), now - 100 + i, (1, 1), None, true);
        }
        for i in 10..40 {
            s.record(res(false, 5000), now - 100 + i, (1, 1), None, false);
        }
        assert_eq!(s.up, Some(false), "the failures still take it down");
        assert_eq!(s.availability(HOUR, now), Some(100.0));
        assert_eq!(s.availability(86_400, now), Some(100.0));
        assert_eq!(s.recent.len(), 10);
        assert_eq!(s.quantiles_1h(&[0.99]).map(|q| q[0].round()), Some(10.0));
    }

    #[test]
    fn slow_streak_counts_only_consecutive_slow_successes() {
        let mut s = EndpointState::default();
        for ms in [500, 600, 700] {
            s.record(res(true, ms), 0, (1, 1), Some(300.0), true);
        }
        assert_eq!(s.slow_streak, 3);
        s.record(res(true, 100), 0, (1, 1), Some(300.0), true);
        assert_eq!(s.slow_streak, 0);
    }
}
