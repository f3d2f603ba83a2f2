//! restic and Borg repositories through their own commands: `restic snapshots --json`,
//! `borg list --json` for the list, `restic check` / `borg check` for verification. Every
//! command has a timeout and is killed when it passes; the environment (passwords) comes
//! from config and is never printed.

use crate::config::{Target, TargetKind};
use crate::discover::Backup;
use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};
use std::process::Stdio;
use std::time::Duration;

/// Run the tool with `args`; stdout on success, or a message with the exit status and the
/// last lines of stderr.
async fn run(t: &Target, args: &[&str], timeout: Duration) -> Result<String, String> {
    let exe =
        t.command.clone().unwrap_or_else(|| if t.kind == TargetKind::Borg { "borg".into() } else { "restic".into() });
    let repo = t.repository.as_ref().map(|r| r.as_str().to_string()).unwrap_or_default();
    let mut cmd = tokio::process::Command::new(&exe);
    match t.kind {
        TargetKind::Borg => {
            cmd.args(args).arg(&repo);
        }
        _ => {
            cmd.arg("--repo").arg(&repo).args(args);
        }
    }
    for (k, v) in &t.env {
        cmd.env(k, v.expose());
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // Tied to this monitor's life: a restic/borg run never outlives it (or the supervisor).
    let child = qmoi_core::child::spawn(cmd).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("'{exe}' is not installed (or not on PATH); install it or set `command`")
        } else {
            format!("cannot run {exe}: {e}")
        }
    })?;
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(r) => r.map_err(|e| format!("{exe}: {e}"))?,
        Err(_) => {
            return Err(format!(
                "{exe} {} did not finish within {} (killed)",
                args.first().copied().unwrap_or_default(),
                qmoi_core::config::ConfigDuration(timeout)
            ));
        }
    };
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).rev().take(3).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(format!(
        "{exe} {} failed ({}): {}",
        args.first().copied().unwrap_or_default(),
        out.status,
        if tail.is_empty() { "no message".to_string() } else { tail.join(" / ") }
    ))
}

/// The snapshots / archives, newest first.
pub async fn list(t: &Target, timeout: Duration) -> Result<Vec<Backup>, String> {
    match t.kind {
        TargetKind::Borg => {
            let text = run(t, &["list", "--json"], timeout).await?;
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("borg list --json: {e}"))?;
            let mut out: Vec<Backup> = v["archives"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| {
                            // Borg prints local time without an offset.
                            let naive =
                                NaiveDateTime::parse_from_str(x["time"].as_str()?, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
                            let time = Local.from_local_datetime(&naive).earliest()?.with_timezone(&Utc);
                            Some(Backup { name: x["name"].as_str()?.to_string(), path: None, time, size: None })
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.sort_by_key(|b| std::cmp::Reverse(b.time));
            Ok(out)
        }
        _ => {
            let text = run(t, &["snapshots", "--json", "--no-lock"], timeout).await?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("restic snapshots --json: {e}"))?;
            let mut out: Vec<Backup> = v
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| {
                            let time = DateTime::parse_from_rfc3339(x["time"].as_str()?).ok()?.with_timezone(&Utc);
                            let id = x["short_id"].as_str().or_else(|| x["id"].as_str())?.to_string();
                            let size = x["summary"]["total_bytes_processed"].as_u64();
                            Some(Backup { name: id, path: None, time, size })
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.sort_by_key(|b| std::cmp::Reverse(b.time));
            Ok(out)
        }
    }
}

/// The repository's own consistency check.
pub async fn check(t: &Target) -> Result<String, String> {
    let timeout = t.command_timeout.get();
    let out = run(t, &["check"], timeout).await?;
    let last = out.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("check passed").trim().to_string();
    Ok(last)
}
