//! Processes: the top N by CPU and by memory each interval, and configured services (by
//! name, pidfile or cgroup) with CPU%, RSS, threads, open fds and I/O rates.

use crate::config::Service;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Instant;

use qmoi_core::procfs::{page_size, ticks_per_second};

#[derive(Debug, Clone, Serialize)]
pub struct Proc {
    pub pid: u32,
    pub name: String,
    pub cpu_percent: f64,
    pub rss_bytes: u64,
    pub threads: u64,
    #[serde(skip)]
    pub start: u64,
}

/// One look at every process, with CPU% since the previous look.
#[derive(Debug, Default)]
pub struct ProcTable {
    prev: HashMap<(u32, u64), u64>,
    prev_at: Option<Instant>,
    prev_io: HashMap<(u32, u64), (u64, u64)>,
}

fn read_proc(pid: u32) -> Option<(String, u64, u64, u64, u64)> {
    let s = qmoi_core::procfs::stat(pid)?;
    let (rss, ticks) = (s.rss_pages * page_size(), s.cpu_ticks());
    Some((s.comm, ticks, s.num_threads, s.starttime, rss))
}

impl ProcTable {
    /// Every process now (CPU% is 0 on the first look).
    pub fn scan(&mut self) -> Vec<Proc> {
        let now = Instant::now();
        let dt = self.prev_at.map(|t| now.duration_since(t).as_secs_f64());
        let mut next = HashMap::new();
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            let Some((name, ticks, threads, start, rss)) = read_proc(pid) else { continue };
            let cpu = match (dt, self.prev.get(&(pid, start))) {
                (Some(dt), Some(old)) if dt > 0.0 => {
                    ticks.saturating_sub(*old) as f64 / ticks_per_second() / dt * 100.0
                }
                _ => 0.0,
            };
            next.insert((pid, start), ticks);
            out.push(Proc { pid, name, cpu_percent: cpu, rss_bytes: rss, threads, start });
        }
        self.prev = next;
        self.prev_at = Some(now);
        out
    }

    /// Read and write bytes per second of a process since the previous call (None when
    /// `/proc/<pid>/io` is not readable: another user's process without root).
    pub fn io_rate(&mut self, p: &Proc, dt: f64) -> Option<(f64, f64)> {
        let text = std::fs::read_to_string(format!("/proc/{}/io", p.pid)).ok()?;
        let get = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)).and_then(|v| v.trim().parse::<u64>().ok());
        let (r, w) = (get("read_bytes:")?, get("write_bytes:")?);
        let old = self.prev_io.insert((p.pid, p.start), (r, w));
        old.map(|(or, ow)| (r.saturating_sub(or) as f64 / dt.max(1e-3), w.saturating_sub(ow) as f64 / dt.max(1e-3)))
    }
}

/// The pids of a service.
pub fn service_pids(s: &Service, procs: &[Proc]) -> Result<Vec<u32>, String> {
    if let Some(name) = &s.process {
        return Ok(procs
            .iter()
            .filter(|p| {
                p.name == *name
                    || std::fs::read_link(format!("/proc/{}/exe", p.pid))
                        .ok()
                        .and_then(|e| {
                            e.file_name().map(|f| f.to_string_lossy().trim_end_matches(" (deleted)") == name.as_str())
                        })
                        .unwrap_or(false)
            })
            .map(|p| p.pid)
            .collect());
    }
    if let Some(pf) = &s.pidfile {
        let text = std::fs::read_to_string(pf.as_str()).map_err(|e| format!("pidfile {pf}: {e}"))?;
        let pid: u32 = text.trim().parse().map_err(|_| format!("pidfile {pf}: '{}' is not a pid", text.trim()))?;
        return Ok(vec![pid]);
    }
    if let Some(cg) = &s.cgroup {
        let text = std::fs::read_to_string(format!("{}/cgroup.procs", cg.as_str()))
            .map_err(|e| format!("cgroup {cg}: {e}"))?;
        return Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect());
    }
    Ok(Vec::new())
}

/// Open file descriptors of a process (None when not ours to see).
pub fn fd_count(pid: u32) -> Option<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd")).ok().map(|d| d.count() as u64)
}
