//! What the monitor remembers across restarts (`<data_dir>/backup_state.json`): the size
//! trend of each target and the last verification of each level.

use chrono::{DateTime, Utc};
use qmoi_core::Status;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct BackupState {
    #[serde(default)]
    pub targets: BTreeMap<String, TargetState>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct TargetState {
    /// Recent backups seen (newest last), for the size trend and the shrink check.
    #[serde(default)]
    pub sizes: Vec<SizePoint>,
    /// Last verification per level (`checksum`, `archive`, `restore`).
    #[serde(default)]
    pub verified: BTreeMap<String, Verification>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SizePoint {
    pub name: String,
    pub time: DateTime<Utc>,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verification {
    /// The backup verified (name) and its identity (name, time, size).
    pub backup: String,
    pub identity: String,
    pub at: DateTime<Utc>,
    pub status: Status,
    pub message: String,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// Points kept per target.
pub const TREND: usize = 30;

impl BackupState {
    /// A missing file is an empty state; an unreadable or corrupt one is logged and
    /// replaced (it only holds history the next runs rebuild).
    pub fn load(path: &Path) -> Self {
        qmoi_core::statefile::load(path, "Backup state")
    }

    pub fn save(&self, path: &Path) -> Result<(), String> {
        qmoi_core::statefile::save(path, self, true)
    }
}

impl TargetState {
    /// Record the newest backup; true when it is new.
    pub fn observe(&mut self, name: &str, time: DateTime<Utc>, size: u64) -> bool {
        if self.sizes.last().is_some_and(|p| p.name == name && p.time == time && p.size == size) {
            return false;
        }
        self.sizes.retain(|p| p.name != name);
        self.sizes.push(SizePoint { name: name.to_string(), time, size });
        self.sizes.sort_by_key(|p| p.time);
        let excess = self.sizes.len().saturating_sub(TREND);
        self.sizes.drain(..excess);
        true
    }

    /// The backup before the newest, for the shrink check.
    pub fn previous(&self) -> Option<&SizePoint> {
        self.sizes.len().checked_sub(2).and_then(|i| self.sizes.get(i))
    }
}
