//! `config/security.toml`: every key, its default and its check.

/// The level a config gives a kind of problem (`warning` or `critical`).
pub use qmoi_core::Severity;
use qmoi_core::config::{ConfigDuration, EnvString, Problems, Secret, Validate};
use qmoi_core::runner::{HistorySettings, validate_interval_timeout};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Seconds between runs: network, accounts, processes, auth log. File changes seen by
    /// inotify are reported at once, between runs.
    pub interval: ConfigDuration,
    /// Bound on each check that reads the system (not on file hashing).
    pub timeout: ConfigDuration,
    pub history: HistorySettings,
    /// Folder for the baselines (`security_baseline.qmb`, `security_host.json`).
    pub data_dir: EnvString,
    /// Key of the HMAC sealing the baselines. Empty: a random key is created in
    /// `<data_dir>/security.key` (mode 0600) on first use.
    pub hmac_key: Secret,
    /// Or read the key from this file (a systemd credential:
    /// `${CREDENTIALS_DIRECTORY}/security-key`).
    pub hmac_key_file: EnvString,
    pub integrity: IntegrityConfig,
    pub network: NetworkConfig,
    pub auth_log: AuthLogConfig,
    pub accounts: AccountsConfig,
    pub processes: ProcessesConfig,
    pub kernel_modules: ModulesConfig,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            interval: ConfigDuration::from_secs(60),
            timeout: ConfigDuration::from_secs(10),
            history: HistorySettings { every: ConfigDuration::from_secs(300), ..HistorySettings::default() },
            data_dir: EnvString::from("data"),
            hmac_key: Secret::new(""),
            hmac_key_file: EnvString::default(),
            integrity: IntegrityConfig::default(),
            network: NetworkConfig::default(),
            auth_log: AuthLogConfig::default(),
            accounts: AccountsConfig::default(),
            processes: ProcessesConfig::default(),
            kernel_modules: ModulesConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    #[default]
    Blake3,
    Sha256,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Blake3 => "blake3",
            Algorithm::Sha256 => "sha256",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntegrityConfig {
    pub enabled: bool,
    /// Content hash: `blake3` (fast) or `sha256`.
    pub algorithm: Algorithm,
    /// Hashing threads; 0 = one per core.
    pub threads: usize,
    /// Watch the paths with inotify and report a change within about a second.
    pub realtime: bool,
    /// Quiet time after a change before it is examined (bursts become one report).
    pub debounce: ConfigDuration,
    /// Incremental scan: rehash only files whose size, mtime, ctime or inode changed.
    pub scan_interval: ConfigDuration,
    /// Full rehash that trusts no metadata ("paranoid" schedule); 0 disables it.
    pub full_rehash_interval: ConfigDuration,
    /// Changed files listed in the report's details per kind (totals are always exact).
    pub max_listed: usize,
    /// Changed files raised as their own check and alert; the rest are one summary alert.
    pub max_alerts: usize,
    /// Files larger than this are hashed with several threads (memory-mapped).
    pub large_file_bytes: u64,
    pub paths: Vec<WatchRule>,
}

impl Default for IntegrityConfig {
    fn default() -> Self {
        let critical = |p: &str| WatchRule { path: p.into(), level: Severity::Critical, ..WatchRule::default() };
        Self {
            enabled: true,
            algorithm: Algorithm::Blake3,
            threads: 0,
            realtime: true,
            debounce: ConfigDuration::from_millis(200),
            scan_interval: ConfigDuration::from_secs(3600),
            full_rehash_interval: ConfigDuration::from_secs(86_400),
            max_listed: 100,
            max_alerts: 25,
            large_file_bytes: 16 * 1024 * 1024,
            paths: vec![
                WatchRule { path: "/etc".into(), ..WatchRule::default() },
                critical("/etc/passwd"),
                critical("/etc/shadow"),
                critical("/etc/group"),
                critical("/etc/sudoers"),
                critical("/etc/sudoers.d"),
                critical("/etc/ssh"),
                critical("/usr/bin"),
                critical("/usr/sbin"),
                WatchRule { path: "config".into(), ..WatchRule::default() },
            ],
        }
    }
}

