//! Waiting before trying again: exponential backoff with jitter, and `Retry-After` as
//! servers send it (a number of seconds or an HTTP date).

use chrono::{DateTime, Utc};
use std::time::Duration;

/// How long a `Retry-After` value asks to wait, at most `cap`: seconds (`"120"`, also
/// fractional) or an HTTP date (`"Wed, 21 Oct 2015 07:28:00 GMT"`, in the past: no
/// wait). `None` for anything else. A huge or hostile value (`u64::MAX` seconds) is
/// `cap`, never an overflow or a wrap to "now".
pub fn retry_after(value: &str, cap: Duration) -> Option<Duration> {
    retry_after_at(value, cap, Utc::now())
}

fn retry_after_at(value: &str, cap: Duration, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    if let Ok(s) = v.parse::<f64>() {
        return (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s.min(cap.as_secs_f64())));
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    let ms = (at - now).num_milliseconds().max(0);
    Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)).min(cap))
}

/// The wait before try number `attempt` (1-based: the first retry waits `initial`), doubled
/// each time up to `max`, then spread by `jitter` (0.2: ±20 %) so that clients that failed
/// together do not come back together. Never more than `max` × (1 + `jitter`).
pub fn backoff(initial: Duration, max: Duration, attempt: u32, jitter: f64) -> Duration {
    let doubled = initial.saturating_mul(1u32 << attempt.clamp(1, 31).saturating_sub(1).min(30)).min(max);
    let spread = 1.0 + jitter.clamp(0.0, 1.0) * (2.0 * fastrand::f64() - 1.0);
    doubled.mul_f64(spread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_within_its_jitter() {
        let (initial, max) = (Duration::from_millis(100), Duration::from_secs(1));
        let plain: Vec<u128> = (1..=6).map(|n| backoff(initial, max, n, 0.0).as_millis()).collect();
        assert_eq!(plain, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff(initial, max, 0, 0.0), initial, "attempt 0 counts as the first");
        assert_eq!(backoff(initial, max, u32::MAX, 0.0), max, "no overflow");
        for _ in 0..1000 {
            let d = backoff(initial, max, 3, 0.2).as_secs_f64();
            assert!((0.32..=0.48).contains(&d), "{d}");
        }
    }

    /// Regression: the notifier parsed `u64::MAX` seconds uncapped (a wrap to "retry now",
    /// or a panic in debug builds).
    #[test]
    fn seconds_and_dates_are_read_and_capped() {
        let cap = Duration::from_secs(3600);
        let now = DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z").map(|t| t.with_timezone(&Utc));
        let now = now.unwrap();
        let at = |v: &str| retry_after_at(v, cap, now);
        assert_eq!(at("120"), Some(Duration::from_secs(120)));
        assert_eq!(at(" 1.5 "), Some(Duration::from_millis(1500)));
        assert_eq!(at("18446744073709551615"), Some(cap));
        assert_eq!(at("1e300"), Some(cap));
        assert_eq!(at("-5"), None);
        assert_eq!(at("NaN"), None);
        assert_eq!(at("Sun, 06 Dec 2026 12:01:30 GMT"), Some(Duration::from_secs(90)));
        assert_eq!(at("Sun, 06 Dec 2026 11:00:00 GMT"), Some(Duration::ZERO), "a date in the past");
        assert_eq!(at("Mon, 06 Dec 2027 12:00:00 GMT"), Some(cap));
        assert_eq!(at("soon"), None);
    }
}
