//! `config/performance.toml`: every key, its default and its check.

use qmoi_core::config::{ConfigDuration, EnvString, Problems, Validate};
use qmoi_core::runner::{HistorySettings, validate_interval_timeout};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PerformanceConfig {
    /// The report: samples of the interval summarised (min/avg/max/percentiles).
    pub interval: ConfigDuration,
    /// Internal sampling rate: short spikes between reports are not lost.
    pub sample_interval: ConfigDuration,
    pub timeout: ConfigDuration,
    pub history: HistorySettings,
    /// `performance_state.json`: baselines and prediction series, kept across restarts.
    pub data_dir: EnvString,
    /// Top processes by CPU and by memory in each report.
    pub top_processes: usize,
    /// Devices left out of disk I/O figures (prefixes; `loop`, `ram` always are).
    pub ignore_devices: Vec<String>,
    /// Interfaces left out of network figures.
    pub ignore_interfaces: Vec<String>,
    pub services: Vec<Service>,
    pub access_logs: Vec<AccessLog>,
    pub commands: Vec<CommandProbe>,
    pub baseline: BaselineConfig,
    pub prediction: PredictionConfig,
    pub recommendations: RecommendationConfig,
}

impl Default for PerformanceConfig {
    fn default() -> Self {
        Self {
            interval: ConfigDuration::from_secs(60),
            sample_interval: ConfigDuration::from_secs(1),
            timeout: ConfigDuration::from_secs(10),
            history: HistorySettings { every: ConfigDuration::from_secs(300), ..HistorySettings::default() },
            data_dir: EnvString::from("data"),
            top_processes: 5,
            ignore_devices: Vec::new(),
            ignore_interfaces: vec!["lo".into()],
            services: Vec::new(),
            access_logs: Vec::new(),
            commands: Vec::new(),
            baseline: BaselineConfig::default(),
            prediction: PredictionConfig::default(),
            recommendations: RecommendationConfig::default(),
        }
    }
}

/// A service to follow: found by process name, pidfile or cgroup.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: String,
    /// Process name (`comm`, or the executable's file name).
    #[serde(default)]
    pub process: Option<String>,
    #[serde(default)]
    pub pidfile: Option<EnvString>,
    /// cgroup v2 folder (`/sys/fs/cgroup/system.slice/nginx.service`): every process in it.
    #[serde(default)]
    pub cgroup: Option<EnvString>,
    /// The access log (by name) that measures this service: its p99 is compared across
    /// restarts.
    #[serde(default)]
    pub access_log: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// nginx/Apache combined, with the request time as the last field when present.
    #[default]
    Combined,
    /// Apache `vhost_combined`: `host:port` first, then combined. (`vhostcombined`, the
    /// only spelling accepted before, though the docs said `vhost_combined`, still is.)
    #[serde(alias = "vhostcombined")]
    VhostCombined,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    /// nginx `$request_time`.
    #[default]
    S,
    Ms,
    /// Apache `%D`.
    Us,
}

impl TimeUnit {
    pub fn to_seconds(self, v: f64) -> f64 {
        match self {
            TimeUnit::S => v,
            TimeUnit::Ms => v / 1e3,
            TimeUnit::Us => v / 1e6,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    #[default]
    None,
    /// The virtual host (JSON `host_field`, or the first field of `vhost_combined`).
    Vhost,
    /// The first of `path_prefixes` the request path starts with.
    PathPrefix,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLog {
    pub name: String,
    pub path: EnvString,
    #[serde(default)]
    pub format: LogFormat,
    /// Unit of the request time.
    #[serde(default)]
    pub time_unit: TimeUnit,
    /// JSON field names.
    #[serde(default = "default_status_field")]
    pub status_field: String,
    #[serde(default = "default_time_field")]
    pub time_field: String,
    #[serde(default = "default_path_field")]
    pub path_field: String,
    #[serde(default = "default_host_field")]
    pub host_field: String,
    #[serde(default)]
    pub group_by: GroupBy,
    #[serde(default)]
    pub path_prefixes: Vec<String>,
    /// 5xx share of requests above this percent: warning.
    #[serde(default)]
    pub error_rate_warning: Option<f64>,
    /// p99 latency above this: warning.
    #[serde(default)]
    pub p99_warning: Option<ConfigDuration>,
    /// On the first look, read at most this many bytes from the end of the log (0: start
    /// at the end; only requests from then on count).
    #[serde(default)]
    pub initial_read_bytes: u64,
    /// Bytes read per report at most (a flood is read over several reports).
    #[serde(default = "default_max_read")]
    pub max_read_bytes: u64,
}

fn default_max_read() -> u64 {
    64 * 1024 * 1024
}

fn default_status_field() -> String {
    "status".into()
}
fn default_time_field() -> String {
    "request_time".into()
}
fn default_path_field() -> String {
    "uri".into()
}
fn default_host_field() -> String {
    "host".into()
}

/// A command whose duration matters (a backup script, a cron job, a health query).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandProbe {
    pub name: String,
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default = "default_command_every")]
    pub every: ConfigDuration,
    #[serde(default = "default_command_timeout")]
    pub timeout: ConfigDuration,
    /// Slower than this: warning.
    #[serde(default)]
    pub warning: Option<ConfigDuration>,
}

