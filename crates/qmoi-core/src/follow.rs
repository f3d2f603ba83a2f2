//! Following a growing log file across rotation (`tail -F` semantics), line by line.
//!
//! - First look: start `initial_read` bytes before the end (0 = at the end), at a line start.
//! - Rotation by rename (logrotate's default): when the path's inode changes, the rest of
//!   the old file is read from `<path>.1` if that is the old inode, then the new file from
//!   its start.
//! - Truncation in place (copytruncate): the file is read again from its start.
//! - At most `max_per_read` bytes per call, so a flood cannot stall a monitor; the rest
//!   is read on the next call. A line not yet ended by `\n` waits for its end.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    ino: Option<u64>,
    offset: u64,
    partial: Vec<u8>,
    initial_read: u64,
    max_per_read: u64,
    /// Lines handed out so far.
    pub lines: u64,
    /// Rotations seen so far.
    pub rotations: u64,
}

impl Follower {
    pub fn new(path: impl Into<PathBuf>, initial_read: u64) -> Self {
        Self {
            path: path.into(),
            ino: None,
            offset: 0,
            partial: Vec::new(),
            initial_read,
            max_per_read: 64 * 1024 * 1024,
            lines: 0,
            rotations: 0,
        }
    }

    /// Read at most this many bytes per call (default 64 MiB).
    #[must_use]
    pub fn with_max_per_read(mut self, bytes: u64) -> Self {
        self.max_per_read = bytes.max(1);
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Hand every complete new line to `each`. An error (missing file, no permission)
    /// names the path; the position is kept, so a file that comes back is followed on.
    pub fn read_lines(&mut self, mut each: impl FnMut(&str)) -> Result<(), String> {
        let md = std::fs::metadata(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))?;
        match self.ino {
            None => {
                self.ino = Some(md.ino());
                self.offset = md.len().saturating_sub(self.initial_read);
                let skip_partial = self.offset > 0;
                self.read_from(&self.path.clone(), skip_partial, &mut each)?;
            }
            Some(ino) if ino != md.ino() => {
                let rotated = PathBuf::from(format!("{}.1", self.path.display()));
                if std::fs::metadata(&rotated).is_ok_and(|r| r.ino() == ino) {
                    self.read_from(&rotated, false, &mut each)?;
                }
                if !self.partial.is_empty() {
                    let line = String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned();
                    self.lines += 1;
                    each(&line);
                }
                self.rotations += 1;
                self.ino = Some(md.ino());
                self.offset = 0;
                self.read_from(&self.path.clone(), false, &mut each)?;
            }
            Some(_) => {
                if md.len() < self.offset {
                    self.offset = 0;
                    self.partial.clear();
                    self.rotations += 1;
                }
                self.read_from(&self.path.clone(), false, &mut each)?;
            }
        }
        Ok(())
    }

    fn read_from(&mut self, path: &Path, skip_partial_line: bool, each: &mut impl FnMut(&str)) -> Result<(), String> {
        let err = |e: std::io::Error| format!("{}: {e}", path.display());
        let mut f = std::fs::File::open(path).map_err(err)?;
        f.seek(SeekFrom::Start(self.offset)).map_err(err)?;
        let mut reader = std::io::BufReader::with_capacity(256 * 1024, f.take(self.max_per_read));
        let mut buf = Vec::with_capacity(256 * 1024);
        let mut first = skip_partial_line;
        loop {
            buf.clear();
            let n = std::io::BufRead::read_until(&mut reader, b'\n', &mut buf).map_err(err)?;
            if n == 0 {
                break;
            }
            self.offset += n as u64;
            if buf.last() != Some(&b'\n') {
                self.partial.extend_from_slice(&buf);
                break;
            }
            if first {
                first = false;
                continue;
            }
            buf.pop();
            let line = if self.partial.is_empty() {
                String::from_utf8_lossy(&buf)
            } else {
                self.partial.extend_from_slice(&buf);
                let l = String::from_utf8_lossy(&self.partial).into_owned();
                self.partial.clear();
                std::borrow::Cow::Owned(l)
            };
            self.lines += 1;
            each(line.trim_end_matches('\r'));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(p: &Path, s: &str) {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(p).unwrap();
        f.write_all(s.as_bytes()).unwrap();
    }

    fn read(f: &mut Follower) -> Vec<String> {
        let mut v = Vec::new();
        f.read_lines(|l| v.push(l.to_string())).unwrap();
        v
    }

    #[test]
    fn follows_appends_partial_lines_rotation_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("access.log");
        append(&p, "old 1\nold 2\n");
        let mut f = Follower::new(&p, 0);
        assert!(read(&mut f).is_empty(), "starts at the end");
        append(&p, "a\nb");
        assert_eq!(read(&mut f), vec!["a"]);
        append(&p, "c\n");
        assert_eq!(read(&mut f), vec!["bc"]);
        append(&p, "d\n");
        std::fs::rename(&p, dir.path().join("access.log.1")).unwrap();
        append(&dir.path().join("access.log.1"), "e\n");
        append(&p, "f\n");
        assert_eq!(read(&mut f), vec!["d", "e", "f"]);
        assert_eq!(f.rotations, 1);
        append(&p, "a longer line\n");
        assert_eq!(read(&mut f), vec!["a longer line"]);
        std::fs::write(&p, "g\n").unwrap();
        assert_eq!(read(&mut f), vec!["g"], "truncated in place: read from the start");
        let mut tail = Follower::new(&p, 100);
        assert_eq!(read(&mut tail), vec!["g"], "initial_read covers the whole small file");
    }
}
