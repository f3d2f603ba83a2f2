//! Linear predictions of when a disk (bytes, inodes) or memory fills.

use crate::PerfMonitor;
use crate::analysis;
use chrono::Utc;
use qmoi_core::CheckResult;
use qmoi_core::Status;
use qmoi_core::human::bytes as fmt_bytes;
use qmoi_core::human::duration as fmt_dur;
use qmoi_core::runner::Collected;
use serde_json::json;

impl PerfMonitor {
    pub(crate) fn predictions(&mut self, out: &mut Collected) {
        if !self.cfg.prediction.enabled {
            return;
        }
        let p = &self.cfg.prediction;
        let now = Utc::now().timestamp_millis() as f64 / 1000.0;
        let window = p.window.as_secs_f64();
        let mut rows = Vec::new();
        let mut resources: Vec<(String, f64, f64, &'static str)> = Vec::new();
        for m in mounts(&p.mounts) {
            if let Ok(st) = nix::sys::statvfs::statvfs(m.as_str()) {
                let frag = st.fragment_size() as f64;
                let total = st.blocks() as f64 * frag;
                let used = total - st.blocks_available() as f64 * frag;
                if total > 0.0 {
                    resources.push((format!("disk:{m}"), used, total, "bytes"));
                }
                let files = st.files() as f64;
                if files > 0.0 {
                    resources.push((format!("inodes:{m}"), files - st.files_available() as f64, files, "inodes"));
                }
            }
        }
        if let Ok(mi) = std::fs::read_to_string("/proc/meminfo") {
            let f = |n: &str| {
                mi.lines()
                    .find(|l| l.starts_with(n))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<f64>().ok())
            };
            if let (Some(t), Some(a)) = (f("MemTotal:"), f("MemAvailable:")) {
                resources.push(("memory".into(), (t - a) * 1024.0, t * 1024.0, "bytes"));
            }
        }
        let tracked = resources.len();
        for (res, used, total, unit) in resources {
            let Some(pred) = analysis::predict(&mut self.state, &res, now, used, total, window) else { continue };
            out.metric(
                "qmoi_perf_predicted_seconds_to_full",
                &[("resource", &res)],
                pred.seconds_to_full.unwrap_or(f64::INFINITY),
            );
            if let Some(secs) = pred.seconds_to_full {
                let status = if secs < p.critical_within.as_secs_f64() {
                    Status::Critical
                } else if secs < p.warn_within.as_secs_f64() {
                    Status::Warning
                } else {
                    Status::Ok
                };
                // Only a trend that explains the data is worth an alert.
                if status != Status::Ok && pred.r2 >= 0.5 {
                    let rate = if unit == "bytes" {
                        format!("{}/h", fmt_bytes(pred.rate_per_hour))
                    } else {
                        format!("{:.0} {unit}/h", pred.rate_per_hour)
                    };
                    out.checks.push(
                        CheckResult::new(
                            format!("prediction:{res}"),
                            status,
                            format!(
                                "{res} full in about {} at the current rate ({rate}; {:.1}% used; fit over {} points, R² {:.2})",
                                fmt_dur(secs),
                                pred.used / pred.total * 100.0,
                                pred.points,
                                pred.r2
                            ),
                        )
                        .with_value(secs, "seconds")
                        .with_title(format!("{res} will fill up soon")),
                    );
                }
            }
            rows.push(pred);
        }
        let mut ok_msg = format!("{tracked} resources tracked, {} with enough history for a trend", rows.len());
        if let Some(soonest) = rows
            .iter()
            .filter_map(|r| r.seconds_to_full.map(|s| (s, r.resource.clone())))
            .min_by(|a, b| a.0.total_cmp(&b.0))
        {
            ok_msg.push_str(&format!("; soonest full: {} in about {}", soonest.1, fmt_dur(soonest.0)));
        }
        out.checks.push(CheckResult::ok("predictions", ok_msg));
        out.details.insert("predictions".into(), json!(rows));
    }
}

/// Mount points to predict: the configured ones, or every real (disk-backed) file system.
fn mounts(configured: &[String]) -> Vec<String> {
    if !configured.is_empty() {
        return configured.to_vec();
    }
    // overlay: a container's root, whose usage is the host disk's.
    const REAL: [&str; 9] = ["ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "vfat", "overlay"];
    let mut out: Vec<String> = std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && REAL.contains(&f[2])).then(|| f[1].replace("\\040", " "))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}
