//! Reading reports written by other processes, tolerantly.

use super::Report;
use std::path::Path;
use std::time::SystemTime;

/// What reading a report file gave.
#[derive(Debug, Clone)]
pub enum ReadOutcome {
    /// A valid report, with the file's modification time.
    Ok { report: Box<Report>, modified: Option<SystemTime> },
    /// No usable report; the reason says why (missing, empty, malformed…). A reader treats
    /// this component as `unknown` with this reason.
    Unusable { reason: String },
}

impl ReadOutcome {
    pub fn report(&self) -> Option<&Report> {
        match self {
            ReadOutcome::Ok { report, .. } => Some(report),
            ReadOutcome::Unusable { .. } => None,
        }
    }
}

/// Read and decode a report. Never panics, whatever is in the file.
pub fn read_report(path: &Path) -> ReadOutcome {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    match read_as::<Report>(path, |r| r.schema_version) {
        Ok(report) => ReadOutcome::Ok { report: Box::new(report), modified },
        Err(reason) => ReadOutcome::Unusable { reason },
    }
}

/// A report's identity and alerts only, for readers that need nothing else (the
/// notifier): checks, metrics and details are skipped while parsing, never built in
/// memory, which matters for reports of several megabytes.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct ReportAlerts {
    pub schema_version: u32,
    pub component: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub alerts: Vec<super::Alert>,
}

/// [`read_report`] for [`ReportAlerts`]; `Err` says why the file is unusable.
pub fn read_report_alerts(path: &Path) -> Result<ReportAlerts, String> {
    read_as::<ReportAlerts>(path, |r| r.schema_version)
}

fn read_as<T: serde::de::DeserializeOwned>(path: &Path, version: impl Fn(&T) -> u32) -> Result<T, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("no report yet ({} is missing)", path.display()));
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(format!("{} is empty", path.display()));
    }
    match serde_json::from_slice::<T>(&bytes) {
        Ok(r) if version(&r) != super::SCHEMA_VERSION => Err(format!(
            "{} has schema_version {}, this build reads {}",
            path.display(),
            version(&r),
            super::SCHEMA_VERSION
        )),
        Ok(r) => Ok(r),
        Err(e) => Err(format!("{} is not a valid report: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_empty_and_malformed_are_unusable_with_reason() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("r.json");
        let reason = |p: &Path| match read_report(p) {
            ReadOutcome::Unusable { reason } => reason,
            ReadOutcome::Ok { .. } => "ok".into(),
        };
        assert!(reason(&p).contains("missing"));
        std::fs::write(&p, "")?;
        assert!(reason(&p).contains("empty"));
        std::fs::write(&p, "{\"schema_version\": 1, \"comp")?;
        assert!(reason(&p).contains("not a valid report"));
        std::fs::write(&p, [0xff, 0xfe, 0x00])?;
        assert!(reason(&p).contains("not a valid report"));
        Ok(())
    }

    #[test]
    fn alerts_only_reading_skips_the_rest_and_checks_the_schema() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("r.json");
        std::fs::write(
            &p,
            r#"{"schema_version": 1, "component": "x", "host": "h", "checks": [{"anything": [1, {"deep": true}]}],
                "details": {"big": "table"}, "alerts": [{"fingerprint": "x/a", "level": "warning", "title": "t",
                "detail": "d", "since": "2026-11-27T03:00:00Z"}]}"#,
        )?;
        let r = read_report_alerts(&p).map_err(std::io::Error::other)?;
        assert_eq!((r.component.as_str(), r.host.as_str(), r.alerts.len()), ("x", "h", 1));
        assert_eq!(r.alerts[0].fingerprint, "x/a");
        std::fs::write(&p, r#"{"schema_version": 2, "component": "x"}"#)?;
        assert!(read_report_alerts(&p).is_err_and(|e| e.contains("schema_version 2")));
        assert!(read_report_alerts(&dir.path().join("none.json")).is_err_and(|e| e.contains("missing")));
        Ok(())
    }
}
