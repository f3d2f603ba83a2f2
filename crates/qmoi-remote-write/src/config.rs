//! `[remote_write]` in `master_monitor.toml`: where the stack's metrics are pushed.

use qmoi_core::config::{ConfigDuration, EnvString, Problems, Secret};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteWriteConfig {
    /// How often every metric of `/metrics` is sampled and queued for each receiver (as
    /// a scrape interval would).
    pub interval: ConfigDuration,
    /// The `host` label (and `instance`, unless `labels` sets one); default: the host name.
    pub host: Option<EnvString>,
    /// Labels added to every sample (a sample's own label of the same name wins).
    pub labels: BTreeMap<String, EnvString>,
    /// At most this many samples in one request; a larger sampling is split.
    pub max_samples_per_send: usize,
    /// Per receiver: the on-disk buffer (`data/remote_write/<name>/`) holds at most this
    /// many bytes of unsent requests; beyond it the oldest are dropped and counted.
    pub max_buffer_bytes: u64,
    /// First wait after a failed send; doubles up to `max_backoff`.
    pub min_backoff: ConfigDuration,
    /// Longest wait between retries, also the cap on a receiver's `Retry-After`.
    pub max_backoff: ConfigDuration,
    pub receivers: Vec<ReceiverConfig>,
}

impl Default for RemoteWriteConfig {
    fn default() -> Self {
        Self {
            interval: ConfigDuration::from_secs(15),
            host: None,
            labels: BTreeMap::new(),
            max_samples_per_send: 2000,
            max_buffer_bytes: 64 * 1024 * 1024,
            min_backoff: ConfigDuration(Duration::from_millis(500)),
            max_backoff: ConfigDuration::from_secs(30),
            receivers: Vec::new(),
        }
    }
}

/// One remote-write endpoint (Prometheus with `--web.enable-remote-write-receiver`,
/// VictoriaMetrics, Mimir, Thanos receive, …).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// `http(s)://host:port/api/v1/write`.
    pub url: EnvString,
    /// Names the receiver in logs, metrics (`receiver` label) and its buffer folder;
    /// default: the URL's `host:port`.
    #[serde(default)]
    pub name: Option<String>,
    /// `Authorization: Bearer …`.
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    #[serde(default)]
    pub basic_auth: Option<qmoi_core::http::BasicAuth>,
    /// PEM file of the CA that signed the receiver's certificate (beside the system's).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Whole-request timeout.
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
    /// Labels added to this receiver's samples only (over the global `labels`).
    #[serde(default)]
    pub labels: BTreeMap<String, EnvString>,
}

fn default_timeout() -> ConfigDuration {
    ConfigDuration::from_secs(30)
}

impl ReceiverConfig {
    /// The receiver's name: configured, or `host:port` of its URL (`_` for characters
    /// that cannot be in a folder name).
    pub fn display_name(&self) -> String {
        let n = self.name.clone().unwrap_or_else(|| {
            let u = self.url.as_str();
            let rest = u.split_once("://").map_or(u, |(_, r)| r);
            let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
            authority.rsplit('@').next().unwrap_or(authority).to_string()
        });
        n.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.:".contains(c) { c } else { '_' }).collect()
    }
}

/// A Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`, not reserved (`__…`).
fn valid_label_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
        && !n.starts_with("__")
}

impl RemoteWriteConfig {
    pub fn enabled(&self) -> bool {
        !self.receivers.is_empty()
    }

    pub fn validate(&self, p: &mut Problems) {
        if self.interval.get() < Duration::from_secs(1) {
            p.push("remote_write.interval", format!("must be at least 1 second, got '{}'", self.interval));
        }
        if !(1..=100_000).contains(&self.max_samples_per_send) {
            p.push(
                "remote_write.max_samples_per_send",
                format!("must be between 1 and 100000, got '{}'", self.max_samples_per_send),
            );
        }
        if self.max_buffer_bytes < 64 * 1024 {
            p.push(
                "remote_write.max_buffer_bytes",
                format!("must be at least 65536 (64 KiB), got '{}'", self.max_buffer_bytes),
            );
        }
        if self.max_backoff < self.min_backoff || self.min_backoff.get().is_zero() {
            p.push(
                "remote_write.max_backoff",
                format!(
                    "min_backoff must be above 0 and at most max_backoff ({} > {})",
                    self.min_backoff, self.max_backoff
                ),
            );
        }
        let check_labels = |p: &mut Problems, key: &str, labels: &BTreeMap<String, EnvString>| {
            for name in labels.keys() {
                if !valid_label_name(name) {
                    p.push(
                        format!("{key}.labels.{name}"),
                        "is not a label name Prometheus accepts ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)",
                    );
                }
            }
        };
        check_labels(p, "remote_write", &self.labels);
        let mut names = BTreeMap::new();
        for (i, r) in self.receivers.iter().enumerate() {
            let key = format!("remote_write.receivers[{i}]");
            qmoi_core::http::validate_endpoint(
                p,
                &key,
                ("url", r.url.as_str()),
                r.bearer_token.as_ref(),
                r.basic_auth.as_ref(),
                r.ca_file.as_deref(),
            );
            if r.timeout.get() < Duration::from_millis(100) {
                p.push(format!("{key}.timeout"), format!("must be at least 100ms, got '{}'", r.timeout));
            }
            check_labels(p, &key, &r.labels);
            if let Some(j) = names.insert(r.display_name(), i) {
                p.push(
                    format!("{key}.name"),
                    format!(
                        "'{}' is also the name of receivers[{j}]: give each receiver its own name",
                        r.display_name()
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver(url: &str) -> ReceiverConfig {
        ReceiverConfig {
            url: url.into(),
            name: None,
            bearer_token: None,
            basic_auth: None,
            ca_file: None,
            timeout: default_timeout(),
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn names_come_from_the_url() {
        assert_eq!(receiver("http://10.0.0.1:9090/api/v1/write").display_name(), "10.0.0.1:9090");
        assert_eq!(receiver("https://u:p@vm.example:8428/api/v1/write").display_name(), "vm.example:8428");
        assert_eq!(receiver("http://[::1]:9090/x").display_name(), "_::1_:9090");
    }

    #[test]
    fn problems_name_their_key() {
        let mut c = RemoteWriteConfig {
            receivers: vec![receiver("ftp://x"), receiver("http://a:1/w"), receiver("http://a:1/other")],
            interval: ConfigDuration(Duration::from_millis(10)),
            ..RemoteWriteConfig::default()
        };
        c.labels.insert("__name__".into(), "x".into());
        let mut p = Problems::new();
        c.validate(&mut p);
        let text: Vec<String> = p.iter().map(|x| format!("{}: {}", x.key, x.message)).collect();
        let all = text.join("\n");
        assert!(all.contains("remote_write.receivers[0].url: must be an http"), "{all}");
        assert!(all.contains("remote_write.receivers[2].name: 'a:1' is also"), "{all}");
        assert!(all.contains("remote_write.labels.__name__"), "{all}");
        assert!(all.contains("remote_write.interval"), "{all}");
    }
}
