//! `config/master_monitor.toml` (or the seed's `master_monitor_config.json`).
//!
//! The raw file is parsed with `deny_unknown_fields`, validated as a whole (every problem
//! listed), then resolved into [`Plan`]: components in dependency order with binaries,
//! intervals and restart policy worked out.

use qmoi_core::component::{self, Priority};
use qmoi_core::config::{ConfigDuration, EnvString, Problems, Validate};
use qmoi_core::runner::HistorySettings;
pub use qmoi_dashboard::config::DashboardConfig;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MasterConfig {
    /// One entry per monitor, keyed by component id (`system_health`, `security`, …).
    pub monitoring_components: BTreeMap<String, ComponentConfig>,
    pub dashboard: DashboardConfig,
    pub alerts: AlertsConfig,
    pub restart: RestartConfig,
    pub paths: PathsConfig,
    pub report: MasterReportConfig,
    /// Push every metric of `/metrics` to Prometheus-compatible stores (docs/FLEET.md).
    pub remote_write: qmoi_remote_write::RemoteWriteConfig,
    /// The Fleet page: every host as the fleet's Prometheus-compatible engine sees it.
    pub fleet: qmoi_dashboard::fleet::FleetConfig,
    /// The gRPC API beside the REST API (docs/API.md, "gRPC").
    pub grpc: qmoi_grpc::GrpcConfig,
    /// Recurring maintenance windows (docs/API.md, "Maintenance windows").
    pub maintenance: Vec<RecurringMaintenance>,
}

/// `[[maintenance]]`: a window that opens at every time of `cron` (in `tz`) for
/// `duration`, for each of `components` (only its `subject`, or only what carries all
/// of `labels`; no components with labels: every component).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecurringMaintenance {
    #[serde(default)]
    pub components: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "qmoi_core::report::Labels::is_empty")]
    pub labels: qmoi_core::report::Labels,
    pub cron: String,
    #[serde(default)]
    pub tz: Option<String>,
    pub duration: ConfigDuration,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComponentConfig {
    pub enabled: bool,
    /// Seconds between the monitor's runs; passed to it as `--interval`.
    pub interval: ConfigDuration,
    /// Overrides the component's default priority (`qmoi_core::component::COMPONENTS`).
    pub priority: Option<Priority>,
    /// Components that must be *ready* (have written a fresh report) before this one starts.
    pub depends_on: Vec<String>,
    /// The executable; default: the component's binary beside `qmoi-supervisor`, then `PATH`.
    pub command: Option<EnvString>,
    /// Extra arguments, after the ones the supervisor passes.
    pub args: Vec<EnvString>,
    /// The component's own config file; default `<config dir>/<id>.toml` when it exists.
    pub config: Option<EnvString>,
    /// A report older than this means the monitor hangs: restart it. Default 3 × interval.
    pub stale_after: Option<ConfigDuration>,
    /// Time allowed for the first report after a start. Default: `stale_after`.
    pub startup_timeout: Option<ConfigDuration>,
    pub watchdog: WatchdogConfig,
}

impl Default for ComponentConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: ConfigDuration::from_secs(60),
            priority: None,
            depends_on: Vec::new(),
            command: None,
            args: Vec::new(),
            config: None,
            stale_after: None,
            startup_timeout: None,
            watchdog: WatchdogConfig::default(),
        }
    }
}

/// Restart a child whose resource use stays over a limit (osquery's watchdog).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchdogConfig {
    /// Resident memory limit in MiB.
    pub max_rss_mb: Option<f64>,
    /// CPU limit in percent of one core.
    pub max_cpu_percent: Option<f64>,
    /// How long a limit must be exceeded before the restart.
    #[serde(rename = "for")]
    pub for_: ConfigDuration,
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        Self { max_rss_mb: Some(256.0), max_cpu_percent: Some(90.0), for_: ConfigDuration::from_secs(60) }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// This many critical alerts at once make the verdict `critical`.
    pub critical_threshold: u32,
    /// This many warning alerts at once make the verdict at least `degraded`.
    pub warning_threshold: u32,
    /// Restart monitors that exit or hang. Off: they are marked `failed` instead.
    pub auto_restart: bool,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self { critical_threshold: 3, warning_threshold: 5, auto_restart: true }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestartConfig {
    /// Delay before the second restart in a row; doubles each time (the first is immediate).
    pub backoff_initial: ConfigDuration,
    /// Cap on the delay.
    pub backoff_max: ConfigDuration,
    /// More restarts than this within `window` mark the component `failed`.
    pub max_restarts: u32,
    pub window: ConfigDuration,
    /// A failed component is tried again after this long.
    pub cooldown: ConfigDuration,
    /// Running with fresh reports this long resets the restart counter and backoff.
    pub healthy_after: ConfigDuration,
    /// Time between SIGTERM and SIGKILL when stopping a monitor.
    pub stop_timeout: ConfigDuration,
}

