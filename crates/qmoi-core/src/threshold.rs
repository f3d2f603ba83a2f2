//! Warning/critical thresholds, for values that are bad when high (disk usage) or when low
//! (free inodes, days until a certificate expires).

use crate::report::CheckResult;
use crate::status::Status;
use serde::{Deserialize, Serialize};

/// Which side of a threshold is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Bad when the value is at or above the threshold.
    #[default]
    Above,
    /// Bad when the value is at or below the threshold.
    Below,
}

/// A warning/critical pair as written in config (`warning = 85`, `critical = 95`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    pub warning: f64,
    pub critical: f64,
    #[serde(default)]
    pub direction: Direction,
}

impl Threshold {
    pub const fn above(warning: f64, critical: f64) -> Self {
        Self { warning, critical, direction: Direction::Above }
    }

    pub const fn below(warning: f64, critical: f64) -> Self {
        Self { warning, critical, direction: Direction::Below }
    }

    /// Status of `value`. A non-finite value (NaN from a broken source) is `Unknown`.
    pub fn evaluate(&self, value: f64) -> Status {
        if !value.is_finite() {
            return Status::Unknown;
        }
        let breached = |t: f64| match self.direction {
            Direction::Above => value >= t,
            Direction::Below => value <= t,
        };
        if breached(self.critical) {
            Status::Critical
        } else if breached(self.warning) {
            Status::Warning
        } else {
            Status::Ok
        }
    }

    fn symbol(&self) -> &'static str {
        match self.direction {
            Direction::Above => "≥",
            Direction::Below => "≤",
        }
    }

    /// Build a check result: `what` is the subject ("disk /"), `shown` the formatted value
    /// ("86.1%"). The message says which threshold was crossed:
    /// `disk / at 86.1% (warning ≥ 85%)`.
    pub fn check(
        &self,
        name: impl Into<String>,
        what: &str,
        value: f64,
        unit: &str,
        fmt_value: impl Fn(f64) -> String,
    ) -> CheckResult {
        let status = self.evaluate(value);
        let message = match status {
            Status::Ok => format!("{what} at {}", fmt_value(value)),
            Status::Warning => {
                format!("{what} at {} (warning {} {})", fmt_value(value), self.symbol(), fmt_value(self.warning))
            }
            Status::Critical => {
                format!("{what} at {} (critical {} {})", fmt_value(value), self.symbol(), fmt_value(self.critical))
            }
            Status::Unknown => format!("{what}: no valid value"),
        };
        CheckResult::new(name, status, message)
            .with_value(round2(value), unit)
            .with_thresholds(self.warning, self.critical)
    }

    /// Validate the pair for `key` within `range`.
    pub fn validate(&self, key: &str, range: (f64, f64), problems: &mut crate::config::Problems) {
        problems.check_thresholds(key, self.warning, self.critical, self.direction == Direction::Below, range);
    }
}

/// Round to two decimals for display in reports (NaN stays NaN).
pub fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// `86.1%`
pub fn fmt_percent(v: f64) -> String {
    format!("{}%", round1(v))
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn above_and_below() {
        let t = Threshold::above(85.0, 95.0);
        assert_eq!(t.evaluate(10.0), Status::Ok);
        assert_eq!(t.evaluate(85.0), Status::Warning);
        assert_eq!(t.evaluate(99.0), Status::Critical);
        assert_eq!(t.evaluate(f64::NAN), Status::Unknown);
        let b = Threshold::below(14.0, 3.0);
        assert_eq!(b.evaluate(30.0), Status::Ok);
        assert_eq!(b.evaluate(10.0), Status::Warning);
        assert_eq!(b.evaluate(2.0), Status::Critical);
    }

    #[test]
    fn message_names_the_crossed_threshold() {
        let c = Threshold::above(85.0, 95.0).check("disk_usage:/", "disk /", 86.14, "percent", fmt_percent);
        assert_eq!(c.message, "disk / at 86.1% (warning ≥ 85%)");
        assert_eq!(c.value, Some(86.14));
        assert_eq!(c.status, Status::Warning);
    }
}
