//! The component table: ids, binaries, report and log file names, priorities.
//!
//! Every process agrees on these names through this one table.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How much a component matters to the overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Medium,
    High,
    Critical,
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
            Priority::Critical => "critical",
        })
    }
}

/// One row of the component table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComponentInfo {
    /// Stable id, used in config keys, report names and fingerprints.
    pub id: &'static str,
    /// Name of the executable.
    pub binary: &'static str,
    /// Log file name inside the log directory.
    pub log_file: &'static str,
    /// Priority given by the seed specification; config may override it.
    pub default_priority: Priority,
}

impl ComponentInfo {
    /// `<id>_latest.json`
    pub fn latest_report_name(&self) -> String {
        latest_report_name(self.id)
    }
}

/// `<id>_latest.json`, the file name of a component's latest report.
pub fn latest_report_name(id: &str) -> String {
    format!("{id}_latest.json")
}

/// The supervisor's own id.
pub const MASTER_MONITOR: &str = "master_monitor";

/// Every component of the product, in the order of the docs (README "Components").
pub const COMPONENTS: &[ComponentInfo] = &[
    ComponentInfo {
        id: MASTER_MONITOR,
        binary: "qmoi-supervisor",
        log_file: "master_monitor.log",
        default_priority: Priority::Critical,
    },
    ComponentInfo {
        id: "system_health",
        binary: "qmoi-system-health",
        log_file: "system_health_monitor.log",
        default_priority: Priority::High,
    },
    ComponentInfo {
        id: "performance",
        binary: "qmoi-performance",
        log_file: "performance_monitor.log",
        default_priority: Priority::High,
    },
    ComponentInfo {
        id: "security",
        binary: "qmoi-security",
        log_file: "qmoi_security_monitor.log",
        default_priority: Priority::Critical,
    },
    ComponentInfo {
        id: "backup",
        binary: "qmoi-backup",
        log_file: "backup_monitor.log",
        default_priority: Priority::Medium,
    },
    ComponentInfo {
        id: "cloud_resources",
        binary: "qmoi-cloud",
        log_file: "cloud_resources_monitor.log",
        default_priority: Priority::Medium,
    },
    ComponentInfo {
        id: "api_endpoints",
        binary: "qmoi-api-endpoints",
        log_file: "api_endpoints_monitor.log",
        default_priority: Priority::High,
    },
    ComponentInfo {
        id: "notification",
        binary: "qmoi-notify",
        log_file: "notification_monitor.log",
        default_priority: Priority::Critical,
    },
    ComponentInfo {
        id: "heartbeats",
        binary: "qmoi-heartbeat",
        log_file: "heartbeats_monitor.log",
        default_priority: Priority::High,
    },
];

/// Each monitor's row, for its own binary (no lookup that could fail at start).
pub const SYSTEM_HEALTH: &ComponentInfo = &COMPONENTS[1];
pub const PERFORMANCE: &ComponentInfo = &COMPONENTS[2];
pub const SECURITY: &ComponentInfo = &COMPONENTS[3];
pub const BACKUP: &ComponentInfo = &COMPONENTS[4];
pub const CLOUD_RESOURCES: &ComponentInfo = &COMPONENTS[5];
pub const API_ENDPOINTS: &ComponentInfo = &COMPONENTS[6];
pub const NOTIFICATION: &ComponentInfo = &COMPONENTS[7];
pub const HEARTBEATS: &ComponentInfo = &COMPONENTS[8];

/// Look a component up by id.
pub fn find(id: &str) -> Option<&'static ComponentInfo> {
    COMPONENTS.iter().find(|c| c.id == id)
}

/// The ids a supervisor can run (every component but itself), for error messages.
pub fn monitor_ids() -> impl Iterator<Item = &'static str> {
    COMPONENTS.iter().filter(|c| c.id != MASTER_MONITOR).map(|c| c.id)
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_constant_is_its_own_row() {
        use super::*;
        let named = [
            (SYSTEM_HEALTH, "system_health"),
            (PERFORMANCE, "performance"),
            (SECURITY, "security"),
            (BACKUP, "backup"),
            (CLOUD_RESOURCES, "cloud_resources"),
            (API_ENDPOINTS, "api_endpoints"),
            (NOTIFICATION, "notification"),
            (HEARTBEATS, "heartbeats"),
        ];
        for (c, id) in named {
            assert_eq!(c.id, id);
        }
        assert_eq!(named.len() + 1, COMPONENTS.len(), "every monitor has its constant");
    }

    use super::*;

    #[test]
    fn table_matches_design_file_names() {
        let sec = find("security").map(|c| (c.binary, c.log_file));
        assert_eq!(sec, Some(("qmoi-security", "qmoi_security_monitor.log")));
        let sh = find("system_health").map(|c| c.latest_report_name());
        assert_eq!(sh.as_deref(), Some("system_health_latest.json"));
        assert!(find("nope").is_none());
        assert_eq!(monitor_ids().count(), 8);
    }
}
