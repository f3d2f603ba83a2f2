//! # qmoi-backup
//!
//! A backup nobody verified is not a backup. For each configured target (a folder of
//! backup files, or a restic / Borg repository) this monitor checks, every interval, that
//! the newest backup exists, is fresh (and that the expected scheduled run happened), is
//! not suspiciously small or shrunk, and that the count matches the retention; and, on
//! its own slower schedule or as soon as a new backup appears, verifies it: checksums
//! recomputed ([`verify::checksum`]), the whole archive read and decompressed
//! ([`verify::archive`]), a restore test into a temp folder compared with a manifest or
//! the source ([`verify::restore`]), or the repository's own check ([`repo`]).
//!
//! It never modifies or deletes a backup: files are only opened for reading, and the
//! only writes are its state file and the restore test's temp folder, always removed.

pub mod checks;
pub mod config;
pub mod discover;
pub mod repo;
pub mod schedule;
pub mod state;
pub mod tools;
pub mod verify;

pub use config::BackupConfig;

use chrono::{DateTime, Utc};
use config::{Target, TargetKind, VerifyLevel};
use discover::Backup;
use qmoi_core::runner::{Collected, Monitor, Outcome, RunContext};
use qmoi_core::{CheckResult, Status};
use serde_json::json;
use state::{BackupState, Verification};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use verify::archive::Format;

pub struct BackupMonitor {
    cfg: BackupConfig,
    /// Per target, what its config says parsed once.
    parsed: Vec<Parsed>,
    state_path: PathBuf,
    state: BackupState,
    /// Targets whose heavy verification runs now whatever the schedule (`--verify`).
    force: HashSet<String>,
    /// `--verify`: look at this target only.
    only: Option<String>,
    /// The daemon verifies in the background; `--once`, `--check`, `--verify` inline.
    background: Option<Background>,
    /// Verifications started during the current run.
    started_now: usize,
}

impl std::fmt::Debug for BackupMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupMonitor").field("targets", &self.cfg.targets.len()).finish()
    }
}

impl BackupMonitor {
    pub fn new(cfg: &BackupConfig) -> Result<Self, String> {
        let parsed = cfg.targets.iter().map(Parsed::new).collect::<Result<_, _>>()?;
        let state_path = Path::new(cfg.data_dir.as_str()).join("backup_state.json");
        let state = BackupState::load(&state_path);
        Ok(Self {
            cfg: cfg.clone(),
            parsed,
            state_path,
            state,
            force: HashSet::new(),
            only: None,
            background: None,
            started_now: 0,
        })
    }

    /// Run heavy verifications in the background (the daemon).
    #[must_use]
    pub fn in_background(mut self) -> Self {
        self.background = Some(Background {
            done: Arc::default(),
            running: Arc::default(),
            one_at_a_time: Arc::new(tokio::sync::Semaphore::new(1)),
            wake: Arc::new(tokio::sync::Notify::new()),
        });
        self
    }

