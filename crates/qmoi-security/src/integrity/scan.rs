//! Walking the watched trees and hashing in parallel.

use crate::config::Algorithm;
use crate::integrity::meta::{FileKind, Meta, hash_file};
use crate::integrity::rules::{Attr, Rules};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Everything one walk saw.
#[derive(Debug, Default)]
pub struct Walk {
    pub entries: Vec<(Box<str>, Meta)>,
    /// Folders that could not be listed, with the reason.
    pub errors: Vec<(String, String)>,
}

/// Walk every root on `pool` (folders are listed in parallel; symlinks are recorded,
/// never followed; other file systems are entered, as AIDE does). A file that vanishes
/// between listing and `lstat` is skipped.
pub fn walk(pool: &rayon::ThreadPool, rules: &Rules) -> Walk {
    let roots = rules.walk_roots();
    pool.install(|| {
        roots
            .par_iter()
            .map(|(root, recursive)| {
                let mut w = Walk::default();
                walk_from(rules, root, *recursive, &mut w);
                w
            })
            .reduce(Walk::default, Walk::merge)
    })
}

impl Walk {
    fn merge(mut self, other: Walk) -> Walk {
        if self.entries.len() < other.entries.len() {
            return other.merge(self);
        }
        self.entries.extend(other.entries);
        self.errors.extend(other.errors);
        self
    }
}

/// Walk one path (a file, or a folder and everything under it). Call it inside
/// `pool.install` to list sub-folders on the pool's threads.
pub fn walk_from(rules: &Rules, start: &Path, recursive: bool, out: &mut Walk) {
    let md = match std::fs::symlink_metadata(start) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            out.errors.push((start.display().to_string(), e.to_string()));
            return;
        }
    };
    if rules.rule_for(start, md.is_dir()).is_none() {
        return;
    }
    out.entries.push((key(start), Meta::of(start, &md)));
    if md.is_dir() {
        let sub = walk_dir(rules, start, recursive);
        let taken = std::mem::take(out);
        *out = taken.merge(sub);
    }
}

/// Everything under `dir`; sub-folders are walked in parallel (rayon work stealing).
fn walk_dir(rules: &Rules, dir: &Path, recursive: bool) -> Walk {
    let mut out = Walk::default();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            out.errors.push((dir.display().to_string(), e.to_string()));
            return out;
        }
    };
    let mut subdirs: Vec<PathBuf> = Vec::new();
    for entry in rd {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        // DirEntry::metadata does not follow symlinks (fstatat, AT_SYMLINK_NOFOLLOW).
        let md = match entry.metadata() {
            Ok(md) => md,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                out.errors.push((path.display().to_string(), e.to_string()));
                continue;
            }
        };
        let is_dir = md.is_dir();
        let Some(rule) = rules.rule_for(&path, is_dir) else { continue };
        let descend = is_dir && rule.recursive && recursive;
        out.entries.push((key(&path), Meta::of(&path, &md)));
        if descend {
            subdirs.push(path);
        }
    }
    if !subdirs.is_empty() {
        let sub = subdirs.par_iter().map(|d| walk_dir(rules, d, recursive)).reduce(Walk::default, Walk::merge);
        out = out.merge(sub);
    }
    out
}

pub fn key(p: &Path) -> Box<str> {
    p.to_string_lossy().into_owned().into_boxed_str()
}

/// Counters a progress printer can read while hashing runs.
#[derive(Debug, Default)]
pub struct Progress {
    pub files: AtomicU64,
    pub bytes: AtomicU64,
}

/// Hash the regular files among `entries` that `need` says need it, on `pool`. A file
/// that cannot be read keeps no hash and says why in `error`; one that vanished is
/// dropped from the entries.
pub fn hash_entries(
    pool: &rayon::ThreadPool,
    rules: &Rules,
    entries: &mut Vec<(Box<str>, Meta)>,
    algo: Algorithm,
    large: u64,
    progress: &Progress,
    need: impl Fn(&str, &Meta) -> Option<Option<[u8; 32]>> + Sync,
) {
    pool.install(|| {
        entries.par_iter_mut().for_each(|(path, meta)| {
            if meta.kind != FileKind::File {
                return;
            }
            let hashed = rules.rule_for(Path::new(&**path), false).is_some_and(|r| r.attrs.has(Attr::HASH));
            if !hashed {
                return;
            }
            // `need` answers Some(known hash) to reuse a hash, None to hash now.
            if let Some(known) = need(path, meta) {
                meta.hash = known;
                return;
            }
            match hash_file(Path::new(&**path), algo, large) {
                Ok(h) => {
                    meta.hash = Some(h);
                    progress.files.fetch_add(1, Ordering::Relaxed);
                    progress.bytes.fetch_add(meta.size, Ordering::Relaxed);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => meta.error = Some("vanished".into()),
                Err(e) => meta.error = Some(io_reason(&e).into()),
            }
        });
    });
    entries.retain(|(_, m)| m.error.as_deref() != Some("vanished"));
}

/// The reason without the path (the path is the report row's key).
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => {
            let s = e.to_string();
            // fs-err prefixes "failed to open file `…`": keep only the cause.
            match s.rfind(": ") {
                Some(i) if s.contains('`') => s[i + 2..].to_string(),
                _ => s,
            }
        }
    }
}
