//! `config/heartbeats.toml`.

use qmoi_core::config::{ConfigDuration, Problems, Secret, Validate};
use qmoi_core::ratelimit::RateLimitConfig;
use qmoi_core::runner::{HistorySettings, validate_interval_timeout};
use qmoi_core::status::Severity;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeartbeatsConfig {
    /// Seconds between reports (a ping that changes a check's status reports at once).
    pub interval: ConfigDuration,
    pub timeout: ConfigDuration,
    pub history: HistorySettings,
    /// The ping listener. Another address than loopback is allowed: every URL carries a
    /// key nobody can guess (docs/CONFIG.md).
    pub listen: String,
    /// The project-wide key of the slug form `/ping/<ping_key>/<check name>`.
    pub ping_key: Option<Secret>,
    /// Bytes of a ping's body kept (the rest is read and dropped).
    pub max_body: usize,
    /// Pings per client address.
    pub rate_limit: RateLimitConfig,
    /// Check states and the history of runs.
    pub database: String,
    /// Runs kept per check in the history.
    pub keep_runs: usize,
    /// Service level objectives (`slo` on a check).
    pub slo: qmoi_core::slo::SloSettings,
    pub checks: Vec<CheckConfig>,
}

impl Default for HeartbeatsConfig {
    fn default() -> Self {
        Self {
            interval: ConfigDuration::from_secs(10),
            timeout: ConfigDuration::from_secs(5),
            history: HistorySettings::default(),
            listen: "127.0.0.1:8082".into(),
            ping_key: None,
            max_body: 10_000,
            rate_limit: RateLimitConfig::default(),
            database: "data/heartbeats.db".into(),
            keep_runs: 100,
            slo: qmoi_core::slo::SloSettings::default(),
            checks: Vec::new(),
        }
    }
}

qmoi_core::monitor_config!(HeartbeatsConfig);

/// One `[[checks]]`: a job that must ping on a schedule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// Also the slug of `/ping/<ping_key>/<name>`: lower-case letters, digits, `-`, `_`.
    pub name: String,
    /// The key of `/ping/<uuid>` (at least 16 characters; a UUID as Healthchecks makes).
    #[serde(default)]
    pub uuid: Option<Secret>,
    /// The key of Uptime Kuma's `/api/push/<token>`. Boxed, as the other fields most
    /// checks leave out: a check costs 8 bytes for each, not its size (10,000 checks).
    #[serde(default)]
    pub push_token: Option<Box<Secret>>,
    /// Expected every `period` (default 1 day) …
    #[serde(default)]
    pub period: Option<ConfigDuration>,
    /// … or on this cron schedule (5 fields, or 6 with seconds), in `tz`.
    #[serde(default)]
    pub cron: Option<Box<str>>,
    /// IANA time zone of `cron` (default UTC).
    #[serde(default)]
    pub tz: Option<Box<str>>,
    /// How late a success may be before the check is down.
    #[serde(default = "default_grace")]
    pub grace: ConfigDuration,
    /// A success sooner than this after the previous one: ran too often.
    #[serde(default)]
    pub min_interval: Option<ConfigDuration>,
    /// A success sooner than this after its start: ran too short.
    #[serde(default)]
    pub min_duration: Option<ConfigDuration>,
    /// A started run with no end after this long: ran too long.
    #[serde(default)]
    pub max_duration: Option<ConfigDuration>,
    /// Status when down, failed or off schedule.
    #[serde(default = "critical")]
    pub level: Severity,
    /// A service level objective: the share of time the check is ok (docs/CONFIG.md).
    #[serde(default)]
    pub slo: Option<Box<qmoi_core::slo::SloTarget>>,
    /// Copied into the check's alerts; maintenance windows of labels match them. Boxed:
    /// most checks have none, and there may be 10,000 checks.
    #[serde(default)]
    pub labels: Option<Box<qmoi_core::report::Labels>>,
}

