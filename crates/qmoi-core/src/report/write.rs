//! Atomic report writing and history files.

use super::Report;
use chrono::{DateTime, Utc};
use fs_err as fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot serialize report: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("cannot write report {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Write `bytes` to `path` so that a reader sees either the old or the new file, never a
/// torn one: write a temp file in the same folder, fsync it, rename over `path`, then fsync
/// the folder so the rename survives a crash. On failure (disk full…) the temp file is
/// removed and the old `path` is left as it was.
pub fn write_json_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// [`write_json_atomic`] with the content streamed by `fill` into the temp file (through a
/// buffer), so a large report is never held in memory as one byte string.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<(), WriteError> {
    let io = |source: std::io::Error| WriteError::Io { path: path.to_path_buf(), source };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // A dot-prefixed name, so `*_latest.json` globs never match a temp file.
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        let mut w = std::io::BufWriter::with_capacity(64 * 1024, f);
        fill(&mut w)?;
        let f = w.into_inner().map_err(std::io::IntoInnerError::into_error)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // fsync the directory entry; failing to open a dir for sync is not fatal
        // (some filesystems refuse it), the data itself is already durable.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// How many history files to keep, and for how long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistoryPolicy {
    /// Write a history file at all.
    pub enabled: bool,
    /// Keep at most this many `<id>_report_*.json` files (newest kept).
    pub keep: usize,
    /// Delete history files older than this.
    pub max_age: Duration,
    /// Write at most one history file per this period (0 = every report).
    pub min_spacing: Duration,
}

impl Default for HistoryPolicy {
    fn default() -> Self {
        Self { enabled: true, keep: 200, max_age: Duration::from_secs(7 * 86_400), min_spacing: Duration::ZERO }
    }
}

/// Writes one component's reports into a report directory.
#[derive(Debug)]
pub struct ReportWriter {
    dir: PathBuf,
    component: String,
    policy: HistoryPolicy,
    last_history: Option<DateTime<Utc>>,
}

impl ReportWriter {
    pub fn new(dir: impl Into<PathBuf>, component: &str, policy: HistoryPolicy) -> Self {
        Self { dir: dir.into(), component: component.to_string(), policy, last_history: None }
    }

    pub fn latest_path(&self) -> PathBuf {
        self.dir.join(crate::component::latest_report_name(&self.component))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Write `<id>_latest.json` atomically, then a history copy and pruning per policy.
    /// History problems are logged, not returned: the latest report is what matters.
    pub fn write(&mut self, report: &Report) -> Result<PathBuf, WriteError> {
        fs::create_dir_all(&self.dir).map_err(|source| WriteError::Io { path: self.dir.clone(), source })?;
        let latest = self.latest_path();
        let json = |w: &mut std::io::BufWriter<std::fs::File>| report.write_json(w).map_err(std::io::Error::from);
        write_atomic_with(&latest, json)?;
        if self.policy.enabled && self.history_due(report.generated_at) {
            let hist = self.dir.join(format!(
                "{}_report_{}.json",
                self.component,
                report.generated_at.format("%Y%m%d_%H%M%S")
            ));
            // The history copy is the file just written (a hard link: no second
            // serialization, and exactly the same content); a copy where links fail.
            let _ = fs::remove_file(&hist);
            let linked = fs::hard_link(&latest, &hist).is_ok();
            match if linked { Ok(()) } else { write_atomic_with(&hist, json) } {
                Ok(()) => self.last_history = Some(report.generated_at),
                Err(e) => tracing::warn!(error = %e, "Cannot write history report."),
            }
            self.prune();
        }
        Ok(latest)
    }

    fn history_due(&self, at: DateTime<Utc>) -> bool {
        match self.last_history {
            None => true,
            Some(last) => {
                let since = (at - last).to_std().unwrap_or(Duration::ZERO);
                since >= self.policy.min_spacing && at.timestamp() != last.timestamp()
            }
        }
    }

    /// Delete history files beyond `keep` (oldest first) or older than `max_age`.
    pub fn prune(&self) {
        let prefix = format!("{}_report_", self.component);
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot list report directory for pruning.");
                return;
            }
        };
        // Names embed the UTC time, so sorting by name sorts by age.
        let mut files: Vec<(String, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (name.starts_with(&prefix) && name.ends_with(".json")).then(|| (name, e.path()))
            })
            .collect();
        files.sort();
        let now = SystemTime::now();
        let excess = files.len().saturating_sub(self.policy.keep);
        for (i, (_, path)) in files.iter().enumerate() {
            let too_old = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age > self.policy.max_age);
            if (i < excess || too_old)
                && let Err(e) = fs::remove_file(path)
            {
                tracing::warn!(error = %e, "Cannot prune history report.");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;

    fn report(at: DateTime<Utc>) -> Report {
        Report {
            schema_version: 1,
            component: "demo".into(),
            host: "h".into(),
            generated_at: at,
            interval_s: 1,
            duration_ms: 0,
            status: Status::Ok,
            summary: "0 checks ok".into(),
            checks: vec![],
            metrics: Default::default(),
            alerts: vec![],
            details: crate::report::Details::default(),
            streamed: Default::default(),
        }
    }

    #[test]
    fn writes_latest_and_prunes_history_by_count() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let policy = HistoryPolicy { keep: 3, ..HistoryPolicy::default() };
        let mut w = ReportWriter::new(dir.path(), "demo", policy);
        let t0 = DateTime::parse_from_rfc3339("2026-11-27T03:00:00Z")?.with_timezone(&Utc);
        for i in 0..6 {
            w.write(&report(t0 + chrono::Duration::seconds(i)))?;
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                "demo_latest.json",
                "demo_report_20261127_030003.json",
                "demo_report_20261127_030004.json",
                "demo_report_20261127_030005.json",
            ]
        );
        Ok(())
    }

    #[test]
    fn failed_write_leaves_old_file_and_no_temp() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let target = dir.path().join("x.json");
        write_json_atomic(&target, b"{\"old\":1}")?;
        // Renaming a file over a non-empty directory fails: a stand-in for a failed write.
        let blocked = dir.path().join("d.json");
        std::fs::create_dir(&blocked)?;
        std::fs::write(blocked.join("keep"), b"")?;
        let err = write_json_atomic(&blocked, b"{}").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("d.json"), "error names the path: {err}");
        assert_eq!(std::fs::read(&target)?, b"{\"old\":1}");
        let temps = std::fs::read_dir(dir.path())?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .count();
        assert_eq!(temps, 0);
        Ok(())
    }
}
