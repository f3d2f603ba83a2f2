//! `[dashboard]` in `master_monitor.toml`.

pub use crate::tls::TlsConfig;
use qmoi_core::config::{ConfigDuration, Problems, Secret};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardConfig {
    pub enabled: bool,
    /// Address to listen on. A non-loopback address requires `auth`.
    pub host: String,
    /// Port; 0 lets the system choose (the address is written to `run/dashboard.addr`).
    pub port: u16,
    pub auth: AuthConfig,
    pub rate_limit: RateLimitConfig,
    pub history: HistoryRetention,
    /// Serve HTTPS with these PEM files instead of HTTP.
    pub tls: Option<TlsConfig>,
    /// Open connections served at once; beyond it a new connection is closed at once. The
    /// server also stays below half of the process's descriptor limit, so the supervisor
    /// keeps descriptors for its own work (reports, children, the control socket).
    pub max_connections: usize,
    /// A client must send a whole request head within this long, and an idle keep-alive
    /// connection is closed after it (slow-header clients cannot hold connections).
    pub header_read_timeout: ConfigDuration,
    /// Extra names the dashboard may be reached by (the `Host` and `Origin` a browser
    /// sends), besides the bound address, `localhost`, 127.0.0.1 and [::1]. Any other
    /// `Host` is refused (DNS rebinding), and so is any other `Origin` (cross-site reads).
    pub allowed_hosts: Vec<String>,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            host: "127.0.0.1".into(),
            port: 8080,
            auth: AuthConfig::default(),
            rate_limit: RateLimitConfig::default(),
            history: HistoryRetention::default(),
            tls: None,
            max_connections: 512,
            header_read_timeout: ConfigDuration::from_secs(10),
            allowed_hosts: Vec::new(),
        }
    }
}

/// Who may use the dashboard. With neither tokens nor users, the dashboard is read-only
/// and may only listen on loopback.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Bearer tokens: `Authorization: Bearer <token>`.
    pub tokens: Vec<TokenEntry>,
    /// Basic auth users with argon2 password hashes (`qmoi-supervisor hash-password`).
    pub users: Vec<UserEntry>,
}

impl AuthConfig {
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty() || !self.users.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything that reads.
    Read,
    /// Also restart, acknowledge and silence.
    Admin,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Who this token is, for the audit log.
    pub name: String,
    /// The token itself: use `${ENV_VAR}`, never a literal in a shared file.
    pub token: Secret,
    pub role: Role,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    pub name: String,
    /// `$argon2id$…` PHC string.
    pub password_hash: Secret,
    pub role: Role,
}

pub use qmoi_core::ratelimit::RateLimitConfig;

/// How long metric history is kept at each resolution in `data/history.db`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryRetention {
    pub raw: ConfigDuration,
    pub minute: ConfigDuration,
    pub hour: ConfigDuration,
}

impl Default for HistoryRetention {
    fn default() -> Self {
        Self {
            raw: ConfigDuration::from_secs(48 * 3600),
            minute: ConfigDuration::from_secs(14 * 86_400),
            hour: ConfigDuration::from_secs(365 * 86_400),
        }
    }
}

pub use qmoi_core::net::is_loopback_host as is_loopback;

impl DashboardConfig {
    /// Record every problem under `dashboard.*`.
    pub fn validate(&self, p: &mut Problems) {
        if self.host.trim().is_empty() {
            p.push("dashboard.host", "must not be empty");
        } else if self.host != "localhost" && self.host.trim_matches(['[', ']']).parse::<IpAddr>().is_err() {
            p.push("dashboard.host", format!("must be an IP address or 'localhost', got '{}'", self.host));
        }
        if self.enabled && !is_loopback(&self.host) && !self.auth.enabled() {
            p.push(
                "dashboard.host",
                format!(
                    "'{}' is not a loopback address, and no [dashboard.auth] tokens or users are configured: \
                     refusing to serve the dashboard to the network without authentication. \
                     Use 127.0.0.1, or configure auth: add [[dashboard.auth.tokens]] with \
                     name = \"ops\", token = \"${{QMOI_DASHBOARD_TOKEN}}\" (16 characters or more, \
                     from the environment) and role = \"admin\" (docs/API.md)",
                    self.host
                ),
            );
        }
        for (i, t) in self.auth.tokens.iter().enumerate() {
            if !t.token.is_deferred() && t.token.expose().len() < 16 {
                p.push(format!("dashboard.auth.tokens[{i}].token"), "must be at least 16 characters");
            }
        }
        for (i, u) in self.auth.users.iter().enumerate() {
            if !u.password_hash.is_deferred() && argon2::PasswordHash::new(u.password_hash.expose()).is_err() {
                p.push(
                    format!("dashboard.auth.users[{i}].password_hash"),
                    "is not an argon2 PHC string ($argon2id$v=19$…); make one with `qmoi-supervisor hash-password`",
                );
            }
        }
        let r = &self.rate_limit;
        if r.enabled && !(r.per_second > 0.0 && r.burst >= 1.0) {
            p.push(
                "dashboard.rate_limit",
                format!("per_second must be > 0 and burst ≥ 1, got {} and {}", r.per_second, r.burst),
            );
        }
        if let Some(t) = &self.tls
            && let Err(e) = crate::tls::load(t, &[b"http/1.1"])
        {
            p.push("dashboard.tls", e);
        }
        if self.max_connections < 8 {
            p.push("dashboard.max_connections", format!("must be at least 8, got '{}'", self.max_connections));
        }
        let t = self.header_read_timeout.get();
        if t < Duration::from_secs(1) || t > Duration::from_secs(300) {
            p.push(
                "dashboard.header_read_timeout",
                format!("must be between 1s and 5m, got '{}'", self.header_read_timeout),
            );
        }
        for (i, h) in self.allowed_hosts.iter().enumerate() {
            if h.is_empty() || h.contains(['/', ' ', '@']) {
                p.push(
                    format!("dashboard.allowed_hosts[{i}]"),
                    format!("must be a host name or address, optionally with :port, got '{h}'"),
                );
            }
        }
        let h = &self.history;
        if h.raw.get() < Duration::from_secs(3600) || h.minute < h.raw || h.hour < h.minute {
            p.push("dashboard.history", "retention must be raw ≥ 1h, minute ≥ raw, hour ≥ minute");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_without_auth_is_refused() {
        let mut p = Problems::new();
        DashboardConfig { host: "0.0.0.0".into(), ..Default::default() }.validate(&mut p);
        assert!(p.to_string().contains("refusing to serve the dashboard to the network"), "{p}");
        let mut p = Problems::new();
        DashboardConfig { host: "::1".into(), ..Default::default() }.validate(&mut p);
        assert!(p.is_empty(), "{p}");
        assert!(is_loopback("127.0.0.2") && is_loopback("[::1]") && !is_loopback("10.0.0.1"));
    }
}
