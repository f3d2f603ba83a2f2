//! Restore tests: extract the archive into a temp folder (never outside it, never more than
//! `max_restore_bytes`), compare with a manifest inside the archive or with the source
//! folder, and remove the temp folder whatever happened.

use crate::verify::archive::{self, EntryKind, Format};
use serde::Serialize;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreOutcome {
    pub files: u64,
    pub bytes: u64,
    pub compared: u64,
    /// Entries not restored: links, devices, unsafe paths.
    pub skipped: u64,
    /// What did not match, first ones only.
    pub problems: Vec<String>,
    pub problem_count: u64,
    /// Source files changed after the backup was taken (not compared).
    pub newer_in_source: u64,
}

/// What to compare the restored files with.
#[derive(Debug, Clone)]
pub enum Reference {
    /// A `sha256  path` (or BLAKE3, by the file name containing "b3") list inside the archive.
    Manifest(String),
    /// The source folder; `root` is the folder inside the archive that corresponds to it.
    /// Files changed after `taken` (the backup's time) are expected to differ: skipped.
    Source { dir: PathBuf, root: String, sample: usize, taken: std::time::SystemTime },
}

/// Removes the folder when dropped: a failed or interrupted test leaves nothing behind.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.0.display(), error = %e, "Cannot remove the restore test folder.");
        }
    }
}

/// Why a restore test did not produce an outcome.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The archive holds more than `max_restore_bytes`: the test was stopped, nothing is
    /// known to be wrong with the backup.
    #[error("{0}")]
    TooLarge(String),
    /// The archive could not be read or restored, or the comparison could not run.
    #[error("{0}")]
    Failed(String),
}

pub fn restore_test(
    path: &Path,
    format: Format,
    reference: &Reference,
    restore_dir: &Path,
    max_bytes: u64,
) -> Result<RestoreOutcome, RestoreError> {
    let name = format!(
        "{}-{}-{}",
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );
    let dir = restore_dir.join(name);
    fs_err::create_dir_all(&dir).map_err(|e| RestoreError::Failed(e.to_string()))?;
    let guard = TempDir(dir);
    let root = guard.0.clone();
    let mut out = RestoreOutcome::default();
    let mut written = 0u64;
    let mut too_large = false;
    let restored = archive::each_entry(path, format, |mut e| {
        let Some(rel) = safe_relative(&e.path) else {
            out.skipped += 1;
            return archive::drain(&mut e, |_| Ok(()));
        };
        let dest = root.join(&rel);
        match e.kind {
            EntryKind::Dir => {
                fs_err::create_dir_all(&dest).map_err(|e| e.to_string())?;
                Ok(0)
            }
            EntryKind::File => {
                if let Some(parent) = dest.parent() {
                    fs_err::create_dir_all(parent).map_err(|e| e.to_string())?;
                }
                let mut f = std::io::BufWriter::new(fs_err::File::create(&dest).map_err(|e| e.to_string())?);
                let n = archive::drain(&mut e, |chunk| {
                    written += chunk.len() as u64;
                    if written > max_bytes {
                        too_large = true;
                        return Err(format!(
                            "the restore would exceed max_restore_bytes ({}); raise it to test this archive",
                            qmoi_core::human::bytes(max_bytes as f64)
                        ));
                    }
                    f.write_all(chunk).map_err(|e| format!("cannot write {}: {e}", dest.display()))
                })?;
                f.flush().map_err(|e| format!("cannot write {}: {e}", dest.display()))?;
                out.files += 1;
                out.bytes += n;
                Ok(n)
            }
            EntryKind::Symlink | EntryKind::Other => {
                out.skipped += 1;
                archive::drain(&mut e, |_| Ok(()))
            }
        }
    });
    if let Err(e) = restored {
        return Err(if too_large { RestoreError::TooLarge(e) } else { RestoreError::Failed(e) });
    }
    match reference {
        Reference::Manifest(m) => compare_manifest(&root, m, &mut out),
        Reference::Source { dir, root: inner, sample, taken } => {
            compare_source(&root.join(inner), dir, *sample, *taken, &mut out)
        }
    }
    .map_err(RestoreError::Failed)?;
    drop(guard);
    Ok(out)
}

