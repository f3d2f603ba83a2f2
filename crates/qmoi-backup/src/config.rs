//! `config/backup.toml`: every key, its default and its check.

use crate::schedule::Schedule;
use qmoi_core::config::{ConfigDuration, EnvString, Problems, Secret, Validate};
use qmoi_core::runner::{HistorySettings, validate_interval_timeout};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Light checks (age, size, count, schedule) run at this pace.
    pub interval: ConfigDuration,
    /// Bound on listing a folder or a repository.
    pub timeout: ConfigDuration,
    pub history: HistorySettings,
    /// `backup_state.json` (size trend, last verifications) and restore tests' temp folders.
    pub data_dir: EnvString,
    /// Heavy verification (checksum, archive, restore) of each target's newest backup runs
    /// at most this often, and at once when a new backup appears.
    pub verify_interval: ConfigDuration,
    /// Restore tests extract under this folder (a temp folder per test, always removed).
    pub restore_dir: EnvString,
    pub targets: Vec<Target>,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            interval: ConfigDuration::from_secs(300),
            timeout: ConfigDuration::from_secs(60),
            history: HistorySettings { every: ConfigDuration::from_secs(3600), ..HistorySettings::default() },
            data_dir: EnvString::from("data"),
            verify_interval: ConfigDuration::from_secs(86_400),
            restore_dir: EnvString::from("data/restore-tests"),
            targets: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// Files in a folder matching a pattern.
    #[default]
    Folder,
    /// A restic repository (`restic snapshots --json`, `restic check`).
    Restic,
    /// A Borg repository (`borg list --json`, `borg check`).
    Borg,
}

/// Verification levels, from cheapest to most thorough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyLevel {
    /// Exists, age, size, count (every interval).
    Metadata,
    /// Sidecar `.sha256` / `.b3` files or a `SHA256SUMS` / `B3SUMS` manifest, recomputed.
    Checksum,
    /// Read and decompress the whole archive (tar, tar.gz, tar.zst, zip); for a
    /// repository, its own check command.
    Archive,
    /// Extract to a temp folder (size-capped), compare with a manifest or the source, remove.
    Restore,
}

impl VerifyLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyLevel::Metadata => "metadata",
            VerifyLevel::Checksum => "checksum",
            VerifyLevel::Archive => "archive",
            VerifyLevel::Restore => "restore",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Names the checks (`backup:<name>`, `archive:<name>` …), alerts and metrics.
    pub name: String,
    #[serde(default)]
    pub kind: TargetKind,
    /// folder: the folder holding the backups.
    #[serde(default)]
    pub path: Option<EnvString>,
    /// folder: file name glob (`db-*.tar.gz`); default every file except checksum files.
    #[serde(default)]
    pub pattern: Option<String>,
    /// restic / borg: the repository (path or URL).
    #[serde(default)]
    pub repository: Option<EnvString>,
    /// restic / borg: the executable (default `restic` / `borg` on PATH).
    #[serde(default)]
    pub command: Option<String>,
    /// restic / borg: environment for the commands (`RESTIC_PASSWORD_FILE`,
    /// `BORG_PASSPHRASE = "${BORG_PASSPHRASE}"`); values are masked everywhere.
    #[serde(default)]
    pub env: BTreeMap<String, Secret>,
    /// restic / borg: bound on each command (a repository check can take long).
    #[serde(default = "default_command_timeout")]
    pub command_timeout: ConfigDuration,
    /// Newest backup older than this: warning.
    pub max_age: ConfigDuration,
    /// Older than this: critical (default 2 × max_age).
    #[serde(default)]
    pub critical_age: Option<ConfigDuration>,
    /// When backups are expected: `"daily 02:00"`, `"hourly :15"`, `"weekly sun 03:30"`,
    /// `"every 6h"` (local time). A run that did not produce a backup within `grace` is
    /// reported at once, not only when `max_age` passes.
    #[serde(default)]
    pub schedule: Option<String>,
    #[serde(default = "default_grace")]
    pub grace: ConfigDuration,
    /// Newest backup smaller than this many bytes: warning.
    #[serde(default)]
    pub min_size: Option<u64>,
    /// Newest backup smaller than the previous one by more than this percent: warning.
    #[serde(default)]
    pub max_shrink_percent: Option<f64>,
    /// Fewer backups than this: warning (retention too short, or backups deleted).
    #[serde(default)]
    pub min_count: Option<usize>,
    /// More than this: warning (retention not pruning).
    #[serde(default)]
    pub max_count: Option<usize>,
    /// Verification levels run for this target (metadata is always on). Default: metadata,
    /// checksum and archive for a folder; metadata and archive (the tool's own check) for
    /// a repository, which has no checksum files.
    #[serde(default)]
    pub verify: Option<Vec<VerifyLevel>>,
    /// restore: the file inside the archive listing `sha256  path` lines to compare with.
    #[serde(default)]
    pub manifest: Option<String>,
    /// restore: compare restored files with this folder instead of a manifest.
    #[serde(default)]
    pub compare_with: Option<EnvString>,
    /// restore: the folder inside the archive that corresponds to `compare_with`.
    #[serde(default)]
    pub archive_root: Option<String>,
    /// restore: compare at most this many files (a sample spread over the archive; 0 = all).
    #[serde(default)]
    pub sample: usize,
    /// restore: stop (and report) when the extracted data would exceed this many bytes.
    #[serde(default = "default_max_restore")]
    pub max_restore_bytes: u64,
    /// The documented recovery procedure, shown in the report and the dashboard
    /// (`{file}` is replaced by the newest backup's path).
    #[serde(default)]
    pub restore_command: Option<String>,
    /// Missing or stale backups of this target are critical from the first threshold.
    #[serde(default)]
    pub critical: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn default_command_timeout() -> ConfigDuration {
    ConfigDuration::from_secs(600)
}