    /// Start (or find running) the background verification of `b` at `level`: what is
    /// being verified and since when.
    fn start_in_background(
        &mut self,
        t: &Target,
        b: &Backup,
        level: VerifyLevel,
        restore_dir: PathBuf,
    ) -> (String, DateTime<Utc>) {
        let Some(bg) = self.background.clone() else { return (b.name.clone(), Utc::now()) };
        let key = (t.name.clone(), level.as_str().to_string());
        let mut running = bg.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(r) = running.get(&key) {
            return r.clone();
        }
        let since = Utc::now();
        running.insert(key.clone(), (b.name.clone(), since));
        drop(running);
        self.started_now += 1;
        let what = b.name.clone();
        let (t, b) = (t.clone(), b.clone());
        tokio::spawn(async move {
            let _permit = bg.one_at_a_time.acquire().await;
            let v = verify_one(&t, &b, level, restore_dir).await;
            tracing::info!(target = %t.name, level = level.as_str(), status = %v.status, ms = v.duration_ms, "Verification done.");
            bg.done.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((key.0.clone(), key.1.clone(), v));
            bg.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&key);
            bg.wake.notify_one();
        });
        (what, since)
    }

    /// Keep the verifications finished in the background.
    fn collect_finished(&mut self) {
        let Some(bg) = &self.background else { return };
        let done = std::mem::take(&mut *bg.done.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        for (target, level, v) in done {
            self.state.targets.entry(target).or_default().verified.insert(level, v);
        }
    }

    fn running_count(&self) -> usize {
        self.background.as_ref().map_or(0, |bg| bg.running.lock().map(|r| r.len()).unwrap_or(0))
    }

    /// `--verify TARGET`: the next run verifies it fully, whatever the schedule, and looks
    /// at no other target.
    pub fn force_verify(&mut self, target: &str) -> Result<(), String> {
        if !self.cfg.targets.iter().any(|t| t.name == target) {
            let names: Vec<&str> = self.cfg.targets.iter().map(|t| t.name.as_str()).collect();
            return Err(format!(
                "no target '{target}' (configured: {})",
                if names.is_empty() { "none".into() } else { names.join(", ") }
            ));
        }
        self.force.insert(target.to_string());
        self.only = Some(target.to_string());
        Ok(())
    }

    pub fn targets(&self) -> &[Target] {
        &self.cfg.targets
    }

    /// The backups of target `i`, newest first.
    pub async fn list(&self, i: usize, timeout: Duration) -> Result<Vec<Backup>, String> {
        let t = &self.cfg.targets[i];
        match t.kind {
            TargetKind::Folder => {
                let dir = PathBuf::from(t.path.as_ref().map(|p| p.as_str()).unwrap_or_default());
                let pattern = self.parsed[i].pattern.clone();
                let listing = tokio::task::spawn_blocking(move || discover::list_folder(&dir, pattern.as_ref()));
                match tokio::time::timeout(timeout, listing).await {
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) => Err(format!("listing failed: {e}")),
                    Err(_) => Err(format!(
                        "listing did not finish within {} (a hung network file system?)",
                        qmoi_core::config::ConfigDuration(timeout)
                    )),
                }
            }
            TargetKind::Restic | TargetKind::Borg => repo::list(t, timeout).await,
        }
    }

    /// The checks, metrics and row of target `i`.
    async fn check_target(&mut self, i: usize, timeout: Duration, out: &mut Collected) {
        let t = self.cfg.targets[i].clone();
        let name = t.name.clone();
        let now = Utc::now();
        let where_ = match t.kind {
            TargetKind::Folder => format!(
                "{}{}",
                t.path.as_ref().map(|p| p.as_str()).unwrap_or_default(),
                t.pattern.as_ref().map(|p| format!("/{p}")).unwrap_or_default()
            ),
            _ => t.repository.as_ref().map(|r| r.as_str().to_string()).unwrap_or_default(),
        };
        let backups = match self.list(i, timeout).await {
            Ok(b) => b,
            Err(e) => {
                out.checks.push(
                    CheckResult::unknown(format!("backup:{name}"), format!("{name}: cannot list {where_}: {e}"))
                        .with_title(format!("Backups of {name} cannot be listed")),
                );
                out.row(
                    "targets",
                    json!({"name": name, "kind": t.kind, "where": where_, "error": e, "status": "unknown"}),
                );
                return;
            }
        };
        let newest = backups.first().cloned();
        let ts = self.state.targets.entry(name.clone()).or_default();
        let light = [
            Some(checks::freshness(&t, newest.as_ref(), &where_, now)),
            checks::schedule(&t, self.parsed[i].schedule.as_ref(), newest.as_ref(), now),
            checks::size(&t, ts, newest.as_ref()),
            checks::count(&t, backups.len()),
        ];
        let mut statuses = Vec::new();
        for c in light.into_iter().flatten() {
            statuses.push(c.status);
            out.checks.push(c);
        }
        let verifications = match &newest {
            Some(b) => self.verifications(&t, b, now, out, &mut statuses).await,
            None => serde_json::Map::new(),
        };
        self.force.remove(&name);
        let trend = self.state.targets.get(&name).map(|s| s.sizes.clone()).unwrap_or_default();
        if let Some(b) = &newest {
            out.metric(
                "qmoi_backup_age_seconds",
                &[("target", name.as_str())],
                (now - b.time).num_milliseconds() as f64 / 1000.0,
            );
            out.metric("qmoi_backup_last_timestamp_seconds", &[("target", name.as_str())], b.time.timestamp() as f64);
            if let Some(s) = b.size {
                out.metric("qmoi_backup_size_bytes", &[("target", name.as_str())], s as f64);
            }
        }
        out.metric("qmoi_backup_count", &[("target", name.as_str())], backups.len() as f64);
        let restore_command = t.restore_command.as_ref().map(|c| {
            let file = newest.as_ref().and_then(|b| b.path.as_ref()).map(|p| p.display().to_string());
            c.replace("{file}", file.as_deref().or(newest.as_ref().map(|b| b.name.as_str())).unwrap_or("{file}"))
        });
        out.row(
            "targets",
            json!({
                "name": name,
                "kind": t.kind,
                "where": where_,
                "status": Status::worst_of(statuses),
                "newest": newest.as_ref().map(|b| json!({
                    "name": b.name, "path": b.path, "time": b.time, "size": b.size,
                    "age_s": (now - b.time).num_seconds(),
                })),
                "count": backups.len(),
                "trend": trend,
                "verification": verifications,
                "restore_command": restore_command,
                "labels": t.labels,
            }),
        );
    }

    /// The heavy verifications of the newest backup `b` that `t` asks for: run now when
    /// due (inline), started in the background (the daemon), or the last result. Returns
    /// the report row's `verification` object.
    async fn verifications(
        &mut self,
        t: &Target,
        b: &Backup,
        now: DateTime<Utc>,
        out: &mut Collected,
        statuses: &mut Vec<Status>,
    ) -> serde_json::Map<String, serde_json::Value> {
        let name = t.name.as_str();
        let mut rows = serde_json::Map::new();
        let forced = self.force.contains(name);
        for level in [VerifyLevel::Checksum, VerifyLevel::Archive, VerifyLevel::Restore] {
            if !t.verifies(level) {
                continue;
            }
            let key = level.as_str().to_string();
            let last = self.state.targets.get(name).and_then(|s| s.verified.get(&key)).cloned();
            let stale = last.as_ref().is_none_or(|v| {
                v.identity != b.identity()
                    || (now - v.at).to_std().unwrap_or_default() >= self.cfg.verify_interval.get()
            });
            let restore_dir = PathBuf::from(self.cfg.restore_dir.as_str());
            let mut running_note = None;
            let v = if (forced || stale) && self.background.is_none() {
                let v = verify_one(t, b, level, restore_dir).await;
                tracing::info!(target = %name, level = level.as_str(), status = %v.status, ms = v.duration_ms, "Verification done.");
                if let Some(ts) = self.state.targets.get_mut(name) {
                    ts.verified.insert(key.clone(), v.clone());
                }
                v
            } else {
                if forced || stale {
                    running_note = Some(self.start_in_background(t, b, level, restore_dir));
                }
                match (last, &running_note) {
                    (Some(v), _) => v,
                    (None, Some((what, since))) => Verification {
                        backup: b.name.clone(),
                        identity: String::new(),
                        at: *since,
                        status: Status::Unknown,
                        message: format!(
                            "first {} verification of {what} running since {}",
                            level.as_str(),
                            since.format("%H:%M:%S UTC")
                        ),
                        duration_ms: 0,
                        bytes: None,
                        details: None,
                    },
                    (None, None) => continue,
                }
            };
            let v = match (&running_note, v.identity.is_empty()) {
                (Some((what, since)), false) => Verification {
                    message: format!(
                        "{} (verification of {what} running since {})",
                        v.message,
                        since.format("%H:%M:%S UTC")
                    ),
                    ..v
                },
                _ => v,
            };
            let title = match level {
                VerifyLevel::Checksum => format!("Backup checksum mismatch: {name}"),
                VerifyLevel::Archive if t.kind != TargetKind::Folder => {
                    format!("Backup repository check failed: {name}")
                }
                VerifyLevel::Archive => format!("Backup archive corrupt: {name}"),
                VerifyLevel::Restore => format!("Backup restore test failed: {name}"),
                VerifyLevel::Metadata => String::new(),
            };
            let c =
                CheckResult::new(format!("{key}:{name}"), v.status, format!("{name}: {}", v.message)).with_title(title);
            statuses.push(c.status);
            out.checks.push(c);
            let labels = [("target", name), ("level", level.as_str())];
            out.metric("qmoi_backup_verification_ok", &labels, if v.status == Status::Ok { 1.0 } else { 0.0 });
            out.metric("qmoi_backup_verification_duration_seconds", &labels, v.duration_ms as f64 / 1000.0);
            out.metric("qmoi_backup_last_verified_timestamp_seconds", &labels, v.at.timestamp() as f64);
            rows.insert(key, serde_json::to_value(&v).unwrap_or_default());
        }
        rows
    }

    fn save_state(&self) -> Option<String> {
        self.state.save(&self.state_path).err()
    }
}

