//! The file baseline: `<data_dir>/security_baseline.qmb`, a sealed JSON document.

use crate::config::Algorithm;
use crate::integrity::meta::Meta;
use crate::seal::{self, Key, SealError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The accepted state of every watched path.
#[derive(Debug, Serialize, Deserialize)]
pub struct Baseline {
    pub version: u32,
    pub algorithm: Algorithm,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub files: HashMap<Box<str>, Meta>,
}

/// Identity of the baseline file on disk, to notice when another process (`--accept`)
/// replaced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stamp {
    ino: u64,
    len: u64,
    mtime_ns: i64,
}

impl Stamp {
    pub fn of(path: &Path) -> Option<Self> {
        let md = std::fs::metadata(path).ok()?;
        Some(Self { ino: md.ino(), len: md.len(), mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec() })
    }
}

impl Baseline {
    pub fn new(algorithm: Algorithm, files: HashMap<Box<str>, Meta>) -> Self {
        let now = Utc::now();
        Self { version: 1, algorithm, created_at: now, updated_at: now, files }
    }

    /// Load and verify; `Ok(None)` when there is no baseline yet.
    pub fn load(path: &Path, key: &Key) -> Result<Option<Self>, String> {
        let body = match seal::read(path, key) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(None),
            Err(e @ (SealError::Tampered { .. } | SealError::NotSealed { .. })) => return Err(e.to_string()),
            Err(SealError::Io(e)) => return Err(format!("cannot read the baseline: {e}")),
        };
        serde_json::from_slice(&body).map(Some).map_err(|e| format!("{}: not a valid baseline: {e}", path.display()))
    }

    /// Write sealed and atomically; returns the new file's stamp.
    pub fn save(&self, path: &Path, key: &Key) -> Result<Option<Stamp>, String> {
        // Sorted by path, so that two baselines of the same tree are the same file.
        let mut sorted: Vec<(&str, &Meta)> = self.files.iter().map(|(k, m)| (&**k, m)).collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let doc = Sorted {
            version: self.version,
            algorithm: self.algorithm,
            created_at: self.created_at,
            updated_at: self.updated_at,
            files: sorted,
        };
        let body = serde_json::to_vec(&doc).map_err(|e| e.to_string())?;
        seal::write(path, key, &body)?;
        Ok(Stamp::of(path))
    }
}

#[derive(Serialize)]
struct Sorted<'a> {
    version: u32,
    algorithm: Algorithm,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    #[serde(serialize_with = "as_map")]
    files: Vec<(&'a str, &'a Meta)>,
}

fn as_map<S: serde::Serializer>(v: &[(&str, &Meta)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(v.iter().map(|(k, m)| (k, m)))
}
