//! `config/notification.toml` (or the seed's `notification_config.json`, which loads as
//! written): channels, priorities, routes, grouping, retries and the outbox database.

use qmoi_core::config::{ConfigDuration, EnvString, Problems, Secret, Validate, expand_env};
use qmoi_core::runner::{HistorySettings, validate_interval_timeout};
use qmoi_core::status::AlertLevel;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// How often the notifier's own report (`logs/notification_latest.json`) is written.
    pub interval: ConfigDuration,
    /// Default timeout of one delivery attempt.
    pub timeout: ConfigDuration,
    pub history: HistorySettings,
    pub watch: WatchConfig,
    pub database: DatabaseConfig,
    /// The dashboard's database, read for acknowledgements and silences.
    pub dashboard_db: EnvString,
    /// Link put into messages (e.g. "http://monitor.example:8080/"); empty: none.
    pub dashboard_url: EnvString,
    pub grouping: Grouping,
    /// A critical alert of a component holds back that component's warnings and infos.
    pub inhibit: bool,
    /// Send a message when a notified alert resolves.
    pub send_resolved: bool,
    pub retry: Retry,
    /// Folder with template overrides (email_subject.txt, email.txt, email.html,
    /// chat.txt, sms.txt); empty: the built-in templates.
    pub templates: EnvString,
    pub channels: BTreeMap<String, ChannelConfig>,
    pub priorities: BTreeMap<String, Priority>,
    pub routes: Vec<Route>,
    /// Alerts that depend on another (docs/CONFIG.md): held back while their parent fires.
    pub dependencies: Vec<Dependency>,
}

/// `[[dependencies]]`: while an alert matching `parent` fires, the alerts matching
/// `children` are suppressed (recorded, not notified); a child's first notification waits
/// `hold` for its parent to show up.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    pub name: String,
    /// Regular expression on fingerprints: the parent alert(s).
    pub parent: String,
    /// Regular expression on fingerprints: the alerts that depend on the parent.
    pub children: String,
    #[serde(default = "default_hold")]
    pub hold: ConfigDuration,
}

fn default_hold() -> ConfigDuration {
    ConfigDuration::from_secs(30)
}

