//! `config/system_health.toml`: every key, its default and its check.

/// The level a config gives a kind of problem (`warning` or `critical`).
pub use qmoi_core::Severity;
use qmoi_core::config::{ConfigDuration, EnvString, Problems, Validate};
use qmoi_core::runner::{HistorySettings, validate_interval_timeout};
use qmoi_core::threshold::Threshold;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SystemHealthConfig {
    /// Seconds between runs (the supervisor's per-component interval overrides it).
    pub interval: ConfigDuration,
    /// Bound on each check (a DNS lookup, a TCP connect, a `statvfs` on a hung NFS mount).
    pub timeout: ConfigDuration,
    pub history: HistorySettings,
    pub cpu: CpuConfig,
    pub load: Threshold,
    pub memory: Threshold,
    pub swap: Threshold,
    pub disk: DiskConfig,
    pub network: NetworkConfig,
    pub connectivity: Vec<ConnectivityTarget>,
    pub processes: Vec<RequiredProcess>,
    pub zombies: Threshold,
    pub file_descriptors: Threshold,
    pub temperature: TemperatureConfig,
    /// Nagios / Monitoring Plugins checks.
    pub plugins: Vec<PluginConfig>,
}

/// One `[[plugins]]` entry: a Nagios-compatible check program.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The check's name: `plugin:<name>` in the report, `plugin="<name>"` on metrics.
    pub name: String,
    /// The program (an absolute path, or a name looked up in PATH).
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// Run at most this often (unset: every run of the monitor).
    #[serde(default)]
    pub interval: Option<ConfigDuration>,
    /// Killed with its process group after this long; the check is then unknown.
    #[serde(default = "plugin_timeout")]
    pub timeout: ConfigDuration,
    /// false: the plugin's CRITICAL counts as a warning (a check that must not page).
    #[serde(default = "yes")]
    pub critical: bool,
}

fn plugin_timeout() -> ConfigDuration {
    ConfigDuration::from_secs(10)
}

fn yes() -> bool {
    true
}