/// One heavy verification of `b`, off the async thread.
async fn verify_one(t: &Target, b: &Backup, level: VerifyLevel, restore_dir: PathBuf) -> Verification {
    {
        let started = Instant::now();
        let at = Utc::now();
        let result: Result<(Status, String, Option<u64>, Option<serde_json::Value>), String> =
            if t.kind != TargetKind::Folder {
                // A repository verifies with its own check command (level archive).
                repo::check(t).await.map(|m| (Status::Ok, format!("repository check passed: {m}"), None, None))
            } else {
                let Some(path) = b.path.clone() else {
                    return verification(b, at, started, Status::Unknown, "no file to verify".into(), None, None);
                };
                let t = t.clone();
                let taken = std::time::SystemTime::from(b.time);
                tokio::task::spawn_blocking(move || verify_file(&t, &path, level, &restore_dir, taken))
                    .await
                    .unwrap_or_else(|e| Err(format!("verification crashed: {e}")))
            };
        match result {
            Ok((status, msg, bytes, details)) => verification(b, at, started, status, msg, bytes, details),
            Err(e) => {
                let status = if t.kind != TargetKind::Folder || level != VerifyLevel::Checksum {
                    Status::Critical
                } else {
                    Status::Unknown
                };
                verification(b, at, started, status, e, None, None)
            }
        }
    }
}

