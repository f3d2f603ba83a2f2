//! The report: the one contract between QMOI processes (docs/ARCHITECTURE.md, "The report", schema_version 1).
//!
//! ```json
//! {
//!   "schema_version": 1,
//!   "component": "system_health",
//!   "host": "web-01",
//!   "generated_at": "2026-11-27T03:00:00Z",
//!   "interval_s": 60,
//!   "duration_ms": 12,
//!   "status": "warning",
//!   "summary": "4 checks ok, 1 warning: disk / at 86.1%",
//!   "checks": [{"name": "disk_usage:/", "status": "warning", "value": 86.1, "unit": "percent",
//!               "warning": 85.0, "critical": 95.0, "message": "disk / at 86.1% (warning ≥ 85%)"}],
//!   "metrics": {"qmoi_disk_used_ratio{mount=\"/\"}": 0.861},
//!   "alerts": [{"fingerprint": "system_health/disk_usage:/", "level": "warning",
//!               "title": "Disk / almost full", "detail": "86.1% used",
//!               "since": "2026-11-27T02:41:00Z"}],
//!   "details": {}
//! }
//! ```
//!
//! - `status` is the worst of the checks' statuses (see [`crate::Status`]).
//! - `alerts` are the alerts firing now; one that is no longer listed is resolved.
//!   `fingerprint` is stable across runs and restarts; `since` is when it started firing.
//! - `metrics` keys are Prometheus-style names with labels; values are numbers.
//! - Fields are added, never renamed; a breaking change bumps `schema_version`.
//!
//! Files: `<id>_latest.json` (rewritten atomically every run) and history copies
//! `<id>_report_YYYYMMDD_HHMMSS.json` (UTC), pruned by count and age.

mod read;
mod write;

pub use read::{
    DEFAULT_MAX_READ_BYTES, ReadOutcome, ReportAlerts, max_read_bytes, read_regular_file, read_report,
    read_report_alerts, read_report_bytes, set_max_read_bytes,
};
pub use write::{HistoryPolicy, ReportWriter, WriteError, write_atomic_with, write_json_atomic};

use crate::status::{AlertLevel, Status};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `name{a="x",b="y"}`: a metric key with label values escaped as Prometheus requires.
pub fn metric_key(name: &str, labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return name.to_string();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            let esc = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            format!("{k}=\"{esc}\"")
        })
        .collect();
    format!("{name}{{{}}}", inner.join(","))
}

/// Current schema version written by this build.
pub const SCHEMA_VERSION: u32 = 1;

/// A full report as written to `<id>_latest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub component: String,
    pub host: String,
    #[serde(with = "rfc3339")]
    pub generated_at: DateTime<Utc>,
    pub interval_s: u64,
    pub duration_ms: u64,
    pub status: Status,
    pub summary: String,
    #[serde(default)]
    pub checks: Vec<CheckResult>,
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    #[serde(default)]
    pub alerts: Vec<Alert>,
    #[serde(default)]
    pub details: Details,
    /// Parts the monitor writes into the file itself (never read back: a reader gets
    /// them as `metrics` and `details`).
    #[serde(skip)]
    pub streamed: Streamed,
}

/// Writes a report's `metrics` object and `details` value straight into the report file.
/// For a monitor whose report has tens of thousands of metrics (api_endpoints with 5,000
/// endpoints): building them as a map and a text first cost ~12 MB at every report.
pub trait StreamParts: Send + Sync {
    /// One JSON object: `{"name{labels}": value, …}`.
    fn write_metrics(&self, w: &mut dyn std::io::Write) -> std::io::Result<()>;
    /// Any JSON value.
    fn write_details(&self, w: &mut dyn std::io::Write) -> std::io::Result<()>;
}

/// An optional [`StreamParts`]; equal to any other (it is not data, it writes data).
#[derive(Clone, Default)]
pub struct Streamed(pub Option<std::sync::Arc<dyn StreamParts>>);

impl Streamed {
    pub fn new(parts: impl StreamParts + 'static) -> Self {
        Self(Some(std::sync::Arc::new(parts)))
    }
}

impl PartialEq for Streamed {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for Streamed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Streamed(..)" } else { "Streamed(none)" })
    }
}

/// The free-form `details` of a report, kept as JSON text. A monitor serializes its own
/// typed structs into it ([`Details::of`]); readers pass it through. Nobody builds a tree
/// of a megabyte-sized table in memory (a `serde_json::Value` of the api_endpoints report
/// for 5,000 endpoints took ~30 MB; its text takes ~3 MB).
#[derive(Clone)]
pub struct Details(Box<serde_json::value::RawValue>);

