//! Open file descriptors, system-wide, against `fs.file-max`.

use super::{Collected, percent};
use crate::SystemHealthConfig;
use qmoi_core::CheckResult;
use qmoi_core::threshold::fmt_percent;

/// `/proc/sys/fs/file-nr`: allocated, allocated-but-unused, maximum.
pub fn parse_file_nr(s: &str) -> Option<(f64, f64)> {
    let v: Vec<f64> = s.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    match v.as_slice() {
        [alloc, unused, max] => Some((alloc - unused, *max)),
        _ => None,
    }
}

pub fn check(cfg: &SystemHealthConfig, out: &mut Collected) {
    let path = "/proc/sys/fs/file-nr";
    let (used, max) = match std::fs::read_to_string(path) {
        Ok(s) => match parse_file_nr(&s) {
            Some(v) => v,
            None => {
                out.checks.push(CheckResult::unknown(
                    "file_descriptors",
                    format!("{path} has an unexpected format: '{}'", s.trim()),
                ));
                return;
            }
        },
        Err(e) => {
            out.checks.push(qmoi_core::runner::unreadable("file_descriptors", path, e));
            return;
        }
    };
    let pct = percent(used, max);
    let c = cfg.file_descriptors.check("file_descriptors", "open files", pct, "percent", fmt_percent);
    let message = format!("{} ({used:.0} of {max:.0})", c.message);
    out.checks
        .push(CheckResult { message, ..c }.with_title(format!("Open files at {} of the limit", fmt_percent(pct))));
    out.metric("qmoi_file_descriptors_open", &[], used);
    out.metric("qmoi_file_descriptors_max", &[], max);
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_file_nr() {
        assert_eq!(super::parse_file_nr("960\t0\t2466174\n"), Some((960.0, 2_466_174.0)));
        assert_eq!(super::parse_file_nr("garbage"), None);
    }
}
