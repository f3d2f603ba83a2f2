//! What is recorded about one path, and content hashing.

use crate::config::Algorithm;
use crate::integrity::rules::{Attr, Attrs};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    Block,
    Char,
}

impl FileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::File => "file",
            FileKind::Dir => "dir",
            FileKind::Symlink => "symlink",
            FileKind::Fifo => "fifo",
            FileKind::Socket => "socket",
            FileKind::Block => "block device",
            FileKind::Char => "char device",
        }
    }
}

/// Metadata and content hash of one path, as stored in the baseline (short keys: a
/// baseline holds tens of thousands of these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    #[serde(rename = "k")]
    pub kind: FileKind,
    /// Permission bits including setuid/setgid/sticky (`st_mode & 0o7777`).
    #[serde(rename = "m")]
    pub mode: u32,
    #[serde(rename = "u")]
    pub uid: u32,
    #[serde(rename = "g")]
    pub gid: u32,
    #[serde(rename = "s")]
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    #[serde(rename = "t")]
    pub mtime: i64,
    /// Status change time: not compared, but a change triggers a rehash.
    #[serde(rename = "c")]
    pub ctime: i64,
    #[serde(rename = "i")]
    pub ino: u64,
    #[serde(rename = "h", default, skip_serializing_if = "Option::is_none", with = "hex32")]
    pub hash: Option<[u8; 32]>,
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub link: Option<Box<str>>,
    /// Why the content could not be read (permission denied, …).
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Box<str>>,
}

impl Meta {
    /// From `lstat` (symlinks are recorded as links, never followed).
    pub fn of(path: &Path, md: &std::fs::Metadata) -> Self {
        let ft = md.file_type();
        let kind = if ft.is_file() {
            FileKind::File
        } else if ft.is_dir() {
            FileKind::Dir
        } else if ft.is_symlink() {
            FileKind::Symlink
        } else if ft.is_fifo() {
            FileKind::Fifo
        } else if ft.is_socket() {
            FileKind::Socket
        } else if ft.is_block_device() {
            FileKind::Block
        } else {
            FileKind::Char
        };
        let link = if kind == FileKind::Symlink {
            std::fs::read_link(path).ok().map(|t| t.to_string_lossy().into_owned().into_boxed_str())
        } else {
            None
        };
        Self {
            kind,
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            size: if kind == FileKind::Dir { 0 } else { md.size() },
            mtime: md.mtime().saturating_mul(1_000_000_000).saturating_add(md.mtime_nsec()),
            ctime: md.ctime().saturating_mul(1_000_000_000).saturating_add(md.ctime_nsec()),
            ino: md.ino(),
            hash: None,
            link,
            error: None,
        }
    }

    /// Metadata that says the content may have changed since `prev` (the incremental
    /// scan's test: size, mtime, ctime, inode).
    pub fn looks_changed(&self, prev: &Meta) -> bool {
        self.kind != prev.kind
            || self.size != prev.size
            || self.mtime != prev.mtime
            || self.ctime != prev.ctime
            || self.ino != prev.ino
            || prev.error.is_some()
    }

    pub fn is_setid(&self) -> bool {
        self.kind == FileKind::File && self.mode & 0o6000 != 0
    }