impl Details {
    /// Serialize `v` (compact). Our types always serialize; should one fail, the details
    /// say so instead of failing the report.
    pub fn of<T: Serialize + ?Sized>(v: &T) -> Self {
        // Measure first, then write into one buffer of the final size: a growing buffer
        // would reach up to twice the size and be copied once more when boxed (three times
        // the text at the peak, for megabytes of it).
        let mut count = CountBytes(0);
        let result = serde_json::to_writer(&mut count, v).and_then(|()| {
            let mut buf = Vec::with_capacity(count.0);
            serde_json::to_writer(&mut buf, v)?;
            let text = String::from_utf8(buf).map_err(|e| serde::ser::Error::custom(e.to_string()))?;
            serde_json::value::RawValue::from_string(text)
        });
        match result {
            Ok(r) => Self(r),
            Err(e) => Self::of(&serde_json::json!({ "error": format!("details could not be serialized: {e}") })),
        }
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// Parse into a tree, for a reader that needs to look inside (small reports only).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).unwrap_or_default()
    }
}

struct CountBytes(usize);

impl std::io::Write for CountBytes {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len();
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Default for Details {
    fn default() -> Self {
        Self::of(&serde_json::Value::Null)
    }
}

impl PartialEq for Details {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl std::fmt::Debug for Details {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.get())
    }
}

impl Serialize for Details {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Details {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Box::<serde_json::value::RawValue>::deserialize(d).map(Self)
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Stable name, `kind:subject` (e.g. `disk_usage:/`); part of the alert fingerprint.
    pub name: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<f64>,
    pub message: String,
    /// Alert title when this check is not ok (defaults to the message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The labels of what the check watches (an endpoint's, a heartbeat check's
    /// `labels`): copied into its alert, matched by maintenance windows of labels.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

/// Labels of a check or alert (`team = "payments"`).
pub type Labels = BTreeMap<String, String>;

impl CheckResult {
    pub fn new(name: impl Into<String>, status: Status, message: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status,
            value: None,
            unit: None,
            warning: None,
            critical: None,
            message: message.into(),
            title: None,
            labels: Labels::new(),
        }
    }

    pub fn ok(name: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(name, Status::Ok, message)
    }

    /// A check that could not produce a result (timeout, unreadable source, …).
    pub fn unknown(name: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(name, Status::Unknown, message)
    }

    pub fn with_value(mut self, value: f64, unit: &str) -> Self {
        self.value = Some(value);
        self.unit = Some(unit.to_string());
        self
    }

    pub fn with_thresholds(mut self, warning: f64, critical: f64) -> Self {
        self.warning = Some(warning);
        self.critical = Some(critical);
        self
    }

    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    pub fn with_labels(mut self, labels: &Labels) -> Self {
        self.labels.clone_from(labels);
        self
    }
}

/// An alert firing now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// `<component>/<subject>`, stable across runs and restarts.
    pub fingerprint: String,
    pub level: AlertLevel,
    pub title: String,
    pub detail: String,
    #[serde(with = "rfc3339")]
    pub since: DateTime<Utc>,
    /// Its check's labels.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

impl Report {
    /// A report of `component` on this host, generated now, from `checks` (status and
    /// summary computed from them); metrics, alerts and details empty, to be filled in.
    pub fn from_checks(component: &str, checks: Vec<CheckResult>) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            component: component.to_string(),
            host: hostname(),
            generated_at: chrono::Utc::now(),
            interval_s: 0,
            duration_ms: 0,
            status: Self::status_of(&checks),
            summary: Self::summarize(&checks),
            checks,
            metrics: BTreeMap::new(),
            alerts: Vec::new(),
            details: Details::default(),
            streamed: Streamed::default(),
        }
    }

    /// Summarise checks the way operators read them:
    /// `"5 checks ok"` or `"4 checks ok, 1 warning: disk / at 86.1%"`.
    pub fn summarize(checks: &[CheckResult]) -> String {
        let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
        let ok = count(Status::Ok);
        let mut parts = vec![format!("{ok} check{} ok", if ok == 1 { "" } else { "s" })];
        for (s, word) in [(Status::Critical, "critical"), (Status::Warning, "warning"), (Status::Unknown, "unknown")] {
            let n = count(s);
            if n > 0 {
                parts.push(format!("{n} {word}{}", if n > 1 && s == Status::Warning { "s" } else { "" }));
            }
        }
        let mut summary = parts.join(", ");
        // Name the worst problem so the one-line summary says what to look at.
        let worst = Status::worst_of(checks.iter().map(|c| c.status));
        if let Some(first) = checks.iter().find(|c| c.status == worst && worst != Status::Ok) {
            summary.push_str(": ");
            summary.push_str(&first.message);
        }
        summary
    }

    /// The report status: the worst of its checks.
    pub fn status_of(checks: &[CheckResult]) -> Status {
        Status::worst_of(checks.iter().map(|c| c.status))
    }

    pub fn to_json_pretty(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut v = serde_json::to_vec_pretty(self)?;
        v.push(b'\n');
        Ok(v)
    }

    /// Write as JSON to `w`: pretty for small reports (people `cat` them), compact for
    /// reports with many checks or metrics, where indentation would double the size.
    pub fn write_json(&self, w: &mut impl std::io::Write) -> Result<(), serde_json::Error> {
        if let Some(parts) = &self.streamed.0 {
            return self.write_streamed(w, parts.as_ref());
        }
        if self.checks.len() + self.metrics.len() > 2000 {
            serde_json::to_writer(&mut *w, self)?;
        } else {
            serde_json::to_writer_pretty(&mut *w, self)?;
        }
        w.write_all(b"\n").map_err(serde_json::Error::io)
    }
}