type Running = (String, DateTime<Utc>);

/// What a target's config says, parsed once (validation has already refused what does not
/// parse).
struct Parsed {
    pattern: Option<globset::GlobMatcher>,
    schedule: Option<schedule::Schedule>,
}

impl Parsed {
    fn new(t: &Target) -> Result<Self, String> {
        let pattern = t
            .pattern
            .as_deref()
            .map(|p| globset::Glob::new(p).map(|g| g.compile_matcher()).map_err(|e| format!("pattern '{p}': {e}")))
            .transpose()?;
        let schedule = t
            .schedule
            .as_deref()
            .map(|s| schedule::Schedule::parse(s).map_err(|e| format!("schedule: {e}")))
            .transpose()?;
        Ok(Self { pattern, schedule })
    }
}

/// Heavy verifications of the daemon run as tasks, one at a time, so that a restore test
/// of a large archive does not hold up the report (which the supervisor would then find
/// stale). Each finished one wakes the run loop for a fresh report.
#[derive(Clone)]
struct Background {
    done: Arc<Mutex<Vec<(String, String, Verification)>>>,
    /// (target, level) → (backup being verified, since when).
    running: Arc<Mutex<HashMap<(String, String), Running>>>,
    one_at_a_time: Arc<tokio::sync::Semaphore>,
    wake: Arc<tokio::sync::Notify>,
}

