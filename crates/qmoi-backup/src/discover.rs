//! What a folder target holds: the backup files matching its pattern, newest first.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One backup: a file, or a repository snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct Backup {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    pub time: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

impl Backup {
    /// What identifies this exact backup for "already verified" (a rewritten file with
    /// the same name is a new backup).
    pub fn identity(&self) -> String {
        format!("{}|{}|{}", self.name, self.time.timestamp_nanos_opt().unwrap_or_default(), self.size.unwrap_or(0))
    }
}

/// Checksum sidecars and manifests are not backups.
pub fn is_checksum_file(name: &str) -> bool {
    const SUFFIXES: [&str; 5] = [".sha256", ".sha256sum", ".b3", ".md5", ".sha512"];
    const MANIFESTS: [&str; 3] = ["SHA256SUMS", "B3SUMS", "MD5SUMS"];
    SUFFIXES.iter().any(|s| name.ends_with(s)) || MANIFESTS.contains(&name)
}

/// Regular files in `dir` matching `pattern` (all but checksum files when None), newest
/// first by modification time. Symlinks are skipped (a `latest` link is not another
/// backup); a file that vanishes while listing is skipped.
pub fn list_folder(dir: &Path, pattern: Option<&globset::GlobMatcher>) -> Result<Vec<Backup>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_checksum_file(&name) || pattern.is_some_and(|p| !p.is_match(&name)) {
            continue;
        }
        let Ok(md) = entry.metadata() else { continue };
        if !md.is_file() {
            continue;
        }
        let time = md.modified().map(DateTime::<Utc>::from).unwrap_or_default();
        out.push(Backup { name, path: Some(entry.path()), time, size: Some(md.len()) });
    }
    out.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.name.cmp(&a.name)));
    Ok(out)
}
