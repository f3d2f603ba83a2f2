//! Authentication log analysis: failed SSH logins and invalid users per source address in
//! a sliding window, with fail2ban's `sshd` filter (mode "normal") as the model: each
//! matching line counts once, as fail2ban counts it.
//!
//! The log is followed across rotation with [`qmoi_core::follow::Follower`]: when the
//! file's inode changes, the rest of the old file is read from `<file>.1` first.

use crate::config::AuthLogConfig;
use crate::netrules::Cidr;
use chrono::{DateTime, Datelike, Local, NaiveDateTime, TimeZone, Utc};
use qmoi_core::CheckResult;
use qmoi_core::follow::Follower;
use qmoi_core::runner::Collected;
use regex::Regex;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// Patterns with a `host` group (and `user` where the line names one).
const PATTERNS: &[&str] = &[
    r"Failed (?:password|publickey|keyboard-interactive/pam|none|hostbased) for (?:invalid user )?(?P<user>\S*) from (?P<host>[0-9A-Fa-f.:]+)",
    r"[Ii](?:llegal|nvalid) user (?P<user>\S*) from (?P<host>[0-9A-Fa-f.:]+)",
    r"[Mm]aximum authentication attempts exceeded for (?:invalid user )?(?P<user>\S*) from (?P<host>[0-9A-Fa-f.:]+)",
    r"Connection (?:closed|reset) by (?:invalid|authenticating) user (?P<user>\S*) (?P<host>[0-9A-Fa-f.:]+) port \d+ \[preauth\]",
    r"User (?P<user>\S+) from (?P<host>[0-9A-Fa-f.:]+) not allowed because",
];

/// Bytes read per run at most, so a log flood cannot stall the monitor.
const MAX_READ_PER_RUN: u64 = 64 * 1024 * 1024;

#[derive(Debug, Default)]
struct Source {
    times: VecDeque<DateTime<Utc>>,
    users: BTreeSet<String>,
    total: u64,
}

pub struct AuthLog {
    cfg: AuthLogConfig,
    patterns: Vec<Regex>,
    ignore: Vec<Cidr>,
    follower: Option<Follower>,
    sources: BTreeMap<String, Source>,
    lines_read: u64,
    matched: u64,
}

impl std::fmt::Debug for AuthLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthLog").field("follower", &self.follower).finish()
    }
}

impl AuthLog {
    pub fn new(cfg: &AuthLogConfig) -> Result<Self, String> {
        let mut patterns = Vec::new();
        for p in PATTERNS.iter().copied().chain(cfg.patterns.iter().map(String::as_str)) {
            patterns.push(Regex::new(p).map_err(|e| format!("auth_log pattern '{p}': {e}"))?);
        }
        let ignore = cfg.ignore.iter().map(|s| Cidr::parse(s)).collect::<Result<_, _>>()?;
        Ok(Self {
            cfg: cfg.clone(),
            patterns,
            ignore,
            follower: None,
            sources: BTreeMap::new(),
            lines_read: 0,
            matched: 0,
        })
    }

    /// Read what was appended since the last run, then report.
    pub fn check(&mut self, out: &mut Collected) {
        let Some(path) = self.cfg.files.iter().map(|f| PathBuf::from(f.as_str())).find(|p| p.exists()) else {
            let names: Vec<&str> = self.cfg.files.iter().map(|f| f.as_str()).collect();
            out.check(CheckResult::ok("auth_log", format!("not monitored: none of {} exists", names.join(", "))));
            out.detail("auth_log", json!({"file": null}));
            return;
        };
        if self.follower.as_ref().is_none_or(|f| f.path() != path) {
            self.follower = Some(Follower::new(&path, self.cfg.initial_read_bytes).with_max_per_read(MAX_READ_PER_RUN));
        }
        let mut lines = Vec::new();
        let read = match self.follower.as_mut() {
            Some(f) => f.read_lines(|l| lines.push(l.to_string())),
            None => Ok(()),
        };
        for l in &lines {
            self.line(l);
        }
        if let Err(e) = read {
            out.check(
                CheckResult::unknown("auth_log", format!("cannot read {e}"))
                    .with_title("Authentication log unreadable"),
            );
            return;
        }
        self.report(&path, out);
    }

    fn line(&mut self, line: &str) {
        self.lines_read += 1;
        if !line.contains("sshd") {
            return;
        }
        let Some(caps) = self.patterns.iter().find_map(|p| p.captures(line)) else { return };
        let Some(host) = caps.name("host").map(|m| m.as_str().trim_end_matches(['.', ':'])) else { return };
        let Ok(ip) = host.parse::<std::net::IpAddr>() else { return };
        if self.ignore.iter().any(|c| c.contains(ip)) {
            return;
        }
        self.matched += 1;
        let at = line_time(line).unwrap_or_else(Utc::now);
        let src = self.sources.entry(ip.to_string()).or_default();
        src.times.push_back(at);
        src.total += 1;
        if let Some(u) = caps.name("user").map(|m| m.as_str()).filter(|u| !u.is_empty())
            && src.users.len() < 20
        {
            src.users.insert(u.to_string());
        }
    }

