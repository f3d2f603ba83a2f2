//! `config/api_endpoints.toml`: the endpoints to probe and how.

use crate::conditions::Condition;
use qmoi_core::config::{ConfigDuration, EnvString, Problems, Secret, Validate};
use qmoi_core::runner::{HistorySettings, validate_interval_timeout};
pub use qmoi_core::slo::{BurnAlert, SloSettings, SloTarget};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EndpointsConfig {
    /// How often the report is written (each endpoint has its own probe interval).
    pub interval: ConfigDuration,
    /// Default probe timeout.
    pub timeout: ConfigDuration,
    pub history: HistorySettings,
    /// Default probe interval of an endpoint.
    pub probe_interval: ConfigDuration,
    /// Probes in flight at once, over all endpoints.
    pub concurrency: usize,
    /// Probes in flight at once to one host.
    pub per_host_concurrency: usize,
    /// Keep connections open between probes (off: every probe measures a real connect).
    pub reuse_connections: bool,
    /// Largest response body read, in bytes; the rest is not read.
    pub max_body_bytes: usize,
    /// Availability and latency history kept across restarts.
    pub state_file: EnvString,
    /// `"i/n"`: probe only the endpoints whose name hashes to `i` modulo `n`, so `n`
    /// hosts with the same endpoint list split it between them.
    pub shard: Option<Shard>,
    /// Service level objectives: where their counts are kept, how they alert.
    pub slo: SloSettings,
    pub endpoints: Vec<Endpoint>,
}

