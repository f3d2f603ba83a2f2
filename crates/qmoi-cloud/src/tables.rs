//! What `qmoi-cloud --check` prints before the checks: each provider's inventory as tables.

use crate::CloudMonitor;

/// Rows printed per provider; the report has them all.
const MAX_ROWS: usize = 200;

/// The `--check` tables: per provider its counts, instances (at most [`MAX_ROWS`]) and
/// waste findings.
pub fn inventory_tables(m: &CloudMonitor) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for crate::LastRun { provider: name, instances, volumes, ips, waste } in m.last() {
        let _ = writeln!(
            out,
            "{name}: {} instance(s), {} volume(s) ({} unattached), {} public IP(s) ({} unassociated)",
            instances.len(),
            volumes.len(),
            volumes.iter().filter(|v| !v.attached).count(),
            ips.len(),
            ips.iter().filter(|i| !i.associated).count()
        );
        if !instances.is_empty() {
            let _ = writeln!(
                out,
                "  {:<20}  {:<20}  {:<14}  {:<10}  {:<16}  {:<12}  LAUNCHED",
                "INSTANCE", "NAME", "TYPE", "STATE", "ZONE", "CHECKS"
            );
        }
        for i in instances.iter().take(MAX_ROWS) {
            let zone = if i.zone.is_empty() { &i.region } else { &i.zone };
            let checks = i.status_check.as_ref().map_or_else(
                || "-".to_string(),
                |s| if s.failed() { "IMPAIRED".to_string() } else { s.instance.clone() },
            );
            let _ = writeln!(
                out,
                "  {:<20}  {:<20}  {:<14}  {:<10}  {:<16}  {:<12}  {}{}",
                qmoi_core::human::clip(&i.id, 20),
                qmoi_core::human::clip(&i.name, 20),
                qmoi_core::human::clip(&i.itype, 14),
                i.state.as_str(),
                qmoi_core::human::clip(zone, 16),
                checks,
                i.launched.map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M").to_string()),
                if i.critical { "  [critical]" } else { "" }
            );
        }
        if instances.len() > MAX_ROWS {
            let _ =
                writeln!(out, "  … {} more (all are in the report's details.instances)", instances.len() - MAX_ROWS);
        }
        if !waste.is_empty() {
            let _ = writeln!(out, "  Waste:");
            for w in waste.iter().take(MAX_ROWS) {
                let _ = writeln!(out, "    {:<18}  {}", w.kind, w.detail);
            }
        }
        out.push('\n');
    }
    out
}
