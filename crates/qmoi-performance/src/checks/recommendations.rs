//! Recommendations with their evidence.

use crate::PerfMonitor;
use crate::stats::Summary;
use qmoi_core::CheckResult;
use qmoi_core::Status;
use qmoi_core::human::bytes as fmt_bytes;
use qmoi_core::human::duration as fmt_dur;
use qmoi_core::runner::Collected;
use serde_json::json;
use std::collections::BTreeMap;

impl PerfMonitor {
    pub(crate) fn recommendations(&mut self, system: &BTreeMap<String, Summary>, out: &mut Collected) {
        let r = &self.cfg.recommendations;
        if !r.enabled {
            return;
        }
        let mut recs = Vec::new();
        let mut rec = |out: &mut Collected, key: String, title: String, evidence: String| {
            out.checks.push(
                CheckResult::new(format!("recommendation:{key}"), Status::Warning, evidence.clone())
                    .with_title(title.clone()),
            );
            recs.push(json!({"key": key, "title": title, "evidence": evidence}));
        };
        for l in self.leaks.suspects(r.leak_mib_per_hour, r.leak_window.as_secs_f64()) {
            rec(
                out,
                format!("leak:{}", l.process),
                format!("Possible memory leak: {}", l.process),
                format!(
                    "{} grew steadily by {:.1} MiB/h over {} ({} samples, R² {:.2}), now {}; restart it and look for a leak",
                    l.process,
                    l.mib_per_hour,
                    fmt_dur(l.over_seconds),
                    l.points,
                    l.r2,
                    fmt_bytes(l.rss_bytes)
                ),
            );
        }
        if let Some(s) = system.get("qmoi_perf_cpu_percent{mode=\"steal\"}")
            && s.avg > r.steal_percent
        {
            rec(
                out,
                "cpu_steal".into(),
                "CPU steal: the host is oversubscribed".into(),
                format!(
                    "the hypervisor took {:.1}% of CPU time on average (max {:.1}%) this interval; move the VM or ask for dedicated cores",
                    s.avg, s.max
                ),
            );
        }
        for (k, s) in system.range("qmoi_perf_disk_util_percent".to_string()..) {
            if !k.starts_with("qmoi_perf_disk_util_percent") {
                break;
            }
            if s.avg > r.io_util_percent {
                let dev = k.split('"').nth(1).unwrap_or(k).to_string();
                rec(
                    out,
                    format!("io_saturation:{dev}"),
                    format!("I/O saturation on {dev}"),
                    format!(
                        "{dev} was busy {:.0}% of the time on average this interval (p95 {:.0}%); spread the I/O or use faster storage",
                        s.avg, s.p95
                    ),
                );
            }
        }
        let swapin = system.get("qmoi_perf_swap_in_pages_per_second").map_or(0.0, |s| s.avg);
        self.swapin_streak = if swapin > 0.0 { self.swapin_streak + 1 } else { 0 };
        if self.swapin_streak >= r.swapin_intervals {
            rec(
                out,
                "swap_in".into(),
                "Sustained swap-in: not enough memory".into(),
                format!(
                    "pages were read back from swap for {} intervals in a row ({swapin:.1} pages/s now); add memory or reduce the working set",
                    self.swapin_streak
                ),
            );
        }
        for (svc, before) in self.before_restart.clone() {
            let Some((_, Some(now_p99))) = self.services.get(&svc) else { continue };
            if *now_p99 > 2.0 * before {
                rec(
                    out,
                    format!("latency_after_restart:{svc}"),
                    format!("{svc} is slower since its restart"),
                    format!(
                        "p99 latency {:.0} ms now, {:.0} ms before the restart ({:.1}×); compare the deployed versions or configuration",
                        now_p99 * 1000.0,
                        before * 1000.0,
                        now_p99 / before.max(1e-9)
                    ),
                );
            }
        }
        out.checks.push(CheckResult::ok("recommendations", format!("{} recommendation(s)", recs.len())));
        out.details.insert("recommendations".into(), json!(recs));
    }
}
