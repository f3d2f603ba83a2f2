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
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return ReadOutcome::Unusable { reason: format!("no report yet ({} is missing)", path.display()) };
        }
        Err(e) => {
            return ReadOutcome::Unusable { reason: format!("cannot read {}: {e}", path.display()) };
        }
    };
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return ReadOutcome::Unusable { reason: format!("{} is empty", path.display()) };
    }
    match serde_json::from_slice::<Report>(&bytes) {
        Ok(r) if r.schema_version != super::SCHEMA_VERSION => ReadOutcome::Unusable {
            reason: format!(
                "{} has schema_version {}, this build reads {}",
                path.display(),
                r.schema_version,
                super::SCHEMA_VERSION
            ),
        },
        Ok(report) => ReadOutcome::Ok { report: Box::new(report), modified },
        Err(e) => ReadOutcome::Unusable { reason: format!("{} is not a valid report: {e}", path.display()) },
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
}