fn default_command_every() -> ConfigDuration {
    ConfigDuration::from_secs(300)
}
fn default_command_timeout() -> ConfigDuration {
    ConfigDuration::from_secs(60)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineConfig {
    pub enabled: bool,
    /// EWMA weight of a new interval (0–1).
    pub alpha: f64,
    /// Deviations beyond the mean that count as degraded.
    pub k: f64,
    /// Consecutive degraded intervals before the alert.
    pub intervals: u32,
    /// Intervals learned before a baseline is trusted.
    pub min_samples: u32,
    /// Separate baselines for each hour of the week (168), for load with a weekly rhythm.
    pub by_hour_of_week: bool,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        Self { enabled: true, alpha: 0.1, k: 3.0, intervals: 3, min_samples: 10, by_hour_of_week: false }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PredictionConfig {
    pub enabled: bool,
    /// Linear fit over this much history.
    pub window: ConfigDuration,
    /// Predicted full within this: warning …
    pub warn_within: ConfigDuration,
    /// … within this: critical.
    pub critical_within: ConfigDuration,
    /// Mount points predicted; empty = every real file system.
    pub mounts: Vec<String>,
}

impl Default for PredictionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            window: ConfigDuration::from_secs(6 * 3600),
            warn_within: ConfigDuration::from_secs(3 * 86_400),
            critical_within: ConfigDuration::from_secs(12 * 3600),
            mounts: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecommendationConfig {
    pub enabled: bool,
    /// Steady RSS growth of a process faster than this (MiB per hour, R² ≥ 0.9 over
    /// `leak_window`): possible leak.
    pub leak_mib_per_hour: f64,
    pub leak_window: ConfigDuration,
    /// CPU steal above this percent (interval average): the host is oversubscribed.
    pub steal_percent: f64,
    /// A device busy above this percent (interval average): I/O saturation.
    pub io_util_percent: f64,
    /// Swap-ins for this many intervals in a row: memory pressure.
    pub swapin_intervals: u32,
}

impl Default for RecommendationConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            leak_mib_per_hour: 10.0,
            leak_window: ConfigDuration::from_secs(3600),
            steal_percent: 10.0,
            io_util_percent: 90.0,
            swapin_intervals: 5,
        }
    }
}

impl Validate for PerformanceConfig {
    fn validate(&self, p: &mut Problems) {
        validate_interval_timeout(self.interval, self.timeout, p);
        self.history.validate(p);
        if self.sample_interval.get() < Duration::from_millis(100) {
            p.push("sample_interval", format!("must be at least 100ms, got '{}'", self.sample_interval));
        }
        if self.sample_interval > self.interval {
            p.push("sample_interval", format!("must not be longer than interval ('{}')", self.interval));
        }
        let mut names = std::collections::HashSet::new();
        for (i, s) in self.services.iter().enumerate() {
            let key = format!("services[{i}]");
            let ways = [s.process.is_some(), s.pidfile.is_some(), s.cgroup.is_some()].iter().filter(|b| **b).count();
            if ways != 1 {
                p.push(key.clone(), "needs exactly one of `process`, `pidfile`, `cgroup`");
            }
            if !names.insert(("service", s.name.clone())) {
                p.push(format!("{key}.name"), format!("'{}' is used twice", s.name));
            }
            if let Some(l) = &s.access_log
                && !self.access_logs.iter().any(|a| &a.name == l)
            {
                p.push(format!("{key}.access_log"), format!("no access log named '{l}'"));
            }
        }
        for (i, a) in self.access_logs.iter().enumerate() {
            if !names.insert(("log", a.name.clone())) {
                p.push(format!("access_logs[{i}].name"), format!("'{}' is used twice", a.name));
            }
            if a.group_by == GroupBy::PathPrefix && a.path_prefixes.is_empty() {
                p.push(format!("access_logs[{i}].path_prefixes"), "group_by = \"path_prefix\" needs path_prefixes");
            }
        }
        for (i, c) in self.commands.iter().enumerate() {
            if c.command.trim().is_empty() {
                p.push(format!("commands[{i}].command"), "must not be empty");
            }
        }
        let b = &self.baseline;
        if !(b.alpha > 0.0 && b.alpha <= 1.0) {
            p.push("baseline.alpha", format!("must be in (0, 1], got '{}'", b.alpha));
        }
        if b.k.is_nan() || b.k <= 0.0 {
            p.push("baseline.k", format!("must be positive, got '{}'", b.k));
        }
        if self.prediction.critical_within > self.prediction.warn_within {
            p.push("prediction.critical_within", "must be at most warn_within");
        }
    }
}

qmoi_core::monitor_config!(PerformanceConfig);