impl Report {
    /// Compact JSON with `metrics` and `details` written by `parts`; the same fields in
    /// the same order as the derived serialization.
    fn write_streamed(&self, w: &mut impl std::io::Write, parts: &dyn StreamParts) -> Result<(), serde_json::Error> {
        use serde_json::{Error, to_writer};
        let io = Error::io;
        let field = |w: &mut dyn std::io::Write, name: &str, first: bool| -> Result<(), Error> {
            w.write_all(if first { b"{" } else { b"," }).map_err(io)?;
            to_writer(&mut *w, name)?;
            w.write_all(b":").map_err(io)
        };
        field(w, "schema_version", true)?;
        to_writer(&mut *w, &self.schema_version)?;
        field(w, "component", false)?;
        to_writer(&mut *w, &self.component)?;
        field(w, "host", false)?;
        to_writer(&mut *w, &self.host)?;
        field(w, "generated_at", false)?;
        to_writer(&mut *w, &rfc3339::format(&self.generated_at))?;
        field(w, "interval_s", false)?;
        to_writer(&mut *w, &self.interval_s)?;
        field(w, "duration_ms", false)?;
        to_writer(&mut *w, &self.duration_ms)?;
        field(w, "status", false)?;
        to_writer(&mut *w, &self.status)?;
        field(w, "summary", false)?;
        to_writer(&mut *w, &self.summary)?;
        field(w, "checks", false)?;
        to_writer(&mut *w, &self.checks)?;
        field(w, "metrics", false)?;
        parts.write_metrics(w).map_err(io)?;
        field(w, "alerts", false)?;
        to_writer(&mut *w, &self.alerts)?;
        field(w, "details", false)?;
        parts.write_details(w).map_err(io)?;
        w.write_all(b"}\n").map_err(io)
    }
}

/// RFC 3339 UTC timestamps with second precision (`2026-11-27T03:00:00Z`).
pub mod rfc3339 {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| serde::de::Error::custom(format!("'{s}' is not an RFC 3339 time: {e}")))
    }

    pub fn format(t: &DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::Secs, true)
    }
}

