//! Authentication log analysis: failed SSH logins and invalid users per source address in
//! a sliding window, with fail2ban's `sshd` filter (mode "normal") as the model: each
//! matching line counts once, as fail2ban counts it.
//!
//! The log is followed across rotation: when the file's inode changes, the rest of the old
//! file is read from `<file>.1` (if it is the rotated one) before the new file.

use crate::config::AuthLogConfig;
use crate::found::Found;
use crate::network::Cidr;
use chrono::{DateTime, Datelike, Local, NaiveDateTime, TimeZone, Utc};
use qmoi_core::CheckResult;
use regex::Regex;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
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
    file: Option<PathBuf>,
    ino: Option<u64>,
    offset: u64,
    partial: Vec<u8>,
    sources: BTreeMap<String, Source>,
    lines_read: u64,
    matched: u64,
}

impl std::fmt::Debug for AuthLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthLog").field("file", &self.file).field("offset", &self.offset).finish()
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
            file: None,
            ino: None,
            offset: 0,
            partial: Vec::new(),
            sources: BTreeMap::new(),
            lines_read: 0,
            matched: 0,
        })
    }

    /// Read what was appended since the last run, then report.
    pub fn check(&mut self, out: &mut Found) {
        let Some(path) = self.cfg.files.iter().map(|f| PathBuf::from(f.as_str())).find(|p| p.exists()) else {
            let names: Vec<&str> = self.cfg.files.iter().map(|f| f.as_str()).collect();
            out.check(CheckResult::ok("auth_log", format!("not monitored: none of {} exists", names.join(", "))));
            out.detail("auth_log", json!({"file": null}));
            return;
        };
        if self.file.as_ref() != Some(&path) {
            self.file = Some(path.clone());
            self.ino = None;
        }
        if let Err(e) = self.follow(&path) {
            out.check(
                CheckResult::unknown("auth_log", format!("cannot read {}: {e}", path.display()))
                    .with_title("Authentication log unreadable"),
            );
            return;
        }
        self.report(&path, out);
    }

    fn follow(&mut self, path: &Path) -> std::io::Result<()> {
        let md = std::fs::metadata(path)?;
        match self.ino {
            None => {
                // First look: only the tail matters for a window of minutes.
                self.offset = md.len().saturating_sub(self.cfg.initial_read_bytes);
                self.ino = Some(md.ino());
                let skip_partial = self.offset > 0;
                self.read_from(path, skip_partial)?;
            }
            Some(ino) if ino != md.ino() => {
                // Rotated: finish the old file (now `<file>.1`) when it is the same inode.
                let rotated = PathBuf::from(format!("{}.1", path.display()));
                if std::fs::metadata(&rotated).is_ok_and(|r| r.ino() == ino) {
                    self.read_from(&rotated, false)?;
                }
                self.flush_partial();
                self.ino = Some(md.ino());
                self.offset = 0;
                self.read_from(path, false)?;
            }
            Some(_) => {
                if md.len() < self.offset {
                    // Truncated in place (copytruncate): start over.
                    self.offset = 0;
                    self.partial.clear();
                }
                self.read_from(path, false)?;
            }
        }
        Ok(())
    }

    fn read_from(&mut self, path: &Path, skip_partial_line: bool) -> std::io::Result<()> {
        let mut f = std::fs::File::open(path)?;
        f.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        let n = f.take(MAX_READ_PER_RUN).read_to_end(&mut buf)?;
        self.offset += n as u64;
        let mut data = &buf[..];
        if skip_partial_line {
            match data.iter().position(|&b| b == b'\n') {
                Some(i) => data = &data[i + 1..],
                None => return Ok(()),
            }
        }
        let mut start = 0;
        for (i, &b) in data.iter().enumerate() {
            if b == b'\n' {
                let line = if self.partial.is_empty() {
                    String::from_utf8_lossy(&data[start..i]).into_owned()
                } else {
                    self.partial.extend_from_slice(&data[start..i]);
                    let l = String::from_utf8_lossy(&self.partial).into_owned();
                    self.partial.clear();
                    l
                };
                self.line(&line);
                start = i + 1;
            }
        }
        self.partial.extend_from_slice(&data[start..]);
        Ok(())
    }

    fn flush_partial(&mut self) {
        if !self.partial.is_empty() {
            let line = String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned();
            self.line(&line);
        }
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

    fn report(&mut self, path: &Path, out: &mut Found) {
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
            json!({"file": path.display().to_string(), "offset": self.offset, "lines_read": self.lines_read, "matched": self.matched, "offenders": offenders}),
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