impl Default for NotifyConfig {
    fn default() -> Self {
        let mut channels = BTreeMap::new();
        channels.insert("internal".to_string(), ChannelConfig::default());
        let mut priorities = BTreeMap::new();
        for (level, retries) in [("critical", 5), ("warning", 3), ("info", 1)] {
            priorities
                .insert(level.to_string(), Priority { channels: vec!["internal".into()], retry_attempts: retries });
        }
        Self {
            interval: ConfigDuration::from_secs(30),
            timeout: ConfigDuration::from_secs(10),
            history: HistorySettings { every: ConfigDuration::from_secs(300), ..HistorySettings::default() },
            watch: WatchConfig::default(),
            database: DatabaseConfig::default(),
            dashboard_db: EnvString::from("data/history.db"),
            dashboard_url: EnvString::default(),
            grouping: Grouping::default(),
            inhibit: true,
            send_resolved: true,
            retry: Retry::default(),
            templates: EnvString::default(),
            channels,
            priorities,
            routes: Vec::new(),
            dependencies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchConfig {
    /// Rescan every report this often, in case a file-system event was missed.
    pub rescan: ConfigDuration,
    /// Components whose alerts are notified; empty: all.
    pub components: Vec<String>,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self { rescan: ConfigDuration::from_secs(5), components: Vec::new() }
    }
}

/// SQLite's `synchronous` in WAL mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Sync {
    /// fsync of the log on every commit: the outbox survives power loss as it was.
    /// Costs one fsync (about 0.7 ms on the benchmark machine) per notification.
    Full,
    /// The log is fsynced at checkpoints: the outbox survives any crash of the process
    /// (kill -9, OOM, panic) intact. On power loss the last commits may be lost; the
    /// notifier then rebuilds its state from the reports (fsynced by the monitors), so
    /// firing alerts are notified again rather than lost.
    #[default]
    Normal,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    pub path: EnvString,
    pub synchronous: Sync,
    /// Delivery history kept this long …
    pub history_retention: ConfigDuration,
    /// … and at most this many rows.
    pub history_max_rows: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            path: EnvString::from("data/notification.db"),
            synchronous: Sync::Normal,
            history_retention: ConfigDuration::from_secs(30 * 86_400),
            history_max_rows: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// One message per component (Alertmanager's `group_by: [component]`).
    #[default]
    Component,
    /// One message per alert.
    Fingerprint,
    /// Everything due at once in one message.
    All,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Grouping {
    /// Wait this long after the first alert of a group before sending, to collect others.
    pub group_wait: ConfigDuration,
    /// At least this long between two messages of the same group on a channel.
    pub group_interval: ConfigDuration,
    /// Notify again while an alert keeps firing (unacknowledged), this often.
    pub repeat_interval: ConfigDuration,
    pub group_by: GroupBy,
}

impl Default for Grouping {
    fn default() -> Self {
        Self {
            group_wait: ConfigDuration::from_secs(10),
            group_interval: ConfigDuration::from_secs(60),
            repeat_interval: ConfigDuration::from_secs(4 * 3600),
            group_by: GroupBy::Component,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retry {
    /// Delay before the first retry; doubles each time, with ±20% jitter.
    pub backoff_initial: ConfigDuration,
    pub backoff_max: ConfigDuration,
}

impl Default for Retry {
    fn default() -> Self {
        Self { backoff_initial: ConfigDuration::from_secs(2), backoff_max: ConfigDuration::from_secs(300) }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Priority {
    #[serde(default)]
    pub channels: Vec<String>,
    /// Retries after the first attempt before a notification goes to the dead letters.
    #[serde(default = "default_retries")]
    pub retry_attempts: u32,
}

fn default_retries() -> u32 {
    3
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Route {
    pub name: String,
    /// Match: component id.
    pub component: Option<String>,
    /// Match: regular expression on the fingerprint.
    pub fingerprint: Option<String>,
    /// Match: any of these levels.
    pub level: Vec<AlertLevel>,
    /// Match: every label equal (labels: component, severity, host, fingerprint, alertname).
    pub labels: BTreeMap<String, String>,
    pub channels: Vec<String>,
    /// Overrides the level's retry_attempts.
    pub retry_attempts: Option<u32>,
    /// Keep matching later routes too.
    #[serde(rename = "continue")]
    pub continue_matching: bool,
    /// While still firing and not acknowledged: more channels after each delay (since the
    /// first notification).
    pub escalate: Vec<Escalation>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    pub after: ConfigDuration,
    pub channels: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Email,
    Webhook,
    Sms,
    Alertmanager,
    Internal,
}

impl ChannelKind {
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "email" => Self::Email,
            "webhook" | "slack" | "discord" => Self::Webhook,
            "sms" => Self::Sms,
            "alertmanager" => Self::Alertmanager,
            "internal" => Self::Internal,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Webhook => "webhook",
            Self::Sms => "sms",
            Self::Alertmanager => "alertmanager",
            Self::Internal => "internal",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// STARTTLS required (port 587).
    #[default]
    Starttls,
    /// Implicit TLS (port 465).
    Tls,
    /// No encryption: only for a relay on loopback.
    Plain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// Slack for hooks.slack.com, Discord for discord.com/api/webhooks, generic otherwise.
    #[default]
    Auto,
    Slack,
    Discord,
    Generic,
}

/// One channel. The keys that apply depend on its type (`type`, or the channel's name when
/// that is one of email, webhook, sms, alertmanager, internal).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelConfig {
    #[serde(rename = "type")]
    pub kind: Option<ChannelKind>,
    pub enabled: bool,
    /// Attempt timeout; default: the top-level `timeout`.
    pub timeout: Option<ConfigDuration>,
    pub rate_limit: Option<RateLimit>,
    pub quiet_hours: Option<QuietHours>,
    // email
    pub smtp_server: Option<EnvString>,
    pub smtp_port: Option<u16>,
    pub security: Option<SmtpSecurity>,
    pub username: Option<EnvString>,
    pub password: Option<Secret>,
    pub from: Option<EnvString>,
    pub to: Vec<EnvString>,
    /// PEM file of a CA to trust for the SMTP server's certificate, besides the system's
    /// (a relay with a private CA or a self-signed certificate).
    pub ca_file: Option<EnvString>,
    // webhook / alertmanager
    pub urls: Vec<UrlEntry>,
    pub format: WebhookFormat,
    pub headers: BTreeMap<String, Secret>,
    /// HMAC-SHA256 key: adds `X-QMOI-Signature: sha256=<hex of HMAC(body)>`.
    pub secret: Option<Secret>,
    // sms (Twilio)
    pub base_url: Option<EnvString>,
    pub account_sid: Option<EnvString>,
    pub auth_token: Option<Secret>,
    // alertmanager
    /// Re-post firing alerts this often (Alertmanager forgets alerts that are not re-sent).
    pub resend_interval: Option<ConfigDuration>,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        Self {
            kind: None,
            enabled: true,
            timeout: None,
            rate_limit: None,
            quiet_hours: None,
            smtp_server: None,
            smtp_port: None,
            security: None,
            username: None,
            password: None,
            from: None,
            to: Vec::new(),
            ca_file: None,
            urls: Vec::new(),
            format: WebhookFormat::Auto,
            headers: BTreeMap::new(),
            secret: None,
            base_url: None,
            account_sid: None,
            auth_token: None,
            resend_interval: None,
        }
    }
}

impl ChannelConfig {
    /// The channel's type: `type`, or its name.
    pub fn kind_for(&self, name: &str) -> Option<ChannelKind> {
        self.kind.or_else(|| ChannelKind::from_name(name))
    }

    pub fn resend_interval(&self) -> Duration {
        self.resend_interval.map_or(Duration::from_secs(60), ConfigDuration::get)
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// At most this many messages …
    pub count: u32,
    /// … per this period (a token bucket: bursts up to `count`).
    pub per: ConfigDuration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// "22:00"
    pub start: String,
    /// "07:00"
    pub end: String,
    /// Times are UTC (default: the host's local time).
    #[serde(default)]
    pub utc: bool,
}

impl QuietHours {
    pub fn minutes(&self) -> Result<(u32, u32), String> {
        Ok((parse_hhmm(&self.start)?, parse_hhmm(&self.end)?))
    }
}

pub fn parse_hhmm(s: &str) -> Result<u32, String> {
    let bad = || format!("expected a time like \"22:00\", got '{s}'");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let h: u32 = h.trim().parse().map_err(|_| bad())?;
    let m: u32 = m.trim().parse().map_err(|_| bad())?;
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// A webhook or Alertmanager URL: a plain string, or a table with per-URL settings.
#[derive(Debug, Clone, Serialize)]
pub struct UrlEntry {
    pub url: Secret,
    pub format: Option<WebhookFormat>,
    pub headers: BTreeMap<String, Secret>,
    pub secret: Option<Secret>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UrlTable {
    url: Secret,
    #[serde(default)]
    format: Option<WebhookFormat>,
    #[serde(default)]
    headers: BTreeMap<String, Secret>,
    #[serde(default)]
    secret: Option<Secret>,
}

impl<'de> Deserialize<'de> for UrlEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = UrlEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a URL string or a table with `url` (and optionally format, headers, secret)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<UrlEntry, E> {
                let url = expand_env(v).map_err(E::custom)?;
                Ok(UrlEntry { url: Secret::new(url), format: None, headers: BTreeMap::new(), secret: None })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<UrlEntry, A::Error> {
                let t = UrlTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(UrlEntry { url: t.url, format: t.format, headers: t.headers, secret: t.secret })
            }
        }
        d.deserialize_any(V)
    }
}

/// `scheme://host[:port]/***`: enough to tell URLs apart in logs without leaking a token
/// that webhook URLs carry in their path.
pub fn mask_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("?");
            match u.port() {
                Some(p) => format!("{}://{host}:{p}/***", u.scheme()),
                None => format!("{}://{host}/***", u.scheme()),
            }
        }
        Err(_) => "***".to_string(),
    }
}

const LEVELS: [&str; 3] = ["critical", "warning", "info"];

impl NotifyConfig {
    /// Channel names referenced by priorities, routes or escalations but not configured or
    /// disabled. The seed's example names `sms` without configuring it, so this is a
    /// warning in the report (and in `--validate`), not an error.
    pub fn unusable_channel_refs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut check = |place: String, name: &String| match self.channels.get(name) {
            None => out.push((place, format!("channel '{name}' is not configured; it is skipped"))),
            Some(c) if !c.enabled => out.push((place, format!("channel '{name}' is disabled; it is skipped"))),
            Some(_) => {}
        };
        for (level, p) in &self.priorities {
            for c in &p.channels {
                check(format!("priorities.{level}.channels"), c);
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            for c in &r.channels {
                check(format!("routes[{i}].channels"), c);
            }
            for (j, e) in r.escalate.iter().enumerate() {
                for c in &e.channels {
                    check(format!("routes[{i}].escalate[{j}].channels"), c);
                }
            }
        }
        out
    }
}

fn validate_url(p: &mut Problems, key: &str, url: &str) {
    match reqwest::Url::parse(url) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
        Ok(u) => p.push(key, format!("must be an http or https URL, got scheme '{}'", u.scheme())),
        Err(e) => p.push(key, format!("is not a valid URL ({e}): '{}'", mask_url(url))),
    }
}

impl Validate for NotifyConfig {
    fn validate(&self, p: &mut Problems) {
        validate_interval_timeout(self.interval, self.timeout, p);
        self.history.validate(p);
        if self.watch.rescan.get() < Duration::from_millis(100) {
            p.push("watch.rescan", format!("must be at least 100ms, got '{}'", self.watch.rescan));
        }
        if self.database.path.as_str().is_empty() {
            p.push("database.path", "must not be empty");
        }
        if self.database.history_max_rows == 0 {
            p.push("database.history_max_rows", "must be at least 1");
        }
        if self.retry.backoff_initial.get() < Duration::from_millis(10) {
            p.push("retry.backoff_initial", format!("must be at least 10ms, got '{}'", self.retry.backoff_initial));
        }
        if self.retry.backoff_max.get() < self.retry.backoff_initial.get() {
            p.push("retry.backoff_max", "must not be shorter than retry.backoff_initial");
        }
        if self.grouping.repeat_interval.get() < Duration::from_secs(1) {
            p.push("grouping.repeat_interval", "must be at least 1 second");
        }
        for level in self.priorities.keys() {
            if !LEVELS.contains(&level.as_str()) {
                p.push(format!("priorities.{level}"), "unknown level; expected critical, warning or info");
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            if let Some(re) = &r.fingerprint
                && let Err(e) = regex::Regex::new(re)
            {
                p.push(format!("routes[{i}].fingerprint"), format!("is not a valid regular expression: {e}"));
            }
            if r.channels.is_empty() {
                p.push(format!("routes[{i}].channels"), "must name at least one channel");
            }
            let mut last = Duration::ZERO;
            for (j, e) in r.escalate.iter().enumerate() {
                if e.after.get() <= last {
                    p.push(
                        format!("routes[{i}].escalate[{j}].after"),
                        "steps must come in increasing order of `after`",
                    );
                }
                last = e.after.get();
            }
        }
        for (name, c) in &self.channels {
            validate_channel(p, name, c);
        }
        let mut names = std::collections::HashSet::new();
        for (i, d) in self.dependencies.iter().enumerate() {
            if d.name.trim().is_empty() || !names.insert(d.name.as_str()) {
                p.push(format!("dependencies[{i}].name"), format!("must be given and unique, got '{}'", d.name));
            }
            for (what, re) in [("parent", &d.parent), ("children", &d.children)] {
                if let Err(e) = regex::Regex::new(re) {
                    p.push(format!("dependencies[{i}].{what}"), format!("is not a valid regular expression: {e}"));
                }
            }
            if d.hold.get() > Duration::from_secs(3600) {
                p.push(format!("dependencies[{i}].hold"), format!("must be at most 1h, got '{}'", d.hold));
            }
        }
    }
}

fn validate_channel(p: &mut Problems, name: &str, c: &ChannelConfig) {
    let key = |k: &str| format!("channels.{name}.{k}");
    let Some(kind) = c.kind_for(name) else {
        p.push(
            format!("channels.{name}.type"),
            "is required for a channel not named after its type; expected email, webhook, sms, alertmanager or internal",
        );
        return;
    };
    if let Some(rl) = c.rate_limit {
        if rl.count == 0 {
            p.push(key("rate_limit.count"), "must be at least 1");
        }
        if rl.per.get().is_zero() {
            p.push(key("rate_limit.per"), "must be greater than zero");
        }
    }
    if let Some(q) = &c.quiet_hours
        && let Err(e) = q.minutes()
    {
        p.push(key("quiet_hours"), e);
    }
    foreign_keys(p, name, c, kind);
    if !c.enabled {
        return;
    }
    match kind {
        ChannelKind::Email => validate_email(p, name, c),
        ChannelKind::Webhook | ChannelKind::Alertmanager => validate_urls(p, name, c, kind),
        ChannelKind::Sms => validate_sms(p, name, c),
        ChannelKind::Internal => {}
    }
}

/// Keys that belong to another type of channel are mistakes worth naming.
fn foreign_keys(p: &mut Problems, name: &str, c: &ChannelConfig, kind: ChannelKind) {
    let key = |k: &str| format!("channels.{name}.{k}");
    let foreign: Vec<&str> = [
        ("smtp_server", c.smtp_server.is_some(), kind == ChannelKind::Email),
        ("smtp_port", c.smtp_port.is_some(), kind == ChannelKind::Email),
        ("security", c.security.is_some(), kind == ChannelKind::Email),
        ("username", c.username.is_some(), kind == ChannelKind::Email),
        ("password", c.password.is_some(), kind == ChannelKind::Email),
        ("ca_file", c.ca_file.is_some(), kind == ChannelKind::Email),
        ("from", c.from.is_some(), matches!(kind, ChannelKind::Email | ChannelKind::Sms)),
        ("to", !c.to.is_empty(), matches!(kind, ChannelKind::Email | ChannelKind::Sms)),
        ("urls", !c.urls.is_empty(), matches!(kind, ChannelKind::Webhook | ChannelKind::Alertmanager)),
        ("headers", !c.headers.is_empty(), matches!(kind, ChannelKind::Webhook | ChannelKind::Alertmanager)),
        ("secret", c.secret.is_some(), kind == ChannelKind::Webhook),
        ("base_url", c.base_url.is_some(), kind == ChannelKind::Sms),
        ("account_sid", c.account_sid.is_some(), kind == ChannelKind::Sms),
        ("auth_token", c.auth_token.is_some(), kind == ChannelKind::Sms),
        ("resend_interval", c.resend_interval.is_some(), kind == ChannelKind::Alertmanager),
    ]
    .into_iter()
    .filter(|(_, set, applies)| *set && !applies)
    .map(|(k, _, _)| k)
    .collect();
    for k in foreign {
        p.push(key(k), format!("is not a key of channels of type {}", kind.as_str()));
    }
}

fn validate_email(p: &mut Problems, name: &str, c: &ChannelConfig) {
    let key = |k: &str| format!("channels.{name}.{k}");
    if c.smtp_server.as_ref().is_none_or(|s| s.as_str().is_empty()) {
        p.push(key("smtp_server"), "is required for an email channel");
    }
    if c.from.is_none() && c.username.is_none() {
        p.push(key("from"), "is required (or `username`, used as the sender)");
    }
    if c.to.is_empty() && c.username.is_none() {
        p.push(key("to"), "must list at least one recipient (or set `username`, who then gets the mail)");
    }
    // Checked as the sender will parse them: an invalid address here made every
    // email a dead letter while `--validate` said OK.
    let sender = c.from.as_ref().map(|f| ("from", f)).or(c.username.as_ref().map(|u| ("username", u)));
    if let Some((k, a)) = sender
        && let Err(e) = a.as_str().parse::<lettre::message::Mailbox>()
    {
        p.push(
            key(k),
            format!("'{a}' is not a valid sender address ({e}); use name@example.org or \"Name <name@example.org>\""),
        );
    }
    if c.to.is_empty()
        && c.from.is_some()
        && let Some(u) = &c.username
        && let Err(e) = u.as_str().parse::<lettre::message::Mailbox>()
    {
        p.push(key("username"), format!("'{u}' receives the mail (`to` is empty) but is not an email address ({e})"));
    }
    for (i, t) in c.to.iter().enumerate() {
        if let Err(e) = t.as_str().parse::<lettre::message::Mailbox>() {
            p.push(format!("channels.{name}.to[{i}]"), format!("'{t}' is not a valid email address ({e})"));
        }
    }
    if let Some(ca) = &c.ca_file
        && let Err(e) = std::fs::read(ca.as_str())
    {
        p.push(key("ca_file"), format!("cannot read '{ca}': {e}"));
    }
    if c.security == Some(SmtpSecurity::Plain)
        && let Some(h) = &c.smtp_server
        && !qmoi_core::net::is_loopback_host(h.as_str())
    {
        p.push(
            key("security"),
            format!("\"plain\" sends passwords and mail unencrypted; allowed only for a relay on loopback, not '{h}'"),
        );
    }
}

/// A webhook or Alertmanager channel.
fn validate_urls(p: &mut Problems, name: &str, c: &ChannelConfig, kind: ChannelKind) {
    let key = |k: &str| format!("channels.{name}.{k}");
    if c.urls.is_empty() {
        p.push(key("urls"), format!("must list at least one URL for a {} channel", kind.as_str()));
    }
    for (i, u) in c.urls.iter().enumerate() {
        validate_url(p, &format!("channels.{name}.urls[{i}]"), u.url.expose());
    }
    if kind == ChannelKind::Alertmanager && c.resend_interval.is_some_and(|d| d.get() < Duration::from_secs(1)) {
        p.push(key("resend_interval"), "must be at least 1 second");
    }
}

fn validate_sms(p: &mut Problems, name: &str, c: &ChannelConfig) {
    let key = |k: &str| format!("channels.{name}.{k}");
    for (k, v) in [
        ("account_sid", c.account_sid.as_ref().map(EnvString::as_str)),
        ("from", c.from.as_ref().map(EnvString::as_str)),
    ] {
        if v.is_none_or(str::is_empty) {
            p.push(key(k), "is required for an sms channel");
        }
    }
    if c.auth_token.as_ref().is_none_or(Secret::is_empty) {
        p.push(key("auth_token"), "is required for an sms channel");
    }
    if c.to.is_empty() {
        p.push(key("to"), "must list at least one phone number");
    }
    if let Some(b) = &c.base_url {
        validate_url(p, &key("base_url"), b.as_str());
    }
}

qmoi_core::monitor_config!(NotifyConfig;
    fn warnings(&self) -> Vec<String> {
        self.unusable_channel_refs().into_iter().map(|(key, msg)| format!("{key}: {msg}")).collect()
    }
);

#[cfg(test)]
mod tests {
    use super::*;
    use qmoi_core::config::parse_str;
    use std::path::Path;

    fn load_json(text: &str) -> Result<NotifyConfig, String> {
        let cfg: NotifyConfig = parse_str(Path::new("n.json"), text).map_err(|e| e.to_string())?;
        let mut p = Problems::new();
        cfg.validate(&mut p);
        p.into_result(Path::new("n.json")).map_err(|e| e.to_string())?;
        Ok(cfg)
    }

    #[test]
    fn seed_example_loads_as_written() -> Result<(), String> {
        let seed = r#"{
          "channels": {
            "email": {"enabled": true, "smtp_server": "smtp.gmail.com", "smtp_port": 587,
                      "username": "your-email@gmail.com", "password": "your-app-password"},
            "webhook": {"enabled": true, "urls": ["https://hooks.slack.com/services/YOUR/SLACK/WEBHOOK"]}
          },
          "priorities": {"critical": {"channels": ["email", "sms", "webhook"], "retry_attempts": 5}}
        }"#;
        let cfg = load_json(seed)?;
        assert_eq!(cfg.priorities["critical"].retry_attempts, 5);
        let refs = cfg.unusable_channel_refs();
        assert_eq!(refs.len(), 1, "{refs:?}");
        assert!(refs[0].1.contains("'sms' is not configured"));
        let printed = serde_json::to_string(&cfg).map_err(|e| e.to_string())?;
        assert!(!printed.contains("your-app-password") && !printed.contains("YOUR/SLACK"), "{printed}");
        Ok(())
    }

    #[test]
    fn problems_are_named() {
        let bad = r#"{"channels": {
            "email": {"smtp_server": "mail.example.com", "security": "plain", "urls": ["http://x"], "ca_file": "/nonexistent/ca.pem"},
            "pager": {"urls": ["http://x"]},
            "hook": {"type": "webhook", "urls": ["ftp://x"], "quiet_hours": {"start": "25:00", "end": "07:00"}}},
          "priorities": {"urgent": {"channels": []}},
          "routes": [{"fingerprint": "(", "channels": ["hook"], "escalate": [{"after": "30m", "channels": []}, {"after": "15m", "channels": []}]}]
        }"#;
        let Err(e) = load_json(bad) else { panic!("must fail") };
        for needle in [
            "channels.email.security",
            "'channels.email.urls': is not a key of channels of type email",
            "channels.pager.type",
            "'channels.email.ca_file': cannot read '/nonexistent/ca.pem'",
            "'channels.hook.urls[0]': must be an http or https URL",
            "channels.hook.quiet_hours",
            "priorities.urgent",
            "routes[0].fingerprint",
            "routes[0].escalate[1].after",
        ] {
            assert!(e.contains(needle), "missing {needle} in:\n{e}");
        }
    }

    /// Regression: an invalid sender passed `--validate`; every email became a dead letter.
    #[test]
    fn invalid_email_addresses_fail_validation() {
        let Err(e) = load_json(
            r#"{"channels": {"email": {"smtp_server": "127.0.0.1", "from": "qmoi at example", "to": ["ops@example.org", "not an address"]}}}"#,
        ) else {
            panic!("must fail")
        };
        assert!(e.contains("'channels.email.from': 'qmoi at example' is not a valid sender address"), "{e}");
        assert!(e.contains("'channels.email.to[1]': 'not an address' is not a valid email address"), "{e}");
        let ok = load_json(
            r#"{"channels": {"email": {"smtp_server": "127.0.0.1", "from": "QMOI <qmoi@example.org>", "to": ["ops@example.org"]}}}"#,
        );
        assert!(ok.is_ok(), "{:?}", ok.err());
    }

    #[test]
    fn url_tables_and_masking() -> Result<(), String> {
        let cfg = load_json(
            r#"{"channels": {"webhook": {"urls": [{"url": "http://127.0.0.1:9/hook/TOKEN", "format": "discord", "secret": "k"}]}}}"#,
        )?;
        let u = &cfg.channels["webhook"].urls[0];
        assert_eq!(u.format, Some(WebhookFormat::Discord));
        assert_eq!(mask_url(u.url.expose()), "http://127.0.0.1:9/***");
        Ok(())
    }
}