/// One of `n` shards of the endpoint list (`"i/n"`, `0 <= i < n`). An endpoint belongs
/// to shard `i` when the MD5 of its name, its last 8 bytes read as a big-endian integer,
/// is `i` modulo `n`: the hash of Prometheus' `hashmod` relabelling, so the same split can
/// be made in a Prometheus config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not a shard: write \"i/n\" with 0 <= i < n, e.g. \"0/3\"");
        let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let (index, count): (u64, u64) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }

    /// The shard `name` belongs to, out of `count`.
    pub fn of(name: &str, count: u64) -> u64 {
        use md5::Digest as _;
        let h = md5::Md5::digest(name.as_bytes());
        let mut tail = [0u8; 8];
        tail.copy_from_slice(&h[8..16]);
        u64::from_be_bytes(tail) % count.max(1)
    }

    pub fn owns(&self, name: &str) -> bool {
        Self::of(name, self.count) == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Serialize for Shard {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Shard {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = EnvString::deserialize(d)?;
        Shard::parse(s.as_str()).map_err(serde::de::Error::custom)
    }
}

impl Default for EndpointsConfig {
    fn default() -> Self {
        Self {
            interval: ConfigDuration::from_secs(15),
            timeout: ConfigDuration::from_secs(10),
            history: HistorySettings { every: ConfigDuration::from_secs(60), ..HistorySettings::default() },
            probe_interval: ConfigDuration::from_secs(30),
            concurrency: 256,
            per_host_concurrency: 8,
            reuse_connections: false,
            max_body_bytes: 64 * 1024,
            state_file: EnvString::from("data/api_endpoints_state.json"),
            shard: None,
            slo: SloSettings::default(),
            endpoints: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    Http,
    Tcp,
    Tls,
    Dns,
    /// ICMP echo ("ping"), where the system permits it (see `probe::icmp`).
    Icmp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HttpVersion {
    /// HTTP/1.1, or HTTP/2 when TLS negotiates it.
    #[default]
    Auto,
    Http1,
    Http2,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Unique; names the checks, alerts and metrics of this endpoint.
    pub name: String,
    pub kind: ProbeKind,
    /// http: the URL.
    #[serde(default)]
    pub url: Option<EnvString>,
    /// tcp and tls: `host:port`; dns: the name to resolve.
    #[serde(default)]
    pub target: Option<EnvString>,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    #[serde(default)]
    pub body: Option<EnvString>,
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    #[serde(default)]
    pub http_version: HttpVersion,
    /// Accept any certificate (stated explicitly; the report says so).
    #[serde(default)]
    pub insecure: bool,
    /// PEM bundle of CAs to trust instead of the system's.
    #[serde(default)]
    pub ca_file: Option<EnvString>,
    /// PEM file with a client certificate and its key.
    #[serde(default)]
    pub client_identity: Option<EnvString>,
    /// tcp: bytes to send after connecting; `expect`: text the answer must contain.
    #[serde(default)]
    pub send: Option<String>,
    #[serde(default)]
    pub expect: Option<String>,
    /// dns: query this server (`ip:port`) instead of the system resolver.
    #[serde(default)]
    pub server: Option<EnvString>,
    /// dns with `server`: A, AAAA, CNAME, NS, MX or TXT (default A).
    #[serde(default)]
    pub record_type: Option<String>,
    /// tls: the name to verify (default: the host of `target`).
    #[serde(default)]
    pub server_name: Option<String>,
    #[serde(default)]
    pub interval: Option<ConfigDuration>,
    #[serde(default)]
    pub timeout: Option<ConfigDuration>,
    /// Extra tries within one probe before it counts as failed.
    #[serde(default)]
    pub retries: u32,
    /// Consecutive failed probes before the endpoint is down (no flapping alerts).
    #[serde(default = "one")]
    pub failure_threshold: u32,
    /// Consecutive good probes before a down endpoint is up again.
    #[serde(default = "one")]
    pub success_threshold: u32,
    /// Down is critical rather than warning.
    #[serde(default)]
    pub critical: bool,
    #[serde(default)]
    pub conditions: Vec<String>,
    /// Warning when latency stays above this for `latency_probes` probes in a row.
    #[serde(default)]
    pub latency_warning: Option<ConfigDuration>,
    #[serde(default = "three")]
    pub latency_probes: u32,
    /// Warning when more than this percent of the last 20 probes failed.
    #[serde(default)]
    pub error_rate_warning: Option<f64>,
    /// Certificate expiring within this many days: warning (expired or invalid: critical).
    #[serde(default = "fourteen")]
    pub cert_expiry_warning_days: f64,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// A service level objective: availability over a window, error budget, burn alerts.
    #[serde(default)]
    pub slo: Option<SloTarget>,
}

fn default_method() -> String {
    "GET".into()
}
fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}
fn three() -> u32 {
    3
}
fn fourteen() -> f64 {
    14.0
}

impl Endpoint {
    /// The conditions, parsed (validation has named every one that does not parse).
    pub fn conditions(&self) -> Result<Vec<Condition>, String> {
        self.conditions.iter().map(|c| Condition::parse(c)).collect()
    }

    /// The host a per-host concurrency cap applies to.
    pub fn host(&self) -> String {
        match self.kind {
            ProbeKind::Http => self
                .url
                .as_ref()
                .and_then(|u| reqwest::Url::parse(u.as_str()).ok())
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_default(),
            ProbeKind::Icmp => {
                self.target.as_ref().map(|t| t.as_str().trim_matches(['[', ']']).to_string()).unwrap_or_default()
            }
            _ => self.target.as_ref().map(|t| split_host_port(t.as_str()).0.to_string()).unwrap_or_default(),
        }
    }
}

/// `host:port`, `[v6]:port` → (host, port).
pub fn split_host_port(s: &str) -> (&str, Option<u16>) {
    match s.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => (h.trim_matches(['[', ']']), p.parse().ok()),
        _ => (s, None),
    }
}

impl Validate for EndpointsConfig {
    fn validate(&self, p: &mut Problems) {
        validate_interval_timeout(self.interval, self.timeout, p);
        self.history.validate(p);
        if self.probe_interval.get() < Duration::from_millis(100) {
            p.push("probe_interval", format!("must be at least 100ms, got '{}'", self.probe_interval));
        }
        if self.concurrency == 0 {
            p.push("concurrency", "must be at least 1, got '0'");
        }
        if self.per_host_concurrency == 0 {
            p.push("per_host_concurrency", "must be at least 1, got '0'");
        }
        if self.max_body_bytes == 0 {
            p.push("max_body_bytes", "must be at least 1, got '0'");
        }
        self.slo.validate(p);
        let mut names = HashSet::new();
        for (i, e) in self.endpoints.iter().enumerate() {
            let key = format!("endpoints[{i}]");
            if e.name.trim().is_empty() {
                p.push(format!("{key}.name"), "must not be empty");
            } else if !names.insert(e.name.as_str()) {
                p.push(format!("{key}.name"), format!("'{}' is used twice; names must be unique", e.name));
            }
            validate_target(p, &key, e);
            validate_endpoint(p, &key, e);
            p.check_labels(&key, &e.labels);
            if let Some(t) = &e.slo {
                t.validate(p, &format!("{key}.slo"), self.slo.keep);
            }
        }
    }
}

/// What an endpoint of its kind must name: a URL, host:port, a host, a name to resolve.
fn validate_target(p: &mut Problems, key: &str, e: &Endpoint) {
    match e.kind {
        ProbeKind::Http => match e.url.as_ref().map(|u| reqwest::Url::parse(u.as_str())) {
            None => p.push(format!("{key}.url"), "an http endpoint needs a url"),
            Some(Err(err)) => p.push(
                format!("{key}.url"),
                format!("'{}' is not a URL: {err}", e.url.as_ref().map(EnvString::as_str).unwrap_or("")),
            ),
            Some(Ok(u)) if !["http", "https"].contains(&u.scheme()) => {
                p.push(format!("{key}.url"), format!("scheme must be http or https, got '{}'", u.scheme()));
            }
            Some(Ok(_)) => {}
        },
        ProbeKind::Tcp | ProbeKind::Tls => match e.target.as_ref().map(|t| split_host_port(t.as_str())) {
            Some((h, Some(port))) if !h.is_empty() && port > 0 => {}
            _ => p.push(format!("{key}.target"), "needs host:port, e.g. '127.0.0.1:443'"),
        },
        ProbeKind::Icmp => match e.target.as_ref().map(|t| t.as_str().trim()) {
            None | Some("") => {
                p.push(format!("{key}.target"), "an icmp endpoint needs a host name or address as target")
            }
            Some(t)
                if t.parse::<std::net::SocketAddr>().is_ok()
                    || (t.matches(':').count() == 1 && !t.starts_with('[')) =>
            {
                p.push(format!("{key}.target"), format!("an icmp target is a host, without a port: got '{t}'"))
            }
            Some(_) => {}
        },
        ProbeKind::Dns => {
            if e.target.as_ref().is_none_or(|t| t.as_str().trim().is_empty()) {
                p.push(format!("{key}.target"), "a dns endpoint needs the name to resolve as target");
            }
            if let Some(s) = &e.server
                && s.as_str().parse::<std::net::SocketAddr>().is_err()
            {
                p.push(format!("{key}.server"), format!("must be ip:port (e.g. '127.0.0.53:53'), got '{s}'"));
            }
            if let Some(t) = &e.record_type {
                if dns_type_code(t).is_none() {
                    p.push(format!("{key}.record_type"), format!("must be A, AAAA, CNAME, NS, MX or TXT, got '{t}'"));
                } else if e.server.is_none() && !["A", "AAAA"].contains(&t.to_ascii_uppercase().as_str()) {
                    p.push(
                        format!("{key}.record_type"),
                        "other types than A/AAAA need a `server` (the system resolver only gives addresses)",
                    );
                }
            }
        }
    }
}

/// The rest of an endpoint: method, conditions, thresholds, timings, files.
fn validate_endpoint(p: &mut Problems, key: &str, e: &Endpoint) {
    if reqwest::Method::from_bytes(e.method.as_bytes()).is_err() {
        p.push(format!("{key}.method"), format!("'{}' is not an HTTP method", e.method));
    }
    if e.kind != ProbeKind::Http && !e.conditions.is_empty() {
        // Silently ignored conditions would look like checks that pass.
        p.push(
            format!("{key}.conditions"),
            "conditions apply to http endpoints only (tcp: send/expect; dns: expect; tls: cert_expiry_warning_days)",
        );
    }
    for (j, c) in e.conditions.iter().enumerate() {
        if let Err(err) = Condition::parse(c) {
            p.push(format!("{key}.conditions[{j}]"), err);
        }
    }
    if e.failure_threshold == 0 || e.success_threshold == 0 {
        p.push(key.to_string(), "failure_threshold and success_threshold must be at least 1");
    }
    if let Some(t) = e.timeout
        && t.get() < Duration::from_millis(10)
    {
        p.push(format!("{key}.timeout"), format!("must be at least 10ms, got '{t}'"));
    }
    if let Some(i) = e.interval
        && i.get() < Duration::from_millis(100)
    {
        p.push(format!("{key}.interval"), format!("must be at least 100ms, got '{i}'"));
    }
    if let Some(r) = e.error_rate_warning
        && !(0.0..=100.0).contains(&r)
    {
        p.push(format!("{key}.error_rate_warning"), format!("must be a percentage, got '{r}'"));
    }
    for (what, f) in [("ca_file", &e.ca_file), ("client_identity", &e.client_identity)] {
        if let Some(f) = f
            && std::fs::metadata(f.as_str()).is_err()
        {
            p.push(format!("{key}.{what}"), format!("cannot read '{f}'"));
        }
    }
}

/// The code of a DNS record type a `dns` endpoint may ask for (`record_type`).
pub fn dns_type_code(t: &str) -> Option<u16> {
    Some(match t.to_ascii_uppercase().as_str() {
        "A" => 1,
        "NS" => 2,
        "CNAME" => 5,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        _ => return None,
    })
}

qmoi_core::monitor_config!(EndpointsConfig);

#[cfg(test)]
mod shard_tests {
    use super::Shard;

    /// The values are MD5's, as Prometheus' hashmod computes them (checked with Python's
    /// hashlib: last 8 bytes of the digest, big-endian, modulo n).
    #[test]
    fn shards_follow_prometheus_hashmod() {
        assert_eq!((Shard::of("a", 3), Shard::of("a", 7)), (1, 2));
        assert_eq!((Shard::of("web-1", 3), Shard::of("web-1", 7)), (0, 2));
        assert_eq!((Shard::of("api.example.com", 3), Shard::of("api.example.com", 7)), (1, 1));
        assert_eq!((Shard::of("ep-042", 3), Shard::of("ep-042", 7)), (2, 5));
        let s = Shard::parse(" 2/3 ").unwrap();
        assert!(s.owns("ep-042") && !s.owns("a"));
        assert_eq!(s.to_string(), "2/3");
        for bad in ["3/3", "1", "a/b", "0/0", "-1/2"] {
            let e = Shard::parse(bad).unwrap_err();
            assert!(e.contains(&format!("'{bad}' is not a shard")), "{e}");
        }
    }
}