fn verification(
    b: &Backup,
    at: DateTime<Utc>,
    started: Instant,
    status: Status,
    message: String,
    bytes: Option<u64>,
    details: Option<serde_json::Value>,
) -> Verification {
    Verification {
        backup: b.name.clone(),
        identity: b.identity(),
        at,
        status,
        message,
        duration_ms: started.elapsed().as_millis().try_into().unwrap_or(u64::MAX),
        bytes,
        details,
    }
}

type Verified = (Status, String, Option<u64>, Option<serde_json::Value>);

/// Checksum, archive or restore verification of one backup file (blocking).
fn verify_file(
    t: &Target,
    path: &Path,
    level: VerifyLevel,
    restore_dir: &Path,
    taken: std::time::SystemTime,
) -> Result<Verified, String> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let rate = Rate(Instant::now());
    match level {
        VerifyLevel::Metadata => Ok((Status::Ok, "exists".into(), None, None)),
        VerifyLevel::Checksum => verify_checksum(path, &name, &rate),
        VerifyLevel::Archive | VerifyLevel::Restore => {
            let Some(format) = Format::detect(&name) else {
                let what = if level == VerifyLevel::Archive { "reads" } else { "can restore" };
                return Ok((
                    Status::Unknown,
                    format!("{name} is not an archive format qmoi-backup {what} ({})", verify::archive::FORMATS),
                    None,
                    None,
                ));
            };
            Ok(if level == VerifyLevel::Archive {
                verify_archive(path, &name, format, &rate)
            } else {
                verify_restore(t, path, format, restore_dir, taken, &rate)
            })
        }
    }
}

/// Throughput since a start, for the verification messages.
struct Rate(Instant);

impl Rate {
    fn of(&self, bytes: u64) -> String {
        let s = self.0.elapsed().as_secs_f64().max(0.001);
        format!(
            "{} in {s:.1} s, {}/s",
            qmoi_core::human::bytes(bytes as f64),
            qmoi_core::human::bytes(bytes as f64 / s)
        )
    }
}

/// The file's hash against its sidecar or the folder's manifest.
fn verify_checksum(path: &Path, name: &str, rate: &Rate) -> Result<Verified, String> {
    use verify::checksum;
    let Some(exp) = checksum::expected(path)? else {
        return Ok((
            Status::Unknown,
            format!("no checksum for {name} (looked for {name}.sha256, {name}.b3, SHA256SUMS, B3SUMS)"),
            None,
            None,
        ));
    };
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let got = checksum::hash_file(path, exp.algo).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let src = exp.source.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(if got == exp.hex {
        (Status::Ok, format!("{} of {name} matches {src} ({})", exp.algo.as_str(), rate.of(size)), Some(size), None)
    } else {
        (
            Status::Critical,
            format!(
                "{} of {name} is {}…, {src} says {}…: the file changed or is damaged",
                exp.algo.as_str(),
                &got[..16],
                &exp.hex[..16]
            ),
            Some(size),
            None,
        )
    })
}

/// The whole archive read and decompressed.
fn verify_archive(path: &Path, name: &str, format: Format, rate: &Rate) -> Verified {
    match verify::archive::verify(path, format) {
        Ok(stats) => (
            Status::Ok,
            format!(
                "{name}: {} {} entries read and decompressed, {}",
                format.as_str(),
                stats.entries,
                rate.of(stats.bytes)
            ),
            Some(stats.bytes),
            Some(json!(stats)),
        ),
        Err(e) => (Status::Critical, format!("{name} is corrupt: {e}"), None, None),
    }
}

