//! Memory and swap. "Used" memory is total minus available (what `free` shows as
//! available), so page cache that the kernel can drop does not count as used.

use super::{Collected, fmt_bytes, percent};
use crate::SystemHealthConfig;
use qmoi_core::CheckResult;
use qmoi_core::threshold::fmt_percent;
use sysinfo::System;

pub fn check(cfg: &SystemHealthConfig, sys: Option<&mut System>, out: &mut Collected) {
    let Some(sys) = sys else {
        out.checks.push(CheckResult::unknown("memory_usage", "memory figures are not available on this system"));
        return;
    };
    sys.refresh_memory();
    let total = sys.total_memory() as f64;
    let available = sys.available_memory() as f64;
    let used_pct = percent(total - available, total);
    let c = cfg.memory.check("memory_usage", "memory", used_pct, "percent", fmt_percent);
    let message = format!("{} ({} of {} used)", c.message, fmt_bytes(total - available), fmt_bytes(total));
    out.checks.push(CheckResult { message, ..c }.with_title(format!("Memory {} used", fmt_percent(used_pct))));
    out.metric("qmoi_memory_total_bytes", &[], total);
    out.metric("qmoi_memory_available_bytes", &[], available);
    out.metric("qmoi_memory_used_ratio", &[], used_pct / 100.0);

    let swap_total = sys.total_swap() as f64;
    let swap_used = sys.used_swap() as f64;
    if swap_total > 0.0 {
        let pct = percent(swap_used, swap_total);
        let c = cfg.swap.check("swap_usage", "swap", pct, "percent", fmt_percent);
        let message = format!("{} ({} of {})", c.message, fmt_bytes(swap_used), fmt_bytes(swap_total));
        out.checks.push(CheckResult { message, ..c }.with_title(format!("Swap {} used", fmt_percent(pct))));
        out.metric("qmoi_swap_used_ratio", &[], pct / 100.0);
    } else {
        out.checks.push(CheckResult::ok("swap_usage", "no swap configured"));
    }
    out.metric("qmoi_swap_total_bytes", &[], swap_total);
    out.detail(
        "memory",
        serde_json::json!({
            "total_bytes": total, "available_bytes": available,
            "swap_total_bytes": swap_total, "swap_used_bytes": swap_used,
        }),
    );
}