impl Default for SystemHealthConfig {
    fn default() -> Self {
        Self {
            interval: ConfigDuration::from_secs(60),
            timeout: ConfigDuration::from_secs(5),
            history: HistorySettings::default(),
            cpu: CpuConfig::default(),
            load: Threshold::above(2.0, 4.0),
            memory: Threshold::above(85.0, 95.0),
            swap: Threshold::above(50.0, 80.0),
            disk: DiskConfig::default(),
            network: NetworkConfig::default(),
            connectivity: vec![ConnectivityTarget {
                name: "localhost-dns".into(),
                kind: ProbeKind::Dns,
                target: "localhost".into(),
                timeout: None,
                level: Severity::Warning,
            }],
            processes: Vec::new(),
            zombies: Threshold::above(5.0, 20.0),
            file_descriptors: Threshold::above(80.0, 95.0),
            temperature: TemperatureConfig::default(),
            plugins: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CpuConfig {
    /// Percent of all cores busy, averaged since the previous run.
    pub warning: f64,
    pub critical: f64,
    /// Also export each core's usage as a metric.
    pub per_core: bool,
}

impl Default for CpuConfig {
    fn default() -> Self {
        Self { warning: 85.0, critical: 95.0, per_core: true }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiskConfig {
    /// Percent of space used, as `df` counts it (space reserved for root counts as used).
    pub warning: f64,
    pub critical: f64,
    pub inode_warning: f64,
    pub inode_critical: f64,
    /// When not empty, only these mount points are checked.
    pub mounts: Vec<String>,
    /// Mount points to skip.
    pub ignore_mounts: Vec<String>,
    /// File system types to skip, on top of the pseudo file systems always skipped.
    pub ignore_fs_types: Vec<String>,
}

impl Default for DiskConfig {
    fn default() -> Self {
        Self {
            warning: 85.0,
            critical: 95.0,
            inode_warning: 85.0,
            inode_critical: 95.0,
            mounts: Vec::new(),
            ignore_mounts: Vec::new(),
            ignore_fs_types: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Interfaces that must be up (an alert when one is down or missing).
    pub required_up: Vec<String>,
    /// Interfaces left out of the report.
    pub ignore_interfaces: Vec<String>,
    /// Percent of packets with errors since the previous run.
    pub error_rate: Threshold,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self { required_up: Vec::new(), ignore_interfaces: vec!["lo".into()], error_rate: Threshold::above(1.0, 5.0) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    /// Open a TCP connection to `host:port`.
    Tcp,
    /// Resolve a name with the system resolver.
    Dns,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectivityTarget {
    /// Check name: `connectivity:<name>`.
    pub name: String,
    pub kind: ProbeKind,
    /// `host:port` for tcp, a host name for dns.
    pub target: EnvString,
    /// Overrides the global `timeout`.
    #[serde(default)]
    pub timeout: Option<ConfigDuration>,
    #[serde(default = "default_warning")]
    pub level: Severity,
}

fn default_warning() -> Severity {
    Severity::Warning
}

fn default_critical() -> Severity {
    Severity::Critical
}

fn default_min() -> usize {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequiredProcess {
    /// Process name (as in `ps -e`) or executable file name; also the check name.
    pub name: String,
    /// When set, the process whose pid is in this file must be alive instead.
    #[serde(default)]
    pub pidfile: Option<EnvString>,
    /// At least this many processes of that name.
    #[serde(default = "default_min")]
    pub min: usize,
    #[serde(default = "default_critical")]
    pub level: Severity,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemperatureConfig {
    pub enabled: bool,
    /// Degrees Celsius.
    pub warning: f64,
    pub critical: f64,
}

impl Default for TemperatureConfig {
    fn default() -> Self {
        Self { enabled: true, warning: 80.0, critical: 95.0 }
    }
}

impl Validate for SystemHealthConfig {
    fn validate(&self, p: &mut Problems) {
        validate_interval_timeout(self.interval, self.timeout, p);
        self.history.validate(p);
        let pct = (0.0, 100.0);
        p.check_thresholds("cpu", self.cpu.warning, self.cpu.critical, false, pct);
        self.load.validate("load", (0.0, 10_000.0), p);
        self.memory.validate("memory", pct, p);
        self.swap.validate("swap", pct, p);
        p.check_thresholds("disk", self.disk.warning, self.disk.critical, false, pct);
        p.check_thresholds("disk.inode", self.disk.inode_warning, self.disk.inode_critical, false, pct);
        for (i, m) in self.disk.mounts.iter().chain(&self.disk.ignore_mounts).enumerate() {
            if !m.starts_with('/') {
                p.push(format!("disk.mounts[{i}]"), format!("must be an absolute mount point, got '{m}'"));
            }
        }
        self.network.error_rate.validate("network.error_rate", pct, p);
        let mut plugin_names = std::collections::HashSet::new();
        for (i, g) in self.plugins.iter().enumerate() {
            let key = format!("plugins[{i}]");
            if g.name.is_empty() || !g.name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
                p.push(format!("{key}.name"), format!("must be letters, digits, '_', '-' or '.', got '{}'", g.name));
            }
            if !plugin_names.insert(g.name.as_str()) {
                p.push(format!("{key}.name"), format!("'{}' is used twice; names must be unique", g.name));
            }
            if g.command.trim().is_empty() {
                p.push(format!("{key}.command"), "must name a program");
            } else if g.command.starts_with('/') && !Path::new(&g.command).is_file() {
                p.push(
                    format!("{key}.command"),
                    format!("'{}' does not exist (Debian: apt install monitoring-plugins-basic)", g.command),
                );
            }
            let t = g.timeout.get();
            if t < Duration::from_millis(100) || t > Duration::from_secs(600) {
                p.push(format!("{key}.timeout"), format!("must be between 100ms and 10m, got '{}'", g.timeout));
            }
            if let Some(every) = g.interval
                && every.get() < t
            {
                p.push(
                    format!("{key}.interval"),
                    format!("'{every}' is shorter than the timeout '{}': runs would overlap", g.timeout),
                );
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, c) in self.connectivity.iter().enumerate() {
            let key = format!("connectivity[{i}]");
            if c.name.trim().is_empty() {
                p.push(format!("{key}.name"), "must not be empty");
            }
            if !names.insert(c.name.as_str()) {
                p.push(format!("{key}.name"), format!("'{}' is used twice; names must be unique", c.name));
            }
            match c.kind {
                ProbeKind::Tcp if !valid_host_port(c.target.as_str()) => p.push(
                    format!("{key}.target"),
                    format!("tcp target must be host:port (e.g. '127.0.0.1:22'), got '{}'", c.target),
                ),
                ProbeKind::Dns if c.target.as_str().trim().is_empty() => {
                    p.push(format!("{key}.target"), "dns target must be a host name");
                }
                _ => {}
            }
            if let Some(t) = c.timeout
                && t.get() < Duration::from_millis(10)
            {
                p.push(format!("{key}.timeout"), format!("must be at least 10ms, got '{t}'"));
            }
        }
        for (i, r) in self.processes.iter().enumerate() {
            if r.name.trim().is_empty() {
                p.push(format!("processes[{i}].name"), "must not be empty");
            }
            if r.min == 0 {
                p.push(format!("processes[{i}].min"), "must be at least 1, got '0'");
            }
        }
        self.zombies.validate("zombies", (0.0, 1e9), p);
        self.file_descriptors.validate("file_descriptors", pct, p);
        p.check_thresholds("temperature", self.temperature.warning, self.temperature.critical, false, (-50.0, 200.0));
    }
}

fn valid_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

qmoi_core::monitor_config!(SystemHealthConfig);

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn defaults_are_valid() {
        let mut p = Problems::new();
        SystemHealthConfig::default().validate(&mut p);
        assert!(p.is_empty(), "{p}");
    }

    #[test]
    fn bad_values_are_all_reported() {
        let text = r#"
interval = 0
[disk]
warning = 96
critical = 90
[[connectivity]]
name = "x"
kind = "tcp"
target = "nope"
"#;
        let cfg: SystemHealthConfig = match qmoi_core::config::parse_str(Path::new("sh.toml"), text) {
            Ok(c) => c,
            Err(e) => panic!("parses: {e}"),
        };
        let mut p = Problems::new();
        cfg.validate(&mut p);
        let text = p.to_string();
        assert!(text.contains("key 'interval': must be at least 1 second, got '0s'"), "{text}");
        assert!(text.contains("key 'disk': critical (90) must be at least warning (96)"), "{text}");
        assert!(text.contains("tcp target must be host:port"), "{text}");
    }
}