impl CheckConfig {
    /// Its labels (none: empty).
    pub fn labels(&self) -> &qmoi_core::report::Labels {
        static NONE: qmoi_core::report::Labels = qmoi_core::report::Labels::new();
        self.labels.as_deref().unwrap_or(&NONE)
    }
}

fn default_grace() -> ConfigDuration {
    ConfigDuration::from_secs(3600)
}

fn critical() -> Severity {
    Severity::Critical
}

impl CheckConfig {
    /// The schedule: the period, or the cron expression in its time zone.
    pub fn schedule(&self) -> Result<crate::schedule::Schedule, String> {
        crate::schedule::Schedule::new(self.period, self.cron.as_deref(), self.tz.as_deref())
    }
}

impl Validate for HeartbeatsConfig {
    fn validate(&self, p: &mut Problems) {
        validate_interval_timeout(self.interval, self.timeout, p);
        self.history.validate(p);
        if self.listen.parse::<SocketAddr>().is_err() {
            p.push("listen", format!("must be address:port (e.g. '127.0.0.1:8082'), got '{}'", self.listen));
        }
        if let Some(k) = &self.ping_key
            && !k.is_deferred()
            && k.expose().len() < 16
        {
            p.push("ping_key", "must be at least 16 characters (it is what keeps the slug URLs private)");
        }
        if !(100..=1_000_000).contains(&self.max_body) {
            p.push("max_body", format!("must be between 100 and 1000000 bytes, got {}", self.max_body));
        }
        let r = &self.rate_limit;
        if r.enabled && !(r.per_second > 0.0 && r.burst >= 1.0) {
            p.push("rate_limit", format!("per_second must be > 0 and burst ≥ 1, got {} and {}", r.per_second, r.burst));
        }
        if self.keep_runs == 0 {
            p.push("keep_runs", "must be at least 1");
        }
        let (mut names, mut keys) = (HashSet::new(), HashSet::new());
        for (i, c) in self.checks.iter().enumerate() {
            let key = format!("checks[{i}]");
            if c.name.is_empty()
                || !c.name.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "-_".contains(ch))
            {
                p.push(
                    format!("{key}.name"),
                    format!("must be lower-case letters, digits, '-' or '_', got '{}'", c.name),
                );
            }
            if !names.insert(c.name.as_str()) {
                p.push(format!("{key}.name"), format!("'{}' is used twice; names must be unique", c.name));
            }
            for (what, k) in [("uuid", c.uuid.as_ref()), ("push_token", c.push_token.as_deref())] {
                let Some(k) = k.as_ref().filter(|k| !k.is_deferred()) else { continue };
                if k.expose().len() < 16 || !k.expose().chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-') {
                    p.push(
                        format!("{key}.{what}"),
                        "must be at least 16 letters, digits or '-' (it is the check's password)",
                    );
                }
                if !keys.insert(k.expose().to_string()) {
                    p.push(format!("{key}.{what}"), "is used by another check; every key must be unique");
                }
            }
            if c.uuid.is_none() && c.push_token.is_none() && self.ping_key.is_none() {
                p.push(
                    key.clone(),
                    "has no URL: give it a uuid or a push_token, or set ping_key for /ping/<ping_key>/<name>",
                );
            }
            if let Err(e) = c.schedule() {
                p.push(format!("{key}.{}", if c.cron.is_some() { "cron" } else { "period" }), e);
            }
            if c.grace.get() < Duration::from_secs(1) {
                p.push(format!("{key}.grace"), format!("must be at least 1s, got '{}'", c.grace));
            }
            if let (Some(min), Some(max)) = (c.min_duration, c.max_duration)
                && min.get() >= max.get()
            {
                p.push(format!("{key}.min_duration"), format!("'{min}' must be shorter than max_duration '{max}'"));
            }
            if let Some(t) = &c.slo {
                t.validate(p, &format!("{key}.slo"), self.slo.keep);
            }
            p.check_labels(&key, c.labels());
        }
        self.slo.validate(p);
    }
}
