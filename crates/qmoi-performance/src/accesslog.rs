//! Response time and throughput from access logs: nginx/Apache combined (with the request
//! time as the last field when the log format has it), Apache `vhost_combined`, or JSON
//! lines with named fields. Per report interval: requests/s, status-class counts, error
//! rate and latency percentiles, overall and per group (virtual host or path prefix).

use crate::config::{AccessLog, GroupBy, LogFormat};
use crate::stats::Summary;
use qmoi_core::follow::Follower;
use serde::Serialize;
use std::collections::BTreeMap;

/// One parsed request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request<'a> {
    pub host: Option<&'a str>,
    pub path: &'a str,
    pub status: u16,
    /// Seconds (None when the format has no request time).
    pub time: Option<f64>,
}

/// Parse one combined line: `addr - user [time] "METHOD path PROTO" status bytes "ref" "ua" [request_time]`.
/// With `vhost`, the line starts with `host:port ` (Apache `vhost_combined`).
pub fn parse_combined(line: &str, vhost: bool) -> Option<Request<'_>> {
    let (host, rest) = if vhost {
        let (h, r) = line.split_once(' ')?;
        (Some(h.rsplit_once(':').map_or(h, |(a, _)| a)), r)
    } else {
        (None, line)
    };
    let q1 = rest.find('"')?;
    let after = &rest[q1 + 1..];
    let q2 = after.find('"')?;
    let request = &after[..q2];
    let path = request.split(' ').nth(1).unwrap_or(request);
    let mut tail = after[q2 + 1..].split_ascii_whitespace();
    let status: u16 = tail.next()?.parse().ok()?;
    // The request time, when present, is the last field after the user agent's quotes.
    let last_quote = rest.rfind('"')?;
    let time = if last_quote > q1 + 1 + q2 {
        rest[last_quote + 1..].split_ascii_whitespace().next().and_then(|t| t.parse::<f64>().ok())
    } else {
        None
    };
    Some(Request { host, path, status, time })
}

/// Aggregates of one group over one interval.
#[derive(Debug, Default)]
pub struct Agg {
    pub requests: u64,
    pub classes: [u64; 5],
    pub times: Vec<f64>,
    /// Requests whose time was sampled out (beyond `MAX_TIMES`).
    seen_times: u64,
}

/// Latency samples kept per group and interval; beyond, reservoir sampling keeps the
/// percentiles right in expectation with bounded memory.
const MAX_TIMES: usize = 100_000;

impl Agg {
    fn add(&mut self, r: &Request<'_>, unit: crate::config::TimeUnit, rng: &mut u64) {
        self.requests += 1;
        let class = (r.status / 100).clamp(1, 5) as usize - 1;
        self.classes[class] += 1;
        if let Some(t) = r.time {
            let t = unit.to_seconds(t);
            self.seen_times += 1;
            if self.times.len() < MAX_TIMES {
                self.times.push(t);
            } else {
                // xorshift: cheap and good enough to choose a slot.
                *rng ^= *rng << 13;
                *rng ^= *rng >> 7;
                *rng ^= *rng << 17;
                let j = (*rng % self.seen_times) as usize;
                if j < MAX_TIMES {
                    self.times[j] = t;
                }
            }
        }
    }
}

/// What one access log gave over one interval, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    pub group: String,
    pub requests: u64,
    pub requests_per_second: f64,
    pub status: BTreeMap<&'static str, u64>,
    pub error_rate_percent: f64,
    pub latency: Option<Summary>,
}

pub struct LogState {
    pub cfg: AccessLog,
    follower: Follower,
    groups: BTreeMap<String, Agg>,
    pub parsed: u64,
    pub unparsed: u64,
    pub error: Option<String>,
    /// Time the last poll took (reading and parsing).
    pub last_poll_ms: f64,
    rng: u64,
}

impl std::fmt::Debug for LogState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogState").field("name", &self.cfg.name).finish()
    }
}

