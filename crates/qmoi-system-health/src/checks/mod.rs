//! One module per concern. Each adds check results, metrics and details to [`Collected`].

pub mod connectivity;
pub mod cpu;
pub mod disk;
pub mod fds;
pub mod load;
pub mod memory;
pub mod network;
pub mod processes;
pub mod temperature;
pub mod uptime;

pub use qmoi_core::report::metric_key;
pub use qmoi_core::runner::Collected;

pub use qmoi_core::human::bytes as fmt_bytes;

/// Percent `part / whole`, NaN when `whole` is zero (the threshold then says unknown).
pub fn percent(part: f64, whole: f64) -> f64 {
    if whole > 0.0 { part / whole * 100.0 } else { f64::NAN }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_keys_escape_label_values() {
        assert_eq!(metric_key("qmoi_x", &[]), "qmoi_x");
        assert_eq!(
            metric_key("qmoi_disk_used_ratio", &[("mount", "/a \"b\"")]),
            "qmoi_disk_used_ratio{mount=\"/a \\\"b\\\"\"}"
        );
    }
}
