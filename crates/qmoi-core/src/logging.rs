//! Logging: `tracing` to a size-rotated log file and to stderr.
//!
//! The file gets `info` and above (`debug` with `--debug`); stderr gets warnings and errors
//! only, unless `--verbose` (info) or `--debug`, so that `--check` output stays readable.
//! `RUST_LOG` overrides both when set.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Default bound of one log file before it rotates.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Rotated files kept (`name.1` … `name.N`).
pub const DEFAULT_KEEP: usize = 5;

/// A log file that rotates by size: `x.log` → `x.log.1` → … → `x.log.N` (oldest dropped).
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: Option<File>,
    size: u64,
}

impl RotatingFile {
    pub fn open(path: &Path, max_bytes: u64, keep: usize) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Self { path: path.to_path_buf(), max_bytes, keep, file: Some(file), size })
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        for i in (1..self.keep).rev() {
            let from = rotated(&self.path, i);
            if from.exists() {
                std::fs::rename(&from, rotated(&self.path, i + 1))?;
            }
        }
        if self.keep > 0 {
            std::fs::rename(&self.path, rotated(&self.path, 1))?;
        } else {
            std::fs::remove_file(&self.path)?;
        }
        self.file = Some(OpenOptions::new().create(true).append(true).open(&self.path)?);
        self.size = 0;
        Ok(())
    }
}

fn rotated(path: &Path, i: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.size > 0 && self.size + buf.len() as u64 > self.max_bytes {
            // A failed rotation must not lose the line: keep appending to the old file.
            if let Err(e) = self.rotate() {
                eprintln!("qmoi: cannot rotate log {}: {e}", self.path.display());
                if self.file.is_none() {
                    self.file = Some(OpenOptions::new().create(true).append(true).open(&self.path)?);
                }
            }
        }
        let f = self.file.as_mut().ok_or_else(|| io::Error::other("log file not open"))?;
        let n = f.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), Write::flush)
    }
}

/// Shared handle so `tracing` can write to the rotating file from any thread.
#[derive(Debug, Clone)]
pub struct SharedLog(Arc<Mutex<RotatingFile>>);

impl SharedLog {
    pub fn new(file: RotatingFile) -> Self {
        Self(Arc::new(Mutex::new(file)))
    }
}

/// Writer for one event; the fmt layer writes a whole event with one `write_all`.
pub struct LogWriter<'a>(&'a SharedLog);

impl Write for LogWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let line = escape_event(buf);
        // A poisoned lock only means another thread panicked mid-write; keep logging.
        let mut f = self.0.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f.write_all(&line)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut f = self.0.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f.flush()
    }
}

impl<'a> MakeWriter<'a> for SharedLog {
    type Writer = LogWriter<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        LogWriter(self)
    }
}

/// One formatted event with its control characters made visible
/// ([`crate::human::escape_control`]), but for the newline that ends it. Log lines carry
/// observed data (process names, paths, alert titles): printed raw, an escape sequence in
/// one would drive the terminal of whoever reads the log, and a newline would forge a
/// line of its own.
pub fn escape_event(buf: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let (body, end) = match buf.strip_suffix(b"\n") {
        Some(b) => (b, &b"\n"[..]),
        None => (buf, &b""[..]),
    };
    let clean = |b: &[u8]| !b.iter().any(|c| *c < 0x20 || *c == 0x7f || *c == 0xc2);
    if clean(body) {
        return std::borrow::Cow::Borrowed(buf);
    }
    let text = String::from_utf8_lossy(body);
    let mut out = crate::human::escape_control(&text).into_owned().into_bytes();
    out.extend_from_slice(end);
    std::borrow::Cow::Owned(out)
}

/// Standard error, with each event escaped as in the log file.
struct EscapedStderr;

impl Write for EscapedStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::stderr().lock().write_all(&escape_event(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// Verbosity chosen on the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Verbosity {
    pub debug: bool,
    pub verbose: bool,
}

/// Install the global subscriber: stderr plus `log_dir/log_file` when the folder can be
/// created. Returns a note to print when the file could not be opened (logging then goes
/// to stderr only, which is better than refusing to monitor).
pub fn init(log_dir: &Path, log_file: &str, v: Verbosity) -> Option<String> {
    let file_level = if v.debug { "debug" } else { "info" };
    let err_level = if v.debug {
        "debug"
    } else if v.verbose {
        "info"
    } else {
        "warn"
    };
    let env = std::env::var("RUST_LOG").ok();
    let filter =
        |lvl: &str| env.as_deref().and_then(|e| EnvFilter::try_new(e).ok()).unwrap_or_else(|| EnvFilter::new(lvl));
    let path = log_dir.join(log_file);
    let file =
        std::fs::create_dir_all(log_dir).and_then(|()| RotatingFile::open(&path, DEFAULT_MAX_BYTES, DEFAULT_KEEP));
    // No colours: they are escape sequences too, and every escape sequence is made visible.
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_writer(|| EscapedStderr)
        .with_ansi(false)
        .with_target(false)
        .with_filter_from(filter(err_level));
    match file {
        Ok(f) => {
            let file_layer = tracing_subscriber::fmt::layer()
                .with_writer(SharedLog::new(f))
                .with_ansi(false)
                .with_target(false)
                .with_filter_from(filter(file_level));
            let _ = tracing_subscriber::registry().with(stderr_layer).with(file_layer).try_init();
            None
        }
        Err(e) => {
            let _ = tracing_subscriber::registry().with(stderr_layer).try_init();
            Some(format!("cannot open log file {}: {e}; logging to stderr only", path.display()))
        }
    }
}

/// Small extension so both layers read the same way above.
trait WithFilter<S>: Sized {
    fn with_filter_from(self, f: EnvFilter) -> tracing_subscriber::filter::Filtered<Self, EnvFilter, S>;
}

impl<S, L> WithFilter<S> for L
where
    S: tracing::Subscriber,
    L: tracing_subscriber::Layer<S>,
{
    fn with_filter_from(self, f: EnvFilter) -> tracing_subscriber::filter::Filtered<Self, EnvFilter, S> {
        tracing_subscriber::Layer::with_filter(self, f)
    }
}

#[cfg(test)]
mod tests {
    /// Regression: a process named with escape sequences put them raw into log lines.
    #[test]
    fn events_are_escaped_but_keep_their_line_end() {
        assert_eq!(&*escape_event(b"plain line \xc2\xb0C\n"), b"plain line \xc2\xb0C\n");
        assert_eq!(
            &*escape_event("pid 5 runs /dev/shm/e\x1b[2J\u{9b}1m\nforged\n".as_bytes()),
            b"pid 5 runs /dev/shm/e\\x1b[2J\\u{9b}1m\\nforged\n"
        );
    }

    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_bounded_count() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("m.log");
        let mut f = RotatingFile::open(&path, 100, 2)?;
        for i in 0..20 {
            writeln!(f, "line {i:03} {}", "x".repeat(30))?;
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec!["m.log", "m.log.1", "m.log.2"]);
        for n in &names {
            assert!(std::fs::metadata(dir.path().join(n))?.len() <= 100);
        }
        let newest = std::fs::read_to_string(&path)?;
        assert!(newest.contains("line 019"));
        Ok(())
    }
}
