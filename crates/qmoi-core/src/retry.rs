//! `Retry-After`, as servers send it: a number of seconds or an HTTP date.

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: the notifier parsed `u64::MAX` seconds uncapped (a wrap to "retry now",
    /// or a panic in debug builds).
    #[test]
    fn seconds_and_dates_are_read_and_capped() {
        let cap = Duration::from_secs(3600);
        let now = DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z").map(|t| t.with_timezone(&Utc));
        let now = now.unwrap_or_else(|e| panic!("{e}"));
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