impl Default for RestartConfig {
    fn default() -> Self {
        Self {
            backoff_initial: ConfigDuration::from_secs(1),
            backoff_max: ConfigDuration::from_secs(60),
            max_restarts: 5,
            window: ConfigDuration::from_secs(600),
            cooldown: ConfigDuration::from_secs(900),
            healthy_after: ConfigDuration::from_secs(300),
            stop_timeout: ConfigDuration::from_secs(5),
        }
    }
}

impl RestartConfig {
    /// Delay before the `n`th consecutive restart (1-based): 0, initial, 2×initial, … ≤ max.
    pub fn delay(&self, n: u32) -> Duration {
        if n <= 1 {
            return Duration::ZERO;
        }
        qmoi_core::retry::backoff(self.backoff_initial.get(), self.backoff_max.get(), n - 1, 0.0)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathsConfig {
    /// Control socket folder (`qmoi-supervisor.sock`).
    pub run: PathBuf,
    /// Data folder (history database, baselines).
    pub data: PathBuf,
}

impl Default for PathsConfig {
    fn default() -> Self {
        Self { run: "run".into(), data: "data".into() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MasterReportConfig {
    /// `master_monitor_latest.json` is rewritten on every change, and at least this often.
    pub interval: ConfigDuration,
    pub history: HistorySettings,
    /// The largest component report file the supervisor (and the dashboard) reads; a larger
    /// one makes that component unusable with its size in the reason.
    pub max_read_bytes: u64,
}

impl Default for MasterReportConfig {
    fn default() -> Self {
        Self {
            max_read_bytes: qmoi_core::report::DEFAULT_MAX_READ_BYTES,
            interval: ConfigDuration::from_secs(10),
            history: HistorySettings { every: ConfigDuration::from_secs(60), ..HistorySettings::default() },
        }
    }
}

impl Validate for MasterConfig {
    fn validate(&self, p: &mut Problems) {
        let known: Vec<&str> = component::monitor_ids().collect();
        // An empty file (or every component disabled) would start nothing and then call
        // that healthy: a verdict over nothing is refused.
        if !self.monitoring_components.values().any(|c| c.enabled) {
            p.push(
                "monitoring_components",
                format!(
                    "no components configured: nothing would be monitored. Add [monitoring_components.<id>] tables \
                     (known: {}; the shipped config/master_monitor.toml lists them all) or enable one",
                    known.join(", ")
                ),
            );
        }
        for (id, c) in &self.monitoring_components {
            let key = format!("monitoring_components.{id}");
            if component::find(id).is_none() || id == component::MASTER_MONITOR {
                p.push(&key, format!("unknown component '{id}' (known: {})", known.join(", ")));
            }
            if c.interval.get() < Duration::from_secs(1) {
                p.push(format!("{key}.interval"), format!("must be at least 1 second, got '{}'", c.interval));
            }
            for d in &c.depends_on {
                if !self.monitoring_components.contains_key(d) {
                    p.push(format!("{key}.depends_on"), format!("'{d}' is not a configured component"));
                } else if d == id {
                    p.push(format!("{key}.depends_on"), format!("'{id}' cannot depend on itself"));
                } else if c.enabled && !self.monitoring_components.get(d).is_some_and(|x| x.enabled) {
                    p.push(format!("{key}.depends_on"), format!("'{d}' is disabled, so '{id}' could never start"));
                }
            }
            if let Some(s) = c.stale_after
                && s.get() <= c.interval.get()
            {
                p.push(
                    format!("{key}.stale_after"),
                    format!("must be longer than the interval ({}), got '{s}'", c.interval),
                );
            }
            for (name, v, max) in
                [("max_rss_mb", c.watchdog.max_rss_mb, 1e7), ("max_cpu_percent", c.watchdog.max_cpu_percent, 1e5)]
            {
                if let Some(v) = v
                    && !(v > 0.0 && v <= max)
                {
                    p.push(format!("{key}.watchdog.{name}"), format!("must be greater than 0, got '{v}'"));
                }
            }
        }
        if let Some(cycle) = find_cycle(&self.monitoring_components) {
            p.push("monitoring_components", format!("dependency cycle: {}", cycle.join(" -> ")));
        }
        if self.alerts.critical_threshold == 0 {
            p.push("alerts.critical_threshold", "must be at least 1, got '0'");
        }
        if self.alerts.warning_threshold == 0 {
            p.push("alerts.warning_threshold", "must be at least 1, got '0'");
        }
        let r = &self.restart;
        if r.max_restarts == 0 {
            p.push("restart.max_restarts", "must be at least 1, got '0'");
        }
        if r.backoff_max < r.backoff_initial {
            p.push(
                "restart.backoff_max",
                format!("must be at least backoff_initial ({}), got '{}'", r.backoff_initial, r.backoff_max),
            );
        }
        if r.window.get().is_zero() {
            p.push("restart.window", "must be greater than 0");
        }
        if r.stop_timeout.get() < Duration::from_millis(100) {
            p.push("restart.stop_timeout", format!("must be at least 100ms, got '{}'", r.stop_timeout));
        }
        self.dashboard.validate(p);
        if self.report.max_read_bytes < 4096 {
            p.push("report.max_read_bytes", format!("must be at least 4096, got '{}'", self.report.max_read_bytes));
        }
        if self.report.interval.get() < Duration::from_secs(1) {
            p.push("report.interval", format!("must be at least 1 second, got '{}'", self.report.interval));
        }
        self.report.history.validate(p);
        self.remote_write.validate(p);
        self.fleet.validate(p);
        self.grpc.validate(&self.dashboard, p);
        for (i, m) in self.maintenance.iter().enumerate() {
            let key = format!("maintenance[{i}]");
            if m.components.is_empty() && m.labels.is_empty() {
                p.push(format!("{key}.components"), "must name at least one component (or give labels)");
            }
            p.check_labels(&key, &m.labels);
            if let Some(s) = &m.subject
                && (m.components.len() != 1 || s.is_empty() || s.contains(':'))
            {
                p.push(
                    format!("{key}.subject"),
                    "is an endpoint, check or target of one component: give exactly one component, and no ':'",
                );
            }
            for c in &m.components {
                if component::find(c).is_none() || c == component::MASTER_MONITOR {
                    let known: Vec<&str> = component::monitor_ids().collect();
                    p.push(
                        format!("{key}.components"),
                        format!("'{c}' is not a monitor (known: {})", known.join(", ")),
                    );
                }
            }
            if let Err(e) = qmoi_core::cron::CronTz::parse(&m.cron, m.tz.as_deref()) {
                p.push(format!("{key}.cron"), e);
            }
            let d = m.duration.get();
            if d < Duration::from_secs(60) || d > Duration::from_secs(7 * 86_400) {
                p.push(format!("{key}.duration"), format!("must be between 1m and 7d, got '{}'", m.duration));
            }
            if m.reason.trim().is_empty() {
                p.push(format!("{key}.reason"), "must say why (it is shown to everyone)");
            }
            if !self.dashboard.enabled {
                p.push(key, "maintenance windows are kept by the dashboard: enable [dashboard]");
            }
        }
        if self.remote_write.enabled() && !self.dashboard.enabled {
            p.push(
                "remote_write",
                "pushes what the dashboard serves on /metrics: enable [dashboard] (it may stay on 127.0.0.1) \
                 or remove the receivers",
            );
        }
    }
}

/// A dependency cycle as `a -> b -> a`, if there is one.
fn find_cycle(comps: &BTreeMap<String, ComponentConfig>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(
        id: &str,
        comps: &BTreeMap<String, ComponentConfig>,
        marks: &mut HashMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(id).copied().unwrap_or(Mark::New) {
            Mark::Done => return None,
            Mark::Active => {
                let start = stack.iter().position(|s| s == id).unwrap_or(0);
                let mut cycle = stack[start..].to_vec();
                cycle.push(id.to_string());
                return Some(cycle);
            }
            Mark::New => {}
        }
        marks.insert(id.to_string(), Mark::Active);
        stack.push(id.to_string());
        for d in comps.get(id).map(|c| c.depends_on.as_slice()).unwrap_or(&[]) {
            if d != id
                && comps.contains_key(d)
                && let Some(c) = visit(d, comps, marks, stack)
            {
                return Some(c);
            }
        }
        stack.pop();
        marks.insert(id.to_string(), Mark::Done);
        None
    }
    let mut marks = HashMap::new();
    for id in comps.keys() {
        if let Some(c) = visit(id, comps, &mut marks, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

/// A component as the supervisor will run it.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentSpec {
    pub id: String,
    pub enabled: bool,
    pub priority: Priority,
    pub interval: Duration,
    pub stale_after: Duration,
    pub startup_timeout: Duration,
    pub depends_on: Vec<String>,
    /// The executable, or why it could not be found.
    pub binary: Result<PathBuf, String>,
    /// What `binary` was resolved from, to look again after a manual restart.
    pub binary_name: String,
    pub command: Option<String>,
    pub config: Option<PathBuf>,
    pub extra_args: Vec<String>,
    pub watchdog: WatchdogConfig,
}

impl ComponentSpec {
    /// Look for the executable again (it may have been installed since).
    pub fn resolve_again(&mut self) -> Result<PathBuf, String> {
        self.binary = resolve_binary(&self.binary_name, self.command.as_deref());
        self.binary.clone()
    }

    /// Arguments the supervisor passes: config, report and log folders, interval, extras.
    pub fn args(&self, report_dir: &Path, log_dir: &Path) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(c) = &self.config {
            a.push("--config".into());
            a.push(c.display().to_string());
        }
        a.extend([
            "--report-dir".into(),
            report_dir.display().to_string(),
            "--log-dir".into(),
            log_dir.display().to_string(),
            "--interval".into(),
            format!("{}", ConfigDuration(self.interval)),
        ]);
        a.extend(self.extra_args.iter().cloned());
        a
    }
}

/// The validated configuration, resolved for running.
#[derive(Debug, Clone)]
pub struct Plan {
    pub config: MasterConfig,
    /// Where the config came from (`None`: built-in defaults).
    pub source: Option<PathBuf>,
    /// Components in start order (dependencies first).
    pub components: Vec<ComponentSpec>,
}

/// The built-in default when no config file exists: system health every minute.
pub fn builtin_default() -> MasterConfig {
    let mut c = MasterConfig::default();
    c.monitoring_components.insert("system_health".into(), ComponentConfig::default());
    c
}

impl Plan {
    /// Resolve binaries and paths. `config_dir` is the folder of the master config (where
    /// the components' own `<id>.toml` files are looked for).
    pub fn new(config: MasterConfig, source: Option<PathBuf>) -> Self {
        let config_dir =
            source.as_deref().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("config"));
        let order = start_order(&config.monitoring_components);
        let components = order
            .into_iter()
            .filter_map(|id| {
                let c = config.monitoring_components.get(&id)?;
                let info = component::find(&id)?;
                let stale_after = c.stale_after.map_or(c.interval.get() * 3, ConfigDuration::get);
                let component_config = match &c.config {
                    Some(p) => Some(PathBuf::from(p.as_str())),
                    None => {
                        let p = qmoi_core::config::default_path(&config_dir, &id);
                        p.exists().then_some(p)
                    }
                };
                Some(ComponentSpec {
                    id: id.clone(),
                    enabled: c.enabled,
                    priority: c.priority.unwrap_or(info.default_priority),
                    interval: c.interval.get(),
                    stale_after,
                    startup_timeout: c.startup_timeout.map_or(stale_after, ConfigDuration::get),
                    depends_on: c.depends_on.clone(),
                    binary: resolve_binary(info.binary, c.command.as_ref().map(EnvString::as_str)),
                    binary_name: info.binary.to_string(),
                    command: c.command.as_ref().map(|c| c.as_str().to_string()),
                    config: component_config,
                    extra_args: c.args.iter().map(|a| a.as_str().to_string()).collect(),
                    watchdog: c.watchdog.clone(),
                })
            })
            .collect();
        Self { config, source, components }
    }
}

/// Topological order; ties broken by id so the order is stable.
fn start_order(comps: &BTreeMap<String, ComponentConfig>) -> Vec<String> {
    let mut done: Vec<String> = Vec::new();
    while done.len() < comps.len() {
        let next = comps.iter().find(|(id, c)| {
            !done.contains(id) && c.depends_on.iter().all(|d| done.contains(d) || !comps.contains_key(d) || d == *id)
        });
        match next {
            Some((id, _)) => done.push(id.clone()),
            // A cycle (rejected by validation): append the rest as they are.
            None => {
                done.extend(comps.keys().filter(|k| !done.contains(k)).cloned().collect::<Vec<_>>());
            }
        }
    }
    done
}

/// Find a component's executable: an explicit `command` (a path, or a name looked up in
/// `PATH`), else the binary beside this executable, else `PATH`.
pub fn resolve_binary(binary: &str, command: Option<&str>) -> Result<PathBuf, String> {
    let in_path = |name: &str| -> Option<PathBuf> {
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .map(|d| d.join(name))
            .find(|p| is_executable(p))
    };
    if let Some(cmd) = command {
        if cmd.contains('/') {
            let p = PathBuf::from(cmd);
            return if is_executable(&p) {
                Ok(p)
            } else {
                Err(format!("command '{cmd}' does not exist or is not executable"))
            };
        }
        return in_path(cmd).ok_or_else(|| format!("command '{cmd}' was not found in PATH"));
    }
    let beside = std::env::current_exe().ok().and_then(|e| e.parent().map(|d| d.join(binary)));
    if let Some(p) = beside.as_ref().filter(|p| is_executable(p)) {
        return Ok(p.clone());
    }
    in_path(binary).ok_or_else(|| {
        format!(
            "binary '{binary}' not found beside the supervisor ({}) nor in PATH; build it with `cargo build --release` or set `command`",
            beside.as_ref().and_then(|p| p.parent()).map_or_else(|| "?".into(), |d| d.display().to_string())
        )
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<MasterConfig, String> {
        qmoi_core::config::parse_str::<MasterConfig>(Path::new("m.toml"), text).map_err(|e| e.to_string())
    }

    fn problems(cfg: &MasterConfig) -> String {
        let mut p = Problems::new();
        cfg.validate(&mut p);
        p.to_string()
    }

    #[test]
    fn seed_json_example_loads_as_written() -> Result<(), String> {
        let seed = r#"{
  "monitoring_components": {
    "system_health": {"enabled": true, "interval": 60},
    "performance": {"enabled": true, "interval": 120}
  },
  "dashboard": {"port": 8080, "host": "0.0.0.0"},
  "alerts": {"critical_threshold": 3, "warning_threshold": 5, "auto_restart": true}
}"#;
        let cfg: MasterConfig =
            qmoi_core::config::parse_str(Path::new("master_monitor_config.json"), seed).map_err(|e| e.to_string())?;
        // It parses as written. Its one problem is the one the dashboard must refuse:
        // 0.0.0.0 without auth would serve the dashboard to the whole network.
        let p = problems(&cfg);
        assert_eq!(p.lines().count(), 1, "{p}");
        assert!(p.contains("key 'dashboard.host': '0.0.0.0' is not a loopback address"), "{p}");
        assert_eq!(cfg.monitoring_components["performance"].interval, ConfigDuration::from_secs(120));
        assert_eq!(cfg.dashboard.host, "0.0.0.0");
        Ok(())
    }

    #[test]
    fn cycle_unknown_component_and_bad_interval_are_named() -> Result<(), String> {
        let cfg = parse(
            r#"
[monitoring_components.system_health]
depends_on = ["security"]
[monitoring_components.security]
depends_on = ["system_health"]
interval = 0
[monitoring_components.coffee_machine]
"#,
        )?;
        let text = problems(&cfg);
        assert!(text.contains("dependency cycle: security -> system_health -> security"), "{text}");
        assert!(text.contains("unknown component 'coffee_machine'"), "{text}");
        assert!(text.contains("monitoring_components.security.interval': must be at least 1 second"), "{text}");
        Ok(())
    }

    #[test]
    fn backoff_doubles_from_zero_to_cap() {
        let r = RestartConfig {
            backoff_initial: ConfigDuration::from_millis(200),
            backoff_max: ConfigDuration::from_secs(1),
            ..RestartConfig::default()
        };
        let d: Vec<u128> = (1..=6).map(|n| r.delay(n).as_millis()).collect();
        assert_eq!(d, vec![0, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn start_order_puts_dependencies_first() -> Result<(), String> {
        let cfg = parse(
            r#"
[monitoring_components.notification]
depends_on = ["system_health", "security"]
[monitoring_components.security]
depends_on = ["system_health"]
[monitoring_components.system_health]
"#,
        )?;
        assert_eq!(start_order(&cfg.monitoring_components), vec!["system_health", "security", "notification"]);
        Ok(())
    }

    #[test]
    fn missing_binary_is_explained() {
        let e = resolve_binary("qmoi-does-not-exist", None).err().unwrap_or_default();
        assert!(e.contains("qmoi-does-not-exist") && e.contains("PATH"), "{e}");
        let e = resolve_binary("x", Some("/nonexistent/bin")).err().unwrap_or_default();
        assert!(e.contains("/nonexistent/bin"), "{e}");
    }
}
