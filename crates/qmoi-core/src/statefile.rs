//! Small JSON state files a monitor keeps between runs and restarts
//! (`data/backup_state.json`, `data/performance_state.json`, `data/cloud_cost_cache.json`).

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;

/// Read a state file. A missing file is the default state; an unreadable or corrupt one is
/// logged (naming `what`) and replaced by the default: a state file only holds what the
/// next runs rebuild.
pub fn load<T: DeserializeOwned + Default>(path: &Path, what: &str) -> T {
    match std::fs::read(path) {
        Ok(data) => serde_json::from_slice(&data).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "{what} unreadable; starting afresh.");
            T::default()
        }),
        Err(_) => T::default(),
    }
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
    }
}