impl LogState {
    pub fn new(cfg: AccessLog) -> Self {
        let follower = Follower::new(cfg.path.as_str(), cfg.initial_read_bytes).with_max_per_read(cfg.max_read_bytes);
        Self {
            cfg,
            follower,
            groups: BTreeMap::new(),
            parsed: 0,
            unparsed: 0,
            error: None,
            last_poll_ms: 0.0,
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// Read what was appended since the last call.
    pub fn poll(&mut self) {
        let started = std::time::Instant::now();
        let cfg = &self.cfg;
        let groups = &mut self.groups;
        let (parsed, unparsed, rng) = (&mut self.parsed, &mut self.unparsed, &mut self.rng);
        let result = self.follower.read_lines(|line| {
            let json_holder;
            let req = match cfg.format {
                LogFormat::Combined => parse_combined(line, false),
                LogFormat::VhostCombined => parse_combined(line, true),
                LogFormat::Json => {
                    json_holder = serde_json::from_str::<serde_json::Value>(line).ok();
                    json_holder.as_ref().and_then(|v| parse_json(v, cfg))
                }
            };
            let Some(req) = req else {
                *unparsed += 1;
                return;
            };
            *parsed += 1;
            let group = match cfg.group_by {
                GroupBy::None => None,
                GroupBy::Vhost => Some(req.host.unwrap_or("-").to_string()),
                GroupBy::PathPrefix => Some(
                    cfg.path_prefixes
                        .iter()
                        .find(|p| req.path.starts_with(p.as_str()))
                        .cloned()
                        .unwrap_or_else(|| "other".into()),
                ),
            };
            groups.entry("all".into()).or_default().add(&req, cfg.time_unit, rng);
            if let Some(g) = group {
                groups.entry(g).or_default().add(&req, cfg.time_unit, rng);
            }
        });
        self.error = result.err();
        self.last_poll_ms = started.elapsed().as_secs_f64() * 1000.0;
    }

    /// The interval's figures, overall (`all`) first; resets the counts.
    pub fn take(&mut self, seconds: f64) -> Vec<GroupReport> {
        let groups = std::mem::take(&mut self.groups);
        let mut out: Vec<GroupReport> = groups
            .into_iter()
            .map(|(group, mut a)| {
                let names = ["1xx", "2xx", "3xx", "4xx", "5xx"];
                GroupReport {
                    requests_per_second: a.requests as f64 / seconds.max(1e-3),
                    status: names.iter().zip(a.classes).map(|(n, c)| (*n, c)).collect(),
                    error_rate_percent: if a.requests > 0 {
                        a.classes[4] as f64 / a.requests as f64 * 100.0
                    } else {
                        0.0
                    },
                    latency: Summary::of(&mut a.times),
                    requests: a.requests,
                    group,
                }
            })
            .collect();
        out.sort_by_key(|g| g.group != "all");
        if out.is_empty() {
            out.push(GroupReport {
                group: "all".into(),
                requests: 0,
                requests_per_second: 0.0,
                status: BTreeMap::new(),
                error_rate_percent: 0.0,
                latency: None,
            });
        }
        out
    }

    pub fn rotations(&self) -> u64 {
        self.follower.rotations
    }
}

fn parse_json<'a>(v: &'a serde_json::Value, cfg: &AccessLog) -> Option<Request<'a>> {
    let status = match &v[&cfg.status_field] {
        serde_json::Value::Number(n) => n.as_u64()? as u16,
        serde_json::Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    let time = match &v[&cfg.time_field] {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    };
    Some(Request { host: v[&cfg.host_field].as_str(), path: v[&cfg.path_field].as_str().unwrap_or("-"), status, time })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_json_lines_with_named_fields() {
        let cfg = AccessLog {
            name: "j".into(),
            path: "x".into(),
            format: LogFormat::Json,
            time_unit: crate::config::TimeUnit::Ms,
            status_field: "code".into(),
            time_field: "ms".into(),
            path_field: "uri".into(),
            host_field: "vhost".into(),
            group_by: GroupBy::Vhost,
            path_prefixes: Vec::new(),
            error_rate_warning: None,
            p99_warning: None,
            initial_read_bytes: 0,
            max_read_bytes: 1024,
        };
        let v: serde_json::Value =
            serde_json::from_str(r#"{"code":"502","ms":12.5,"uri":"/api","vhost":"shop"}"#).unwrap_or_default();
        let r = parse_json(&v, &cfg);
        assert_eq!(r, Some(Request { host: Some("shop"), path: "/api", status: 502, time: Some(12.5) }));
        let v: serde_json::Value = serde_json::from_str(r#"{"code":200}"#).unwrap_or_default();
        assert_eq!(parse_json(&v, &cfg).map(|r| (r.status, r.time, r.path)), Some((200, None, "-")));
        let v: serde_json::Value = serde_json::from_str(r#"{"ms":1}"#).unwrap_or_default();
        assert!(parse_json(&v, &cfg).is_none(), "no status: not a request");
    }

    #[test]
    fn parses_combined_with_and_without_request_time() {
        let l = r#"203.0.113.9 - - [27/Nov/2026:10:00:00 +0000] "GET /api/items?x=1 HTTP/1.1" 200 512 "-" "curl/8.0" 0.042"#;
        assert_eq!(
            parse_combined(l, false),
            Some(Request { host: None, path: "/api/items?x=1", status: 200, time: Some(0.042) })
        );
        let l = r#"203.0.113.9 - bob [27/Nov/2026:10:00:00 +0000] "POST /login HTTP/2.0" 503 0 "https://x/" "Mozilla/5.0 (X11; \"quoted\")""#;
        let r = parse_combined(l, false);
        assert_eq!(r.as_ref().map(|r| (r.status, r.time)), Some((503, None)));
        let l = r#"shop.example:443 203.0.113.9 - - [27/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 301 0 "-" "ua""#;
        assert_eq!(parse_combined(l, true).and_then(|r| r.host), Some("shop.example"));
        assert!(parse_combined("garbage", false).is_none());
        assert!(parse_combined(r#"x "GET / HTTP/1.1" abc"#, false).is_none());
    }
}
