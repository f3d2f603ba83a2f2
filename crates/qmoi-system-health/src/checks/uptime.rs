//! Uptime (seconds since boot).

use super::Collected;
use qmoi_core::CheckResult;
use sysinfo::System;

/// `3d 4h`, `5h 2m`, `42s`
pub fn fmt_uptime(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

pub fn check(out: &mut Collected) {
    match System::uptime() {
        Ok(secs) => {
            out.checks.push(
                CheckResult::ok("uptime", format!("up {}", fmt_uptime(secs)))
                    .with_value(secs as f64, "seconds"),
            );
            out.metric("qmoi_uptime_seconds", &[], secs as f64);
        }
        Err(e) => out.checks.push(CheckResult::unknown(
            "uptime",
            format!("cannot read uptime: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        assert_eq!(super::fmt_uptime(42), "42s");
        assert_eq!(super::fmt_uptime(3 * 86_400 + 4 * 3600 + 5), "3d 4h");
        assert_eq!(super::fmt_uptime(3720), "1h 2m");
    }
}
