//! The backup monitor's `--list` tool mode.

use crate::BackupMonitor;
use qmoi_core::Status;
use std::process::ExitCode;

/// `--list`: every target's backups, newest first, as a table; exits with the worst of
/// what it found (no backups: critical, cannot list: unknown).
pub async fn list(monitor: &BackupMonitor, timeout: std::time::Duration) -> ExitCode {
    let mut worst = Status::Ok;
    if monitor.targets().is_empty() {
        println!("No backup targets configured (add [[targets]] to config/backup.toml).");
    }
    for (i, t) in monitor.targets().iter().enumerate() {
        let place = t.path.as_ref().or(t.repository.as_ref()).map(|p| p.as_str().to_string()).unwrap_or_default();
        println!(
            "{} ({:?}, {place}{})",
            t.name,
            t.kind,
            t.pattern.as_ref().map(|p| format!(", pattern {p}")).unwrap_or_default()
        );
        match monitor.list(i, timeout).await {
            Ok(b) if b.is_empty() => {
                println!("  no backups found\n");
                worst = worst.worst(Status::Critical);
            }
            Ok(b) => {
                println!("  {:<40}  {:<20}  {:>12}  {:>10}", "BACKUP", "TIME (UTC)", "AGE", "SIZE");
                let now = chrono::Utc::now();
                for x in &b {
                    println!(
                        "  {:<40}  {:<20}  {:>12}  {:>10}",
                        qmoi_core::human::clip(&x.name, 40),
                        x.time.format("%Y-%m-%d %H:%M:%S"),
                        qmoi_core::human::duration((now - x.time).num_seconds().max(0) as f64),
                        x.size.map_or_else(|| "-".into(), |s| qmoi_core::human::bytes(s as f64))
                    );
                }
                println!("  {} backup(s)\n", b.len());
            }
            Err(e) => {
                println!("  cannot list: {e}\n");
                worst = worst.worst(Status::Unknown);
            }
        }
    }
    ExitCode::from(u8::try_from(worst.exit_code()).unwrap_or(3))
}