/// One watched path (a folder is watched recursively) and what is checked under it. For a
/// file under several rules, the rule with the longest path decides.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchRule {
    pub path: String,
    /// Globs relative to `path` (`*.conf`, `**/*.service`); empty = everything.
    pub include: Vec<String>,
    /// Globs relative to `path` left out (`*.swp`, `cache/**`).
    pub exclude: Vec<String>,
    /// Attributes compared with the baseline: `hash`, `size`, `mode`, `owner`, `group`,
    /// `mtime`, `inode`, `link`, `type`, `suid`, or the sets `all`, `content`
    /// (hash size type link), `permissions` (mode owner group type suid link),
    /// `growing` (permissions + inode: log files that grow).
    pub check: Vec<String>,
    pub level: Severity,
    /// Descend into sub-folders.
    pub recursive: bool,
}

impl Default for WatchRule {
    fn default() -> Self {
        Self {
            path: String::new(),
            include: Vec::new(),
            exclude: Vec::new(),
            check: vec!["all".into()],
            level: Severity::Warning,
            recursive: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    pub enabled: bool,
    /// Listening sockets present on the first run become the baseline (accept later ones
    /// with `--accept`); off: only `allow` is trusted.
    pub learn: bool,
    /// Listeners always allowed: `22`, `tcp:22`, `udp:*:53`, `tcp:127.0.0.1:631`,
    /// `tcp6:[::1]:25`.
    pub allow: Vec<String>,
    pub new_listener_level: Severity,
    /// Remote addresses or networks no connection may reach: `10.0.0.0/8`, `192.0.2.7`,
    /// `192.0.2.0/24:25`, `*:6667` (any address, port 6667).
    pub deny: Vec<String>,
    /// Established connections from/to one remote address above this: warning.
    pub max_per_remote: usize,
    /// Established connections above `spike_factor` × their running average (and above
    /// `spike_min`): warning.
    pub spike_factor: f64,
    pub spike_min: usize,
    /// Top remote addresses and processes listed in the report.
    pub top: usize,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            learn: true,
            allow: Vec::new(),
            new_listener_level: Severity::Warning,
            deny: Vec::new(),
            max_per_remote: 200,
            spike_factor: 3.0,
            spike_min: 200,
            top: 10,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthLogConfig {
    pub enabled: bool,
    /// The first of these files that exists is followed (rotation included).
    pub files: Vec<EnvString>,
    /// Sliding window (fail2ban's `findtime`).
    pub find_time: ConfigDuration,
    /// Failures of one address within the window that make a brute-force alert
    /// (fail2ban's `maxretry`).
    pub max_retry: usize,
    pub level: Severity,
    /// Addresses and networks never reported (fail2ban's `ignoreip`).
    pub ignore: Vec<String>,
    /// On start, read at most this many bytes from the end of the log.
    pub initial_read_bytes: u64,
    /// More failure patterns (regex with a named group `host`, optionally `user`).
    pub patterns: Vec<String>,
}

impl Default for AuthLogConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            files: vec![EnvString::from("/var/log/auth.log"), EnvString::from("/var/log/secure")],
            find_time: ConfigDuration::from_secs(600),
            max_retry: 5,
            level: Severity::Warning,
            ignore: vec!["127.0.0.1/8".into(), "::1".into()],
            initial_read_bytes: 8 * 1024 * 1024,
            patterns: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountsConfig {
    pub enabled: bool,
    pub passwd: EnvString,
    pub group: EnvString,
    /// Read when readable (root); only a keyed hash of each line is kept.
    pub shadow: EnvString,
    /// Files or folders of sudoers rules.
    pub sudoers: Vec<EnvString>,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            passwd: EnvString::from("/etc/passwd"),
            group: EnvString::from("/etc/group"),
            shadow: EnvString::from("/etc/shadow"),
            sudoers: vec![EnvString::from("/etc/sudoers"), EnvString::from("/etc/sudoers.d")],
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessesConfig {
    pub enabled: bool,
    /// Processes whose executable lies in one of these folders.
    pub suspicious_dirs: Vec<String>,
    pub suspicious_dir_level: Severity,
    /// Processes whose executable was deleted (also after a package upgrade, until the
    /// service restarts).
    pub deleted_level: Severity,
    /// Executable paths never reported (exact paths).
    pub ignore: Vec<String>,
}

impl Default for ProcessesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            suspicious_dirs: vec!["/tmp".into(), "/var/tmp".into(), "/dev/shm".into()],
            suspicious_dir_level: Severity::Critical,
            deleted_level: Severity::Warning,
            ignore: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModulesConfig {
    pub enabled: bool,
    pub file: EnvString,
    pub level: Severity,
}

impl Default for ModulesConfig {
    fn default() -> Self {
        Self { enabled: true, file: EnvString::from("/proc/modules"), level: Severity::Warning }
    }
}

impl Validate for SecurityConfig {
    fn validate(&self, p: &mut Problems) {
        validate_interval_timeout(self.interval, self.timeout, p);
        self.history.validate(p);
        if self.data_dir.as_str().trim().is_empty() {
            p.push("data_dir", "must not be empty");
        }
        let i = &self.integrity;
        for (j, rule) in i.paths.iter().enumerate() {
            let key = format!("integrity.paths[{j}]");
            if rule.path.trim().is_empty() {
                p.push(format!("{key}.path"), "must not be empty");
            }
            if let Err(e) = crate::integrity::attrs::attributes(&rule.check) {
                p.push(format!("{key}.check"), e);
            }
            for (k, g) in rule.include.iter().chain(&rule.exclude).enumerate() {
                if let Err(e) = globset::Glob::new(g) {
                    p.push(format!("{key}.include/exclude[{k}]"), format!("invalid glob '{g}': {e}"));
                }
            }
        }
        if i.debounce.get() > Duration::from_secs(10) {
            p.push("integrity.debounce", format!("must be at most 10s, got '{}'", i.debounce));
        }
        if i.scan_interval.get() < Duration::from_secs(1) {
            p.push("integrity.scan_interval", format!("must be at least 1s, got '{}'", i.scan_interval));
        }
        if i.max_alerts == 0 {
            p.push("integrity.max_alerts", "must be at least 1");
        }
        let n = &self.network;
        for (j, a) in n.allow.iter().enumerate() {
            if let Err(e) = crate::netrules::AllowRule::parse(a) {
                p.push(format!("network.allow[{j}]"), e);
            }
        }
        for (j, d) in n.deny.iter().enumerate() {
            if let Err(e) = crate::netrules::DenyRule::parse(d) {
                p.push(format!("network.deny[{j}]"), e);
            }
        }
        if !(n.spike_factor.is_finite() && n.spike_factor > 1.0) {
            p.push("network.spike_factor", format!("must be greater than 1, got '{}'", n.spike_factor));
        }
        let a = &self.auth_log;
        if a.max_retry == 0 {
            p.push("auth_log.max_retry", "must be at least 1");
        }
        if a.find_time.get() < Duration::from_secs(1) {
            p.push("auth_log.find_time", format!("must be at least 1s, got '{}'", a.find_time));
        }
        for (j, net) in a.ignore.iter().enumerate() {
            if let Err(e) = crate::netrules::Cidr::parse(net) {
                p.push(format!("auth_log.ignore[{j}]"), e);
            }
        }
        for (j, re) in a.patterns.iter().enumerate() {
            match regex::Regex::new(re) {
                Ok(r) if r.capture_names().flatten().any(|n| n == "host") => {}
                Ok(_) => p.push(format!("auth_log.patterns[{j}]"), format!("needs a named group (?P<host>…): '{re}'")),
                Err(e) => p.push(format!("auth_log.patterns[{j}]"), format!("invalid regex '{re}': {e}")),
            }
        }
    }
}

qmoi_core::monitor_config!(SecurityConfig);
