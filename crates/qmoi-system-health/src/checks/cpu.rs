//! CPU usage: all cores averaged since the previous run, and each core as a metric.

use super::Collected;
use crate::SystemHealthConfig;
use qmoi_core::CheckResult;
use qmoi_core::threshold::{Threshold, fmt_percent};
use sysinfo::System;

pub fn check(cfg: &SystemHealthConfig, sys: Option<&mut System>, out: &mut Collected) {
    let Some(sys) = sys else {
        out.checks.push(CheckResult::unknown("cpu_usage", "CPU usage is not available on this system"));
        return;
    };
    sys.refresh_cpu_usage();
    let total = f64::from(sys.global_cpu_usage());
    let t = Threshold::above(cfg.cpu.warning, cfg.cpu.critical);
    out.checks.push(
        t.check("cpu_usage", "CPU", total, "percent", fmt_percent)
            .with_title(format!("CPU busy: {}", fmt_percent(total))),
    );
    out.metric("qmoi_cpu_usage_ratio", &[], total / 100.0);
    out.metric("qmoi_cpu_cores", &[], sys.cpus().len() as f64);
    let cores: Vec<f64> = sys.cpus().iter().map(|c| f64::from(c.usage())).collect();
    if cfg.cpu.per_core {
        for (i, u) in cores.iter().enumerate() {
            out.metric("qmoi_cpu_core_usage_ratio", &[("core", &i.to_string())], u / 100.0);
        }
    }
    out.detail(
        "cpu",
        serde_json::json!({
            "cores": cores.len(),
            "usage_percent": qmoi_core::threshold::round2(total),
            "per_core_percent": cores.iter().map(|u| qmoi_core::threshold::round2(*u)).collect::<Vec<_>>(),
        }),
    );
}