fn default_grace() -> ConfigDuration {
    ConfigDuration::from_secs(3600)
}

fn default_max_restore() -> u64 {
    1 << 30
}

impl Target {
    /// The status of a problem with this target: critical for a `critical` target.
    pub fn bad(&self) -> qmoi_core::Status {
        if self.critical { qmoi_core::Status::Critical } else { qmoi_core::Status::Warning }
    }

    pub fn critical_age(&self) -> Duration {
        self.critical_age.map_or(self.max_age.get() * 2, ConfigDuration::get)
    }

    /// The configured verification levels, or the default of the target's kind.
    pub fn verify_levels(&self) -> &[VerifyLevel] {
        match (&self.verify, self.kind) {
            (Some(v), _) => v,
            (None, TargetKind::Folder) => &[VerifyLevel::Metadata, VerifyLevel::Checksum, VerifyLevel::Archive],
            (None, TargetKind::Restic | TargetKind::Borg) => &[VerifyLevel::Metadata, VerifyLevel::Archive],
        }
    }

    pub fn verifies(&self, level: VerifyLevel) -> bool {
        level == VerifyLevel::Metadata || self.verify_levels().contains(&level)
    }
}

impl Validate for BackupConfig {
    fn validate(&self, p: &mut Problems) {
        validate_interval_timeout(self.interval, self.timeout, p);
        self.history.validate(p);
        let mut names = std::collections::HashSet::new();
        for (i, t) in self.targets.iter().enumerate() {
            let key = format!("targets[{i}]");
            if t.name.trim().is_empty() || t.name.contains(char::is_whitespace) {
                p.push(format!("{key}.name"), format!("must be a non-empty word, got '{}'", t.name));
            }
            if !names.insert(t.name.as_str()) {
                p.push(format!("{key}.name"), format!("'{}' is used twice; names must be unique", t.name));
            }
            match t.kind {
                TargetKind::Folder => {
                    if t.path.as_ref().is_none_or(|p| p.as_str().trim().is_empty()) {
                        p.push(format!("{key}.path"), "a folder target needs `path` (the folder holding the backups)");
                    }
                    if t.repository.is_some() {
                        p.push(format!("{key}.repository"), "only for kind = \"restic\" or \"borg\"");
                    }
                }
                TargetKind::Restic | TargetKind::Borg => {
                    if t.repository.is_none() {
                        p.push(format!("{key}.repository"), "a restic/borg target needs `repository`");
                    }
                    if t.verifies(VerifyLevel::Checksum) || t.verifies(VerifyLevel::Restore) {
                        p.push(
                            format!("{key}.verify"),
                            "a repository target verifies with `archive` (its own check command); checksum and restore are for folder targets",
                        );
                    }
                }
            }
            if let Some(g) = &t.pattern
                && let Err(e) = globset::Glob::new(g)
            {
                p.push(format!("{key}.pattern"), format!("invalid glob '{g}': {e}"));
            }
            if t.max_age.get() < Duration::from_secs(60) {
                p.push(format!("{key}.max_age"), format!("must be at least 1m, got '{}'", t.max_age));
            }
            if t.critical_age.is_some_and(|c| c < t.max_age) {
                p.push(format!("{key}.critical_age"), "must be at least max_age");
            }
            if let Some(s) = &t.schedule
                && let Err(e) = Schedule::parse(s)
            {
                p.push(format!("{key}.schedule"), e);
            }
            if t.max_shrink_percent.is_some_and(|v| !(0.0..=100.0).contains(&v)) {
                p.push(format!("{key}.max_shrink_percent"), "must be between 0 and 100");
            }
            if let (Some(a), Some(b)) = (t.min_count, t.max_count)
                && a > b
            {
                p.push(format!("{key}.min_count"), format!("({a}) must be at most max_count ({b})"));
            }
            if t.verifies(VerifyLevel::Restore) && t.manifest.is_none() && t.compare_with.is_none() {
                p.push(
                    format!("{key}.verify"),
                    "`restore` needs `manifest` (a checksum list inside the archive) or `compare_with` (the source folder)",
                );
            }
        }
    }
}

qmoi_core::monitor_config!(BackupConfig);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> BackupConfig {
        qmoi_core::config::parse_str(std::path::Path::new("backup.toml"), text).unwrap()
    }

    fn problems(text: &str) -> String {
        let cfg = parse(text);
        let mut p = Problems::new();
        cfg.validate(&mut p);
        p.to_string()
    }

    /// Regression: a restic/Borg target without `verify` got the folder default (with
    /// `checksum`) and was rejected by its own validation.
    #[test]
    fn the_default_verify_depends_on_the_kind_and_validates() {
        let repo = "[[targets]]\nname = \"r\"\nkind = \"restic\"\nrepository = \"/srv/restic\"\nmax_age = \"1d\"\n";
        assert_eq!(problems(repo), "");
        let borg = repo.replace("restic", "borg");
        assert_eq!(problems(&borg), "");
        let cfg = parse(repo);
        assert_eq!(cfg.targets[0].verify_levels(), &[VerifyLevel::Metadata, VerifyLevel::Archive]);
        let folder = parse("[[targets]]\nname = \"f\"\npath = \"/srv/b\"\nmax_age = \"1d\"\n");
        assert!(folder.targets[0].verifies(VerifyLevel::Checksum));
        // Asked for explicitly, checksum on a repository is still refused.
        assert!(problems(&format!("{repo}verify = [\"checksum\"]\n")).contains("targets[0].verify"));
    }
}