/// The host name reported in every report.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_reports_are_written_compact_small_ones_pretty() {
        let mut r = Report {
            schema_version: SCHEMA_VERSION,
            component: "c".into(),
            host: "h".into(),
            generated_at: Utc::now(),
            interval_s: 1,
            duration_ms: 1,
            status: Status::Ok,
            summary: "s".into(),
            checks: Vec::new(),
            metrics: BTreeMap::new(),
            alerts: Vec::new(),
            details: Details::default(),
            streamed: Default::default(),
        };
        let text = |r: &Report| {
            let mut v = Vec::new();
            r.write_json(&mut v).unwrap();
            String::from_utf8(v).unwrap_or_default()
        };
        assert!(text(&r).contains("\n  \"component\""), "small: pretty");
        for i in 0..2001 {
            r.metrics.insert(format!("m{i}"), 1.0);
        }
        let big = text(&r);
        assert_eq!(big.lines().count(), 1, "large: one line");
        let back: Report = serde_json::from_str(&big).unwrap();
        assert_eq!(back.metrics.len(), 2001);
    }

    struct Parts;

    impl StreamParts for Parts {
        fn write_metrics(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
            w.write_all(br#"{"qmoi_x{a=\"b\"}":1.5,"qmoi_y":2}"#)
        }
        fn write_details(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
            w.write_all(br#"{"rows":[1,2,3]}"#)
        }
    }

    #[test]
    fn streamed_parts_are_written_into_the_report_and_read_back_as_usual() {
        let r = Report {
            schema_version: SCHEMA_VERSION,
            component: "c".into(),
            host: "h".into(),
            generated_at: Utc::now(),
            interval_s: 1,
            duration_ms: 1,
            status: Status::Warning,
            summary: "s \"quoted\"".into(),
            checks: vec![CheckResult::new("x", Status::Warning, "m")],
            metrics: BTreeMap::new(),
            alerts: Vec::new(),
            details: Details::default(),
            streamed: Streamed::new(Parts),
        };
        let mut v = Vec::new();
        r.write_json(&mut v).unwrap();
        let back: Report =
            serde_json::from_slice(&v).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&v)));
        assert_eq!(back.metrics.get("qmoi_x{a=\"b\"}"), Some(&1.5));
        assert_eq!(back.metrics.len(), 2);
        assert_eq!(back.details.get(), r#"{"rows":[1,2,3]}"#);
        assert_eq!((back.summary.as_str(), back.status, back.checks.len()), ("s \"quoted\"", Status::Warning, 1));
        assert_eq!(back.generated_at.timestamp(), r.generated_at.timestamp());
    }

    #[test]
    fn details_are_the_compact_json_text_and_round_trip() {
        let v = serde_json::json!({"endpoints": [{"name": "a", "up": true, "ms": 1.5}], "note": "ü \"q\""});
        let d = Details::of(&v);
        assert_eq!(d.get(), serde_json::to_string(&v).unwrap_or_default());
        assert_eq!(d.to_value(), v);
        let in_report = serde_json::to_string(&serde_json::json!({"details": d.get()})).unwrap_or_default();
        assert!(in_report.contains("endpoints"));
        let parsed: Details = serde_json::from_str(d.get()).unwrap_or_default();
        assert_eq!(parsed, d);
        assert_eq!(Details::default().get(), "null");
    }

    #[test]
    fn summary_names_the_worst_problem() {
        let checks = vec![
            CheckResult::ok("cpu", "cpu 5%"),
            CheckResult::new("disk_usage:/", Status::Warning, "disk / at 86.1%"),
            CheckResult::new("mem", Status::Critical, "memory 97%"),
        ];
        assert_eq!(Report::summarize(&checks), "1 check ok, 1 critical, 1 warning: memory 97%");
        assert_eq!(Report::status_of(&checks), Status::Critical);
        assert_eq!(Report::summarize(&checks[..1]), "1 check ok");
    }

    #[test]
    fn wire_format_matches_design_example() {
        // Decoded with the test's own expectations of the JSON (docs/ARCHITECTURE.md, "The report"), so a
        // refactor of the types cannot silently change the wire format.
        let text = r#"{
          "schema_version": 1, "component": "system_health", "host": "web-01",
          "generated_at": "2026-11-27T03:00:00Z", "interval_s": 60, "duration_ms": 12,
          "status": "ok", "summary": "4 checks ok, 1 warning: disk / at 86%",
          "checks": [{"name": "disk_usage:/", "status": "warning", "value": 86.1, "unit": "percent",
                      "warning": 85.0, "critical": 95.0, "message": "disk / at 86.1% (warning ≥ 85%)"}],
          "metrics": {"qmoi_disk_used_ratio{mount=\"/\"}": 0.861},
          "alerts": [{"fingerprint": "system_health/disk_usage:/", "level": "warning",
                      "title": "Disk / almost full", "detail": "86.1% used", "since": "2026-11-27T02:41:00Z"}],
          "details": {}
        }"#;
        let r: Report = match serde_json::from_str(text) {
            Ok(r) => r,
            Err(e) => panic!("design example must decode: {e}"),
        };
        assert_eq!(r.checks[0].warning, Some(85.0));
        assert_eq!(r.alerts[0].level, AlertLevel::Warning);
        let back: serde_json::Value = serde_json::to_value(&r).unwrap_or_default();
        assert_eq!(back["generated_at"], "2026-11-27T03:00:00Z");
        assert_eq!(back["alerts"][0]["since"], "2026-11-27T02:41:00Z");
        assert_eq!(back["checks"][0]["unit"], "percent");
        assert_eq!(back["metrics"]["qmoi_disk_used_ratio{mount=\"/\"}"], 0.861);
        assert!(back["checks"][0].get("title").is_none(), "absent optional fields are omitted");
    }
}
