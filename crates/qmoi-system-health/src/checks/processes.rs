//! Required processes (by name or pidfile) and zombie count.

use super::Collected;
use crate::SystemHealthConfig;
use qmoi_core::{CheckResult, Status};
use sysinfo::{ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System, UpdateKind};

/// Is the process with this pid alive (and not a zombie)?
pub fn pid_alive(pid: i32) -> Result<bool, String> {
    let Ok(pid) = u32::try_from(pid) else { return Ok(false) };
    qmoi_core::procfs::alive(std::path::Path::new("/proc"), pid).map_err(|e| e.to_string())
}

pub fn check(cfg: &SystemHealthConfig, sys: Option<&mut System>, out: &mut Collected) {
    let Some(sys) = sys else {
        out.checks.push(CheckResult::unknown("zombies", "process list is not available on this system"));
        return;
    };
    // Names and states only: memory/CPU per process is not needed here and costs time.
    let needs_exe = cfg.processes.iter().any(|p| p.pidfile.is_none());
    let kind = if needs_exe {
        ProcessRefreshKind::nothing().with_exe(UpdateKind::OnlyIfNotSet)
    } else {
        ProcessRefreshKind::nothing()
    };
    sys.refresh_processes_specifics(ProcessesToUpdate::All, true, kind);
    let procs = sys.processes();
    let zombies = procs.values().filter(|p| p.status() == ProcessStatus::Zombie).count() as f64;
    out.metric("qmoi_processes", &[], procs.len() as f64);
    out.metric("qmoi_zombie_processes", &[], zombies);
    let c = cfg.zombies.check("zombies", "zombie processes", zombies, "processes", |v| format!("{v:.0}"));
    let title = format!("{zombies:.0} zombie processes");
    out.checks.push(c.with_title(title));

    for req in &cfg.processes {
        let name = format!("process:{}", req.name);
        let labels = [("process", req.name.as_str())];
        if let Some(pidfile) = &req.pidfile {
            let pf = pidfile.as_str();
            let result = std::fs::read_to_string(pf)
                .map_err(|e| format!("cannot read pidfile {pf}: {e}"))
                .and_then(|s| {
                    s.trim().parse::<i32>().map_err(|_| format!("pidfile {pf} does not hold a pid: '{}'", s.trim()))
                })
                .and_then(|pid| pid_alive(pid).map(|alive| (pid, alive)));
            let (status, msg, up) = match result {
                Ok((pid, true)) => (Status::Ok, format!("{} is running (pid {pid} from {pf})", req.name), 1.0),
                Ok((pid, false)) => {
                    (req.level.status(), format!("{} is not running (pid {pid} from {pf} is gone)", req.name), 0.0)
                }
                Err(e) => (req.level.status(), format!("{} is not running: {e}", req.name), 0.0),
            };
            out.metric("qmoi_process_count", &labels, up);
            out.checks
                .push(CheckResult::new(name, status, msg).with_title(format!("Process {} not running", req.name)));
            continue;
        }
        let count = procs
            .values()
            .filter(|p| p.status() != ProcessStatus::Zombie)
            .filter(|p| {
                p.name().to_string_lossy() == req.name
                    || p.exe().and_then(|e| e.file_name()).is_some_and(|f| f.to_string_lossy() == req.name)
            })
            .count();
        out.metric("qmoi_process_count", &labels, count as f64);
        let c = if count >= req.min {
            CheckResult::ok(
                &name,
                format!("{count} {} process{} running", req.name, if count == 1 { "" } else { "es" }),
            )
        } else {
            CheckResult::new(
                &name,
                req.level.status(),
                format!(
                    "{count} {} process{} running, at least {} required",
                    req.name,
                    if count == 1 { "" } else { "es" },
                    req.min
                ),
            )
            .with_title(format!("Process {} not running", req.name))
        };
        out.checks.push(c.with_value(count as f64, "processes"));
    }
}