    fn report(&mut self, path: &Path, out: &mut Collected) {
        let window = chrono::Duration::from_std(self.cfg.find_time.get()).unwrap_or(chrono::Duration::minutes(10));
        let cutoff = Utc::now() - window;
        let mut offenders = Vec::new();
        let mut in_window = 0usize;
        self.sources.retain(|_, s| {
            while s.times.front().is_some_and(|t| *t < cutoff) {
                s.times.pop_front();
            }
            !s.times.is_empty()
        });
        for (addr, s) in &self.sources {
            in_window += s.times.len();
            if s.times.len() >= self.cfg.max_retry {
                let users: Vec<&str> = s.users.iter().map(String::as_str).collect();
                out.check(
                    CheckResult::new(
                        format!("auth:bruteforce:{addr}"),
                        self.cfg.level.status(),
                        format!(
                            "{} failed SSH logins from {addr} within {} (limit {}); users tried: {}",
                            s.times.len(),
                            self.cfg.find_time,
                            self.cfg.max_retry,
                            if users.is_empty() { "-".to_string() } else { users.join(", ") }
                        ),
                    )
                    .with_value(s.times.len() as f64, "failures")
                    .with_title(format!("SSH brute force from {addr}")),
                );
                offenders.push(json!({
                    "address": addr, "failures": s.times.len(), "users": users,
                    "first": s.times.front(), "last": s.times.back(),
                }));
            }
        }
        out.check(CheckResult::ok(
            "auth_log",
            format!(
                "{}: {} failed logins from {} addresses in the last {}, {} over the limit",
                path.display(),
                in_window,
                self.sources.len(),
                self.cfg.find_time,
                offenders.len()
            ),
        ));
        out.metric("qmoi_security_auth_failures", &[], in_window as f64);
        out.metric("qmoi_security_auth_sources", &[], self.sources.len() as f64);
        out.metric("qmoi_security_bruteforce_sources", &[], offenders.len() as f64);
        out.detail(
            "auth_log",
            json!({"file": path.display().to_string(), "offset": self.follower.as_ref().map_or(0, Follower::offset), "lines_read": self.lines_read, "matched": self.matched, "offenders": offenders}),
        );
    }
}

/// The time at the start of a syslog line: RFC 3339 (`2026-11-27T09:28:55.123+00:00`,
/// rsyslog's high-precision format and journald exports) or traditional
/// (`Nov 27 09:28:55`, local time, this year).
pub fn line_time(line: &str) -> Option<DateTime<Utc>> {
    let first = line.split_whitespace().next()?;
    if first.len() >= 19 && first.as_bytes().get(4) == Some(&b'-') {
        return DateTime::parse_from_rfc3339(first).ok().map(|t| t.with_timezone(&Utc));
    }
    let head: String = line.chars().take(15).collect();
    let year = Local::now().year();
    let naive = NaiveDateTime::parse_from_str(&format!("{year} {head}"), "%Y %b %e %H:%M:%S").ok()?;
    let t = Local.from_local_datetime(&naive).earliest()?.with_timezone(&Utc);
    // "Dec 31" read on Jan 1 belongs to last year.
    if t > Utc::now() + chrono::Duration::days(1) {
        let naive = NaiveDateTime::parse_from_str(&format!("{} {head}", year - 1), "%Y %b %e %H:%M:%S").ok()?;
        return Local.from_local_datetime(&naive).earliest().map(|t| t.with_timezone(&Utc));
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_timestamp_formats() {
        let t = line_time("2026-11-27T09:28:55.123456+00:00 host sshd[1]: x");
        assert_eq!(t.map(|t| t.timestamp()), Some(1_795_771_735));
        assert!(line_time("Nov 27 09:28:55 host sshd[1]: x").is_some());
        assert!(line_time("garbage").is_none());
    }

    #[test]
    fn counts_like_fail2ban() -> Result<(), String> {
        let cfg = AuthLogConfig { max_retry: 3, ..AuthLogConfig::default() };
        let mut a = AuthLog::new(&cfg)?;
        let now = Utc::now().to_rfc3339();
        for l in [
            format!("{now} h sshd[9]: Invalid user admin from 203.0.113.5 port 4000"),
            format!("{now} h sshd[9]: Failed password for invalid user admin from 203.0.113.5 port 4000 ssh2"),
            format!("{now} h sshd[9]: Failed password for root from 203.0.113.5 port 4001 ssh2"),
            format!("{now} h sshd[9]: Failed password for root from 127.0.0.1 port 4001 ssh2"),
            format!("{now} h sshd[9]: Accepted password for bob from 198.51.100.1 port 4001 ssh2"),
            format!("{now} h CRON[2]: Failed password for root from 198.51.100.2"),
        ] {
            a.line(&l);
        }
        assert_eq!(a.sources.get("203.0.113.5").map(|s| s.times.len()), Some(3));
        assert_eq!(a.sources.len(), 1, "loopback ignored, accepted logins and other programs not counted");
        Ok(())
    }
}