    /// Differences from `base` in the attributes `attrs`, as (name, old, new).
    pub fn diff(&self, base: &Meta, attrs: Attrs) -> Vec<Change> {
        let mut out = Vec::new();
        let mut push = |attr: &'static str, old: String, new: String| out.push(Change { attr, old, new });
        if attrs.has(Attr::TYPE) && self.kind != base.kind {
            push("type", base.kind.as_str().into(), self.kind.as_str().into());
        }
        if attrs.has(Attr::HASH) && self.kind == FileKind::File && base.kind == FileKind::File {
            match (&base.hash, &self.hash, &self.error) {
                (Some(a), Some(b), _) if a != b => push("hash", short(a), short(b)),
                (Some(a), None, Some(e)) => push("hash", short(a), format!("unreadable ({e})")),
                _ => {}
            }
        }
        if attrs.has(Attr::SIZE) && self.size != base.size {
            push("size", base.size.to_string(), self.size.to_string());
        }
        if attrs.has(Attr::MODE) && (self.mode & 0o1777) != (base.mode & 0o1777) {
            push("mode", format!("{:04o}", base.mode), format!("{:04o}", self.mode));
        }
        if attrs.has(Attr::SUID) && (self.mode & 0o6000) != (base.mode & 0o6000) {
            push("suid", setid_name(base.mode), setid_name(self.mode));
        }
        if attrs.has(Attr::OWNER) && self.uid != base.uid {
            push("owner", base.uid.to_string(), self.uid.to_string());
        }
        if attrs.has(Attr::GROUP) && self.gid != base.gid {
            push("group", base.gid.to_string(), self.gid.to_string());
        }
        if attrs.has(Attr::MTIME) && self.mtime != base.mtime && base.kind != FileKind::Dir {
            push("mtime", time_text(base.mtime), time_text(self.mtime));
        }
        if attrs.has(Attr::INODE) && self.ino != base.ino {
            push("inode", base.ino.to_string(), self.ino.to_string());
        }
        if attrs.has(Attr::LINK) && self.link != base.link {
            let t = |l: &Option<Box<str>>| l.as_deref().unwrap_or("-").to_string();
            push("link", t(&base.link), t(&self.link));
        }
        out
    }
}

/// One attribute that differs from the baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub attr: &'static str,
    pub old: String,
    pub new: String,
}

fn setid_name(mode: u32) -> String {
    match (mode & 0o4000 != 0, mode & 0o2000 != 0) {
        (true, true) => "setuid+setgid".into(),
        (true, false) => "setuid".into(),
        (false, true) => "setgid".into(),
        (false, false) => "none".into(),
    }
}

fn short(h: &[u8; 32]) -> String {
    qmoi_core::human::hex(&h[..8])
}

fn time_text(ns: i64) -> String {
    let nanos = u32::try_from(ns.rem_euclid(1_000_000_000)).unwrap_or(0);
    chrono::DateTime::from_timestamp(ns.div_euclid(1_000_000_000), nanos)
        .map_or_else(|| ns.to_string(), |t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
}

/// Hash a regular file's content. Large files are memory-mapped and hashed by several
/// threads (BLAKE3 only); others are read in 64 KiB blocks, so memory stays bounded.
pub fn hash_file(path: &Path, algo: Algorithm, large: u64) -> std::io::Result<[u8; 32]> {
    let f = fs_err::File::open(path)?;
    let len = f.metadata()?.len();
    match algo {
        Algorithm::Blake3 => {
            let mut h = blake3::Hasher::new();
            if len >= large {
                h.update_mmap_rayon(path)?;
            } else {
                read_blocks(f, |b| {
                    h.update(b);
                })?;
            }
            Ok(*h.finalize().as_bytes())
        }
        Algorithm::Sha256 => {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            read_blocks(f, |b| h.update(b))?;
            Ok(h.finalize().into())
        }
    }
}

thread_local! {
    /// One read buffer per hashing thread, not one allocation per file.
    static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 64 * 1024]);
}

fn read_blocks(mut f: fs_err::File, mut each: impl FnMut(&[u8])) -> std::io::Result<()> {
    BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        loop {
            match f.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => each(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    })
}

/// Serialize `Option<[u8; 32]>` as a hex string.
mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(h: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        match h {
            Some(h) => s.serialize_str(&qmoi_core::human::hex(h)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 32]>, D::Error> {
        let Some(text) = Option::<&str>::deserialize(d)? else {
            return Ok(None);
        };
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return Err(serde::de::Error::custom(format!("hash must be 64 hex digits, got {}", bytes.len())));
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16);
            let lo = (pair[1] as char).to_digit(16);
            match (hi, lo) {
                (Some(h), Some(l)) => out[i] = (h * 16 + l) as u8,
                _ => return Err(serde::de::Error::custom("hash is not hexadecimal")),
            }
        }
        Ok(Some(out))
    }
}
