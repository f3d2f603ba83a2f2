//! Check/report status and alert level, with the "worst of" ordering.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The status of one check or of a whole report.
///
/// Ordering is by severity for the purpose of "worst of": `Ok < Unknown < Warning < Critical`.
/// `Unknown` ranks above `Ok` (we could not tell, which is not good news) but below
/// `Warning` (a real problem seen is worse than a check that could not run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Status {
    fn rank(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Unknown => 1,
            Status::Warning => 2,
            Status::Critical => 3,
        }
    }

    /// The worse of two statuses.
    #[must_use]
    pub fn worst(self, other: Status) -> Status {
        if other.rank() > self.rank() { other } else { self }
    }

    /// Worst of an iterator of statuses; `Ok` when empty.
    pub fn worst_of<I: IntoIterator<Item = Status>>(iter: I) -> Status {
        iter.into_iter().fold(Status::Ok, Status::worst)
    }

    /// Nagios plugin exit code: 0 ok, 1 warning, 2 critical, 3 unknown.
    pub fn exit_code(self) -> i32 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Critical => "critical",
            Status::Unknown => "unknown",
        }
    }

    /// The alert level that a non-ok check raises (`None` for ok).
    /// A check that could not run raises a warning: someone should look.
    pub fn alert_level(self) -> Option<AlertLevel> {
        match self {
            Status::Ok => None,
            Status::Warning | Status::Unknown => Some(AlertLevel::Warning),
            Status::Critical => Some(AlertLevel::Critical),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How bad a configured kind of problem is, as an operator sets it in a config
/// (`new_listener_level = "critical"`, `level = "warning"`): the status its check gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Warning,
    Critical,
}

impl Severity {
    pub fn status(self) -> Status {
        match self {
            Severity::Warning => Status::Warning,
            Severity::Critical => Status::Critical,
        }
    }
}

/// Level of an alert (the seed's 🔴 critical, 🟡 warning, 🟢 info).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertLevel {
    Info,
    Warning,
    Critical,
}

impl AlertLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertLevel::Info => "info",
            AlertLevel::Warning => "warning",
            AlertLevel::Critical => "critical",
        }
    }
}

impl fmt::Display for AlertLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_of_ranks_critical_over_warning_over_unknown_over_ok() {
        assert_eq!(Status::worst_of([]), Status::Ok);
        assert_eq!(Status::worst_of([Status::Ok, Status::Unknown]), Status::Unknown);
        assert_eq!(Status::worst_of([Status::Unknown, Status::Warning]), Status::Warning);
        assert_eq!(Status::worst_of([Status::Critical, Status::Warning, Status::Unknown]), Status::Critical);
    }

    #[test]
    fn exit_codes_follow_nagios() {
        let codes: Vec<i32> =
            [Status::Ok, Status::Warning, Status::Critical, Status::Unknown].iter().map(|s| s.exit_code()).collect();
        assert_eq!(codes, vec![0, 1, 2, 3]);
    }

    #[test]
    fn serializes_lowercase() {
        assert_eq!(serde_json::to_string(&Status::Critical).ok().as_deref(), Some("\"critical\""));
        assert_eq!(serde_json::to_string(&AlertLevel::Info).ok().as_deref(), Some("\"info\""));
    }
}
