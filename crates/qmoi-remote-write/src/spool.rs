//! The durable buffer of one receiver: every request body waits in its own file,
//! `data/remote_write/<receiver>/<seq>-<samples>.rw` (written to a temporary name, then
//! renamed), until the receiver took it or refused it. A supervisor killed with -9 finds
//! its queue again at start; sequence numbers keep the order across restarts.
//!
//! Every body goes through the disk, also while the receiver answers: one small write
//! per sampling interval buys "nothing queued is lost when the process dies". Files are
//! not fsynced: a crash of the process loses nothing, a power cut may lose the last
//! seconds.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// One queued request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub samples: u64,
    pub bytes: u64,
}

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    queue: VecDeque<Entry>,
    bytes: u64,
    next_seq: u64,
}

fn file_name(e: &Entry) -> String {
    format!("{:020}-{}.rw", e.seq, e.samples)
}

fn parse_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".rw")?;
    let (seq, samples) = stem.split_once('-')?;
    Some((seq.parse().ok()?, samples.parse().ok()?))
}

impl Spool {
    /// Open (or create) the folder and load its queue. Leftover temporary files (a crash
    /// between write and rename) are removed.
    pub fn open(dir: &Path) -> Result<Self, String> {
        fs_err::create_dir_all(dir).map_err(|e| e.to_string())?;
        let mut queue = Vec::new();
        for entry in fs_err::read_dir(dir).map_err(|e| e.to_string())?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            let Some((seq, samples)) = parse_name(&name) else {
                tracing::warn!(file = %entry.path().display(), "Not a remote-write buffer file; left alone.");
                continue;
            };
            let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
            queue.push(Entry { seq, samples, bytes });
        }
        queue.sort_by_key(|e| e.seq);
        let bytes = queue.iter().map(|e| e.bytes).sum();
        let next_seq = queue.last().map_or(1, |e| e.seq + 1);
        Ok(Self { dir: dir.to_path_buf(), queue: queue.into(), bytes, next_seq })
    }

    fn path(&self, e: &Entry) -> PathBuf {
        self.dir.join(file_name(e))
    }

    /// Queue a request body holding `samples` samples.
    pub fn push(&mut self, body: &[u8], samples: u64) -> Result<(), String> {
        let e = Entry { seq: self.next_seq, samples, bytes: body.len() as u64 };
        let path = self.path(&e);
        let tmp = path.with_extension("tmp");
        let written = fs_err::write(&tmp, body).and_then(|()| fs_err::rename(&tmp, &path));
        if let Err(err) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(err.to_string());
        }
        self.next_seq += 1;
        self.bytes += e.bytes;
        self.queue.push_back(e);
        Ok(())
    }

    /// The oldest queued request.
    pub fn head(&self) -> Option<Entry> {
        self.queue.front().copied()
    }

    pub fn read(&self, e: &Entry) -> Result<Vec<u8>, String> {
        fs_err::read(self.path(e)).map_err(|e| e.to_string())
    }

    /// Forget `e` (sent, refused, or unreadable) and delete its file.
    pub fn remove(&mut self, e: &Entry) {
        if let Some(i) = self.queue.iter().position(|x| x.seq == e.seq) {
            self.queue.remove(i);
            self.bytes = self.bytes.saturating_sub(e.bytes);
        }
        if let Err(err) = std::fs::remove_file(self.path(e))
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(file = %self.path(e).display(), error = %err, "Cannot remove a remote-write buffer file.");
        }
    }

    /// Drop the oldest requests until the buffer holds at most `max` bytes, sparing the
    /// one being sent (`in_flight`). Returns the samples dropped.
    pub fn trim(&mut self, max: u64, in_flight: Option<u64>) -> u64 {
        let mut dropped = 0;
        while self.bytes > max {
            let Some(victim) = self.queue.iter().find(|e| Some(e.seq) != in_flight).copied() else { break };
            dropped += victim.samples;
            self.remove(&victim);
        }
        dropped
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_across_reopen_and_trims_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path()).unwrap();
        for i in 0..5u8 {
            s.push(&[i; 100], 10).unwrap();
        }
        std::fs::write(dir.path().join("00000000000000000099-1.tmp"), b"torn").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
        drop(s);
        let mut s = Spool::open(dir.path()).unwrap();
        assert_eq!((s.len(), s.bytes()), (5, 500));
        assert!(!dir.path().join("00000000000000000099-1.tmp").exists());
        let head = s.head().unwrap();
        assert_eq!(s.read(&head).unwrap(), vec![0u8; 100]);
        // Over 250 bytes: the oldest go, except the one in flight.
        assert_eq!(s.trim(250, Some(head.seq)), 30);
        assert_eq!(s.len(), 2);
        assert_eq!(s.head().unwrap().seq, head.seq);
        s.remove(&head);
        assert_eq!(s.read(&s.head().unwrap()).unwrap(), vec![4u8; 100]);
        s.push(&[9; 10], 1).unwrap();
        let s = Spool::open(dir.path()).unwrap();
        assert_eq!(s.len(), 2, "new pushes continue the sequence after a reopen");
        assert!(dir.path().join("notes.txt").exists());
    }
}
