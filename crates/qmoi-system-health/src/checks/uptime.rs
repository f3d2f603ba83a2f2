//! Uptime (seconds since boot).

use super::Collected;
use qmoi_core::CheckResult;
use sysinfo::System;

pub fn check(out: &mut Collected) {
    match System::uptime() {
        Ok(secs) => {
            out.checks.push(
                CheckResult::ok("uptime", format!("up {}", qmoi_core::human::duration(secs as f64)))
                    .with_value(secs as f64, "seconds"),
            );
            out.metric("qmoi_uptime_seconds", &[], secs as f64);
        }
        Err(e) => out.checks.push(CheckResult::unknown("uptime", format!("cannot read uptime: {e}"))),
    }
}
