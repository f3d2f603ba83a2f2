//! Reading reports written by other processes, tolerantly and defensively.
//!
//! A report file is outside input: anyone who can write the report folder can put a FIFO,
//! a device, a symlink to `/dev/zero` or a file of gigabytes under a `*_latest.json` name.
//! So a report is read only when it is a regular file (checked on the open descriptor, not
//! by name, so a swap between the check and the read changes nothing), it is opened
//! non-blocking (opening a FIFO for reading would otherwise wait for a writer forever),
//! and at most [`max_read_bytes`] are read. Anything else is "unusable, because …", never
//! an error that stops the reader and never a blocked thread.

use super::Report;
use std::io::Read as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// The default cap on a report file's size: far above any real report (5,000 endpoints
/// with their details write ~10 MiB) and far below what hurts the readers.
pub const DEFAULT_MAX_READ_BYTES: u64 = 64 * 1024 * 1024;

static MAX_READ_BYTES: AtomicU64 = AtomicU64::new(DEFAULT_MAX_READ_BYTES);

/// The largest report file this process reads (see [`set_max_read_bytes`]).
pub fn max_read_bytes() -> u64 {
    MAX_READ_BYTES.load(Ordering::Relaxed)
}

/// Set the cap for this process (the supervisor's `[report] max_read_bytes`). A report
/// larger than this is unusable, with its size and the key to raise in the reason.
pub fn set_max_read_bytes(bytes: u64) {
    MAX_READ_BYTES.store(bytes.max(1), Ordering::Relaxed);
}

/// Open `path` for reading if it is a regular file of at most `max` bytes, and read it.
/// Returns the bytes and the file's modification time, or why it cannot be used. The
/// open never blocks (FIFO) and the read never goes past `max` (a file that grows).
pub fn read_regular_file(path: &Path, max: u64) -> Result<(Vec<u8>, Option<SystemTime>), String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC).open(path);
    let file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("no report yet ({} is missing)", path.display()));
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let meta = file.metadata().map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!(
            "{} is not a regular file (it is {}); only regular files are read as reports",
            path.display(),
            file_kind(&meta)
        ));
    }
    if meta.len() > max {
        return Err(format!(
            "{} is {} bytes, more than the {} bytes a report may have (raise [report] max_read_bytes in master_monitor.toml if it is genuine)",
            path.display(),
            meta.len(),
            max
        ));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > max {
        return Err(format!("{} grew past the {} bytes a report may have while it was read", path.display(), max));
    }
    Ok((bytes, meta.modified().ok()))
}

/// What kind of file this is, for a message.
fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

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
    match read_report_bytes(path) {
        Ok((report, _, modified)) => ReadOutcome::Ok { report: Box::new(report), modified },
        Err(reason) => ReadOutcome::Unusable { reason },
    }
}

/// [`read_report`] that also gives the file's bytes, so a server can send the report as
/// it was written instead of encoding the decoded copy again.
pub fn read_report_bytes(path: &Path) -> Result<(Report, Vec<u8>, Option<SystemTime>), String> {
    let (bytes, modified) = read_regular_file(path, max_read_bytes())?;
    let report = decode::<Report>(path, &bytes, |r| r.schema_version)?;
    Ok((report, bytes, modified))
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
    let (bytes, _) = read_regular_file(path, max_read_bytes())?;
    decode(path, &bytes, version)
}

fn decode<T: serde::de::DeserializeOwned>(path: &Path, bytes: &[u8], version: impl Fn(&T) -> u32) -> Result<T, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(format!("{} is empty", path.display()));
    }
    match serde_json::from_slice::<T>(bytes) {
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

    /// Regression: a FIFO under a report name wedged the supervisor (open blocked forever),
    /// a symlink to /dev/zero took readers to gigabytes. Both are now refused at once.
    #[test]
    fn fifos_devices_and_oversized_files_are_refused_without_blocking() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let fifo = dir.path().join("x_latest.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).map_err(std::io::Error::from)?;
        // The read runs on a thread: were it to block, the test fails instead of hanging.
        let (tx, rx) = std::sync::mpsc::channel();
        let f = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(read_report_alerts(&f));
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(10)).map_err(std::io::Error::other)?;
        assert!(got.as_ref().is_err_and(|e| e.contains("a FIFO")), "{got:?}");
        let zero = dir.path().join("zero_latest.json");
        std::os::unix::fs::symlink("/dev/zero", &zero)?;
        match read_report(&zero) {
            ReadOutcome::Unusable { reason } => assert!(reason.contains("character device"), "{reason}"),
            ReadOutcome::Ok { .. } => panic!("/dev/zero read as a report"),
        }
        let big = dir.path().join("big_latest.json");
        std::fs::write(&big, vec![b' '; 2048])?;
        assert!(read_regular_file(&big, 1024).is_err_and(|e| e.contains("2048 bytes") && e.contains("max_read_bytes")));
        assert!(read_regular_file(&big, 4096).is_ok());
        assert!(read_regular_file(dir.path(), 4096).is_err_and(|e| e.contains("directory")));
        Ok(())
    }
}
