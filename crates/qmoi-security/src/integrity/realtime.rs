//! Real-time change detection with inotify (the `notify` crate).
//!
//! The watcher thread only records which paths changed and wakes the run loop; the
//! monitor examines them after a quiet `debounce` (bursts of writes become one report).
//! The periodic scan still runs: inotify can overflow its queue (then a rescan is asked
//! for), and watches cannot exist for paths created while no one listened.

use notify::{EventKind, RecursiveMode, Watcher, event::AccessKind, event::AccessMode};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Notify;

/// Paths changed since the last look.
#[derive(Debug, Default)]
pub struct Pending {
    pub paths: HashSet<PathBuf>,
    /// The kernel dropped events (queue overflow): only a full walk can tell what changed.
    pub rescan: bool,
    pub first_at: Option<Instant>,
    pub last_at: Option<Instant>,
    pub events: u64,
}

pub struct Realtime {
    _watcher: notify::RecommendedWatcher,
    pub pending: Arc<Mutex<Pending>>,
    /// Paths watched, and the ones that could not be (with the reason).
    pub watched: usize,
    pub failed: Vec<(String, String)>,
}

impl std::fmt::Debug for Realtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Realtime").field("watched", &self.watched).field("failed", &self.failed).finish()
    }
}

impl Realtime {
    /// Watch `roots` (folders recursively when asked; a file through its folder, so that an
    /// editor replacing it by rename is still seen). `ignore`: paths under these are ours.
    pub fn start(roots: &[(PathBuf, bool)], ignore: Vec<PathBuf>, wake: Arc<Notify>) -> Result<Self, String> {
        let pending = Arc::new(Mutex::new(Pending::default()));
        let sink = Arc::clone(&pending);
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(ev) = res else {
                // An error from the backend (overflow included): trust only a rescan.
                if let Ok(mut p) = sink.lock() {
                    p.rescan = true;
                }
                wake.notify_one();
                return;
            };
            // Opening and reading (our own hashing included) change nothing.
            if let EventKind::Access(kind) = ev.kind
                && kind != AccessKind::Close(AccessMode::Write)
            {
                return;
            }
            let now = Instant::now();
            if let Ok(mut p) = sink.lock() {
                if ev.need_rescan() {
                    p.rescan = true;
                }
                for path in ev.paths {
                    if !ignore.iter().any(|i| path.starts_with(i)) {
                        p.paths.insert(path);
                    }
                }
                if p.paths.is_empty() && !p.rescan {
                    return;
                }
                p.events += 1;
                p.first_at.get_or_insert(now);
                p.last_at = Some(now);
            }
            wake.notify_one();
        })
        .map_err(|e| format!("cannot start inotify: {e}"))?;
        let mut watched = 0;
        let mut failed = Vec::new();
        for (root, recursive) in roots {
            let (target, mode) = match std::fs::symlink_metadata(root) {
                Ok(md) if md.is_dir() => {
                    (root.as_path(), if *recursive { RecursiveMode::Recursive } else { RecursiveMode::NonRecursive })
                }
                Ok(_) => (root.parent().unwrap_or(Path::new("/")), RecursiveMode::NonRecursive),
                Err(e) => {
                    failed.push((root.display().to_string(), e.to_string()));
                    continue;
                }
            };
            match watcher.watch(target, mode) {
                Ok(()) => watched += 1,
                Err(e) => failed.push((root.display().to_string(), watch_error(&e))),
            }
        }
        Ok(Self { _watcher: watcher, pending, watched, failed })
    }

    /// Take what changed, after the writes have been quiet for `debounce` (or one second
    /// after the first change at most, so that a steady stream is still reported).
    pub async fn drain(&self, debounce: std::time::Duration) -> Pending {
        loop {
            let wait = {
                let Ok(p) = self.pending.lock() else { return Pending::default() };
                match (p.first_at, p.last_at) {
                    (Some(first), Some(last)) => {
                        let quiet = last.elapsed();
                        if quiet >= debounce || first.elapsed() >= std::time::Duration::from_secs(1) {
                            None
                        } else {
                            Some(debounce - quiet)
                        }
                    }
                    _ => None,
                }
            };
            match wait {
                Some(d) => tokio::time::sleep(d).await,
                None => break,
            }
        }
        match self.pending.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(_) => Pending::default(),
        }
    }
}

fn watch_error(e: &notify::Error) -> String {
    let text = e.to_string();
    if text.contains("No space left")
        || text.contains("os error 28")
        || matches!(e.kind, notify::ErrorKind::MaxFilesWatch)
    {
        "inotify watch limit reached (raise fs.inotify.max_user_watches); the periodic scan still covers it".into()
    } else {
        text
    }
}
