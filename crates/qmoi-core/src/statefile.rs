//! Small JSON state files a monitor keeps between runs and restarts
//! (`data/backup_state.json`, `data/performance_state.json`, `data/cloud_cost_cache.json`).

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Read a state file (through a buffer: it may be tens of megabytes). A missing file is
/// the default state; an unreadable or corrupt one is moved aside ([`set_aside`], so the
/// next save does not destroy it), logged naming `what` and where it went, and replaced
/// by the default: a state file only holds what the next runs rebuild.
pub fn load<T: DeserializeOwned + Default>(path: &Path, what: &str) -> T {
    match std::fs::File::open(path) {
        Ok(f) => serde_json::from_reader(std::io::BufReader::new(f)).unwrap_or_else(|e| {
            let moved = set_aside(path)
                .map_or_else(|| "could not be moved aside".into(), |p| format!("moved to {}", p.display()));
            tracing::error!(path = %path.display(), error = %e, "{what} unreadable ({moved}); starting afresh.");
            T::default()
        }),
        Err(_) => T::default(),
    }
}

/// Where an unreadable `path` goes: `<path>.corrupt-<UTC time>`.
pub fn aside_name(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.corrupt-{}", path.display(), chrono::Utc::now().format("%Y%m%dT%H%M%SZ")))
}

/// Move an unreadable file aside, as it is (for a look, or a recovery by hand); its new
/// name, or None when it could not be moved.
pub fn set_aside(path: &Path) -> Option<PathBuf> {
    let to = aside_name(path);
    std::fs::rename(path, &to).ok().map(|()| to)
}

/// Write a state file atomically (temp file, fsync, rename), creating its folder.
pub fn save<T: Serialize>(path: &Path, value: &T, pretty: bool) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs_err::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let body =
        if pretty { serde_json::to_vec_pretty(value) } else { serde_json::to_vec(value) }.map_err(|e| e.to_string())?;
    crate::report::write_json_atomic(path, &body).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn missing_and_corrupt_files_are_the_default_and_saves_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/state.json");
        let v: Vec<u32> = super::load(&p, "test state");
        assert!(v.is_empty());
        super::save(&p, &vec![1u32, 2], true).unwrap();
        assert_eq!(super::load::<Vec<u32>>(&p, "test state"), vec![1, 2]);
        std::fs::write(&p, "{not json").unwrap();
        assert!(super::load::<Vec<u32>>(&p, "test state").is_empty());
        // Kept aside as it was; the next save starts a new file.
        let aside: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("state.json.corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(std::fs::read_to_string(aside[0].path()).unwrap(), "{not json");
        assert!(!p.exists());
    }
}