/// Archive member paths are relative and stay inside the restore folder: absolute paths
/// and `..` are refused (a hostile or broken archive must not write elsewhere).
fn safe_relative(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

fn problem(out: &mut RestoreOutcome, text: String) {
    out.problem_count += 1;
    if out.problems.len() < 20 {
        out.problems.push(text);
    }
}

fn compare_manifest(root: &Path, manifest: &str, out: &mut RestoreOutcome) -> Result<(), String> {
    let path = root.join(manifest);
    let text =
        std::fs::read_to_string(&path).map_err(|_| format!("the manifest '{manifest}' is not in the archive"))?;
    let algo = if manifest.to_ascii_lowercase().contains("b3") {
        crate::verify::checksum::Algo::Blake3
    } else {
        crate::verify::checksum::Algo::Sha256
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Some((hex, name)) = line.split_once(char::is_whitespace) else { continue };
        let name = name.trim_start().trim_start_matches('*');
        let Some(rel) = safe_relative(Path::new(name)) else {
            problem(out, format!("unsafe path in the manifest: {name}"));
            continue;
        };
        let file = root.join(rel);
        out.compared += 1;
        match crate::verify::checksum::hash_file(&file, algo) {
            Ok(h) if h.eq_ignore_ascii_case(hex) => {}
            Ok(_) => problem(out, format!("{name}: content differs from the manifest")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                problem(out, format!("{name}: in the manifest, missing from the archive"))
            }
            Err(e) => problem(out, format!("{name}: {e}")),
        }
    }
    Ok(())
}

fn compare_source(
    restored: &Path,
    source: &Path,
    sample: usize,
    taken: std::time::SystemTime,
    out: &mut RestoreOutcome,
) -> Result<(), String> {
    let mut files = Vec::new();
    let mut stack = vec![source.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(|e| format!("cannot list {}: {e}", d.display()))?;
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let newer = e.metadata().and_then(|m| m.modified()).is_ok_and(|m| m > taken);
                if newer {
                    out.newer_in_source += 1;
                } else {
                    files.push(e.path());
                }
            }
        }
    }
    files.sort();
    // An even spread over the sorted list, so a sample covers the whole tree.
    let chosen: Vec<&PathBuf> = if sample == 0 || files.len() <= sample {
        files.iter().collect()
    } else {
        (0..sample).map(|i| &files[i * files.len() / sample]).collect()
    };
    let algo = crate::verify::checksum::Algo::Blake3;
    for f in chosen {
        let rel = f.strip_prefix(source).unwrap_or(f);
        out.compared += 1;
        let copy = restored.join(rel);
        match (crate::verify::checksum::hash_file(f, algo), crate::verify::checksum::hash_file(&copy, algo)) {
            (Ok(a), Ok(b)) if a == b => {}
            (Ok(_), Ok(_)) => problem(out, format!("{}: differs from the source", rel.display())),
            (_, Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                problem(out, format!("{}: in the source, missing from the archive", rel.display()))
            }
            (Err(e), _) => problem(out, format!("{}: cannot read the source: {e}", rel.display())),
            (_, Err(e)) => problem(out, format!("{}: {e}", rel.display())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::safe_relative;
    use std::path::{Path, PathBuf};

    #[test]
    fn archive_paths_never_leave_the_restore_folder() {
        assert_eq!(safe_relative(Path::new("data/a.csv")), Some(PathBuf::from("data/a.csv")));
        assert_eq!(safe_relative(Path::new("./data/./a.csv")), Some(PathBuf::from("data/a.csv")));
        for hostile in ["../etc/passwd", "data/../../x", "/etc/passwd", ".", ""] {
            assert_eq!(safe_relative(Path::new(hostile)), None, "{hostile}");
        }
    }
}