/// Extract into a temp folder and compare with the manifest or the source.
fn verify_restore(
    t: &Target,
    path: &Path,
    format: Format,
    restore_dir: &Path,
    taken: std::time::SystemTime,
    rate: &Rate,
) -> Verified {
    use verify::restore::{Reference, RestoreError};
    let reference = match (&t.manifest, &t.compare_with) {
        (Some(m), _) => Reference::Manifest(m.clone()),
        (None, Some(dir)) => Reference::Source {
            dir: PathBuf::from(dir.as_str()),
            root: t.archive_root.clone().unwrap_or_default(),
            sample: t.sample,
            taken,
        },
        (None, None) => return (Status::Unknown, "restore needs `manifest` or `compare_with`".into(), None, None),
    };
    match verify::restore::restore_test(path, format, &reference, restore_dir, t.max_restore_bytes) {
        Ok(o) if o.problem_count == 0 && o.compared > 0 => (
            Status::Ok,
            format!(
                "restored {} files ({}), {} compared, all match{}",
                o.files,
                rate.of(o.bytes),
                o.compared,
                newer(&o)
            ),
            Some(o.bytes),
            Some(json!(o)),
        ),
        Ok(o) if o.compared == 0 => (
            Status::Critical,
            format!("restored {} files but none could be compared{}", o.files, newer(&o)),
            Some(o.bytes),
            Some(json!(o)),
        ),
        Ok(o) => (
            Status::Critical,
            format!(
                "restore test failed: {} of {} compared files wrong: {}",
                o.problem_count,
                o.compared,
                o.problems.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
            ),
            Some(o.bytes),
            Some(json!(o)),
        ),
        Err(RestoreError::TooLarge(e)) => (Status::Warning, format!("restore test skipped: {e}"), None, None),
        Err(RestoreError::Failed(e)) => (Status::Critical, format!("restore test failed: {e}"), None, None),
    }
}

fn newer(o: &verify::restore::RestoreOutcome) -> String {
    if o.newer_in_source > 0 {
        format!(" ({} source files changed since the backup, not compared)", o.newer_in_source)
    } else {
        String::new()
    }
}

impl BackupMonitor {
    async fn check_all(&mut self, timeout: Duration) -> Collected {
        let mut out = Collected::default();
        for i in 0..self.cfg.targets.len() {
            if self.only.as_ref().is_some_and(|o| *o != self.cfg.targets[i].name) {
                continue;
            }
            let since = Instant::now();
            self.check_target(i, timeout, &mut out).await;
            out.took(&format!("target:{}", self.cfg.targets[i].name), since.elapsed());
        }
        out
    }
}

impl Monitor for BackupMonitor {
    fn waker(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.background.as_ref().map(|bg| Arc::clone(&bg.wake))
    }

    async fn run(&mut self, ctx: &RunContext) -> Outcome {
        self.collect_finished();
        self.started_now = 0;
        let mut out = self.check_all(ctx.check_timeout).await;
        if self.started_now > 0 {
            // Verifications that take a few seconds are in this report; longer ones in a
            // report of their own when they finish (the waker).
            let deadline = Instant::now() + ctx.check_timeout.min(Duration::from_secs(30));
            while self.running_count() > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            self.collect_finished();
            if self.running_count() < self.started_now {
                out = self.check_all(ctx.check_timeout).await;
            }
        }
        if self.cfg.targets.is_empty() {
            out.checks.push(CheckResult::ok(
                "targets",
                "no backup targets configured (add [[targets]] to config/backup.toml)",
            ));
        }
        if let Some(e) = self.save_state() {
            out.checks.push(
                CheckResult::new("state", Status::Warning, format!("cannot save {}: {e}", self.state_path.display()))
                    .with_title("Backup monitor state cannot be saved"),
            );
        }
        if !out.details.contains_key("targets") {
            out.detail("targets", json!([]));
        }
        out.into_outcome()
    }
}
