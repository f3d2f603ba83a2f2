//! Load average, judged per core (a load of 4 is fine on 8 cores, not on 1).

use super::Collected;
use crate::SystemHealthConfig;
use qmoi_core::CheckResult;
use sysinfo::System;

pub fn check(cfg: &SystemHealthConfig, sys: Option<&System>, out: &mut Collected) {
    let load = match System::load_average() {
        Ok(l) => l,
        Err(e) => {
            out.checks.push(CheckResult::unknown("load", format!("cannot read the load average: {e}")));
            return;
        }
    };
    let cores = sys.map_or(0, |s| s.cpus().len()).max(1) as f64;
    let per_core = load.one / cores;
    let c = cfg
        .load
        .check("load", "load per core", per_core, "load", |v| format!("{v:.2}"))
        .with_title(format!("High load: {:.2} per core ({:.2} on {cores} cores)", per_core, load.one));
    let message = format!("{} (1m {:.2}, 5m {:.2}, 15m {:.2})", c.message, load.one, load.five, load.fifteen);
    out.checks.push(CheckResult { message, ..c });
    out.metric("qmoi_load1", &[], load.one);
    out.metric("qmoi_load5", &[], load.five);
    out.metric("qmoi_load15", &[], load.fifteen);
    out.metric("qmoi_load1_per_core", &[], per_core);
    out.detail("load", serde_json::json!({"one": load.one, "five": load.five, "fifteen": load.fifteen}));
}
