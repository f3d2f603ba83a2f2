//! The Fleet page's data, `GET /api/fleet`: every host of the fleet with its verdict,
//! its components that are not ok, its firing alerts and when it was last seen, all
//! computed by PromQL in the fleet's Prometheus-compatible engine (`[fleet] query_url`).
//! QMOI keeps no fleet state of its own: the engine holds what the hosts pushed or what
//! it scraped from them, and this module only asks it.

use qmoi_core::config::{ConfigDuration, EnvString, Problems, Secret};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `[fleet]` in `master_monitor.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// Base URL of the Prometheus query API (`http://prometheus:9090`, VictoriaMetrics'
    /// `http://vm:8428`, Thanos query, Mimir's `…/prometheus`). None: no Fleet page.
    pub query_url: Option<EnvString>,
    pub bearer_token: Option<Secret>,
    pub basic_auth: Option<qmoi_core::http::BasicAuth>,
    /// PEM file of the CA that signed the engine's certificate (beside the system's).
    pub ca_file: Option<PathBuf>,
    pub timeout: ConfigDuration,
    /// A host whose last report is older than this is stale.
    pub stale_after: ConfigDuration,
    /// Hosts silent for longer than this are no longer listed.
    pub lookback: ConfigDuration,
    /// PromQL label matchers that pick the fleet's series (`job="qmoi"`); empty: all.
    pub selector: String,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            query_url: None,
            bearer_token: None,
            basic_auth: None,
            ca_file: None,
            timeout: ConfigDuration::from_secs(10),
            stale_after: ConfigDuration::from_secs(120),
            lookback: ConfigDuration::from_secs(3600),
            selector: String::new(),
        }
    }
}

impl FleetConfig {
    pub fn validate(&self, p: &mut Problems) {
        if let Some(u) = &self.query_url {
            qmoi_core::http::validate_endpoint(
                p,
                "fleet",
                ("query_url", u.as_str()),
                self.bearer_token.as_ref(),
                self.basic_auth.as_ref(),
                self.ca_file.as_deref(),
            );
        }
        if self.stale_after.get() < Duration::from_secs(1) {
            p.push("fleet.stale_after", format!("must be at least 1 second, got '{}'", self.stale_after));
        }
        if self.lookback <= self.stale_after {
            p.push(
                "fleet.lookback",
                format!("must be longer than stale_after ({}), got '{}'", self.stale_after, self.lookback),
            );
        }
        if self.selector.contains(['{', '}']) {
            p.push("fleet.selector", "label matchers without braces, e.g. 'job=\"qmoi\",dc=\"eu\"'");
        }
    }
}

/// One host as the Fleet page shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Host {
    pub host: String,
    /// `healthy`, `degraded`, `critical`; `null` when the engine has no current verdict.
    pub verdict: Option<&'static str>,
    /// Unix time of the host's newest supervisor report the engine holds.
    pub last_seen: Option<f64>,
    pub age_s: Option<f64>,
    pub stale: bool,
    /// Components whose report is not ok (`warning`, `critical`, `unknown`) or which are
    /// not running (`down`), worst first.
    pub components_not_ok: Vec<NotOk>,
    pub critical_alerts: u64,
    pub warning_alerts: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NotOk {
    pub component: String,
    pub status: &'static str,
}

/// How long an answer is reused: a page left open in many browsers asks the engine once.
const CACHE_FOR: Duration = Duration::from_secs(5);

pub struct Fleet {
    base: reqwest::Url,
    cfg: FleetConfig,
    client: reqwest::Client,
    cache: Mutex<Option<(Instant, serde_json::Value)>>,
}

use qmoi_core::http::describe;

impl Fleet {
    /// `None` without `query_url`.
    pub fn new(cfg: &FleetConfig) -> Result<Option<Self>, String> {
        let Some(url) = &cfg.query_url else { return Ok(None) };
        let mut base = reqwest::Url::parse(url.as_str()).map_err(|e| format!("fleet.query_url: {e}"))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let client = qmoi_core::http::client("qmoi-supervisor", cfg.timeout.get(), cfg.ca_file.as_deref())
            .map_err(|e| format!("fleet: {e}"))?;
        Ok(Some(Self { base, cfg: cfg.clone(), client, cache: Mutex::new(None) }))
    }

    /// The engine's address without credentials, for messages.
    fn engine(&self) -> String {
        let mut u = self.base.clone();
        let _ = u.set_password(None);
        let _ = u.set_username("");
        u.to_string()
    }

    /// One instant query: each series' labels and value.
    async fn query(&self, promql: &str) -> Result<Vec<(BTreeMap<String, String>, f64)>, String> {
        let mut url = self.base.join("api/v1/query").map_err(|e| e.to_string())?;
        url.query_pairs_mut().append_pair("query", promql);
        let req = qmoi_core::http::authorize(
            self.client.get(url),
            self.cfg.bearer_token.as_ref(),
            self.cfg.basic_auth.as_ref(),
        );
        let resp = req.send().await.map_err(|e| describe(&e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| describe(&e))?;
        #[derive(Deserialize)]
        struct Answer {
            status: String,
            #[serde(default)]
            error: Option<String>,
            #[serde(default)]
            data: Option<Data>,
        }
        #[derive(Deserialize)]
        struct Data {
            #[serde(default)]
            result: Vec<Series>,
        }
        #[derive(Deserialize)]
        struct Series {
            metric: BTreeMap<String, String>,
            value: (f64, String),
        }
        let a: Answer = serde_json::from_slice(&body).map_err(|e| {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            format!("HTTP {status}, not a Prometheus query answer ({e}): {text}")
        })?;
        if a.status != "success" {
            return Err(format!("HTTP {status}: {}", a.error.unwrap_or(a.status)));
        }
        Ok(a.data
            .map(|d| d.result)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| Some((s.metric, s.value.1.parse().ok()?)))
            .collect())
    }

    /// The fleet now, as `GET /api/fleet` answers (cached for a few seconds).
    pub async fn overview(&self) -> Result<serde_json::Value, String> {
        if let Ok(c) = self.cache.lock()
            && let Some((at, v)) = c.as_ref()
            && at.elapsed() < CACHE_FOR
        {
            return Ok(v.clone());
        }
        let v = self.compute().await.map_err(|e| format!("the fleet's query engine at {}: {e}", self.engine()))?;
        if let Ok(mut c) = self.cache.lock() {
            *c = Some((Instant::now(), v.clone()));
        }
        Ok(v)
    }

    async fn compute(&self) -> Result<serde_json::Value, String> {
        let sel = &self.cfg.selector;
        let m = |name: &str| if sel.is_empty() { name.to_string() } else { format!("{name}{{{sel}}}") };
        let lookback = format!("{}s", self.cfg.lookback.get().as_secs());
        // The same series may arrive twice (scraped and pushed): `max` makes one of them.
        let queries = [
            format!("max by (host) (max_over_time({}[{lookback}]))", m("qmoi_last_report_timestamp_seconds")),
            format!("max by (host) ({})", m("qmoi_verdict")),
            format!("max by (host, component) ({}) > 0", m("qmoi_report_status")),
            format!("max by (host, component) ({}) == 0", m("qmoi_component_up")),
            format!("sum by (host, level) (max by (host, component, level) ({}))", m("qmoi_component_alerts")),
        ];
        let (seen, verdicts, not_ok, down, alerts) = tokio::try_join!(
            self.query(&queries[0]),
            self.query(&queries[1]),
            self.query(&queries[2]),
            self.query(&queries[3]),
            self.query(&queries[4]),
        )?;
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        let hosts = assemble(now, self.cfg.stale_after.as_secs_f64(), seen, verdicts, not_ok, down, alerts);
        let count = |f: &dyn Fn(&Host) -> bool| hosts.iter().filter(|h| f(h)).count();
        Ok(serde_json::json!({
            "engine": self.engine(),
            "generated_at": now,
            "stale_after_s": self.cfg.stale_after.as_secs_f64(),
            "summary": {
                "hosts": hosts.len(),
                "healthy": count(&|h| !h.stale && h.verdict == Some("healthy")),
                "degraded": count(&|h| !h.stale && h.verdict == Some("degraded")),
                "critical": count(&|h| !h.stale && h.verdict == Some("critical")),
                "stale": count(&|h| h.stale),
            },
            "hosts": hosts,
        }))
    }
}

type Rows = Vec<(BTreeMap<String, String>, f64)>;

/// Put the five answers together per host; worst first (stale, critical, degraded,
/// healthy), then by name.
fn assemble(
    now: f64,
    stale_after: f64,
    seen: Rows,
    verdicts: Rows,
    not_ok: Rows,
    down: Rows,
    alerts: Rows,
) -> Vec<Host> {
    let label = |l: &BTreeMap<String, String>, k: &str| l.get(k).cloned().unwrap_or_default();
    let mut hosts: BTreeMap<String, Host> = BTreeMap::new();
    fn host(hosts: &mut BTreeMap<String, Host>, name: String) -> &mut Host {
        hosts.entry(name.clone()).or_insert_with(|| Host {
            host: name,
            verdict: None,
            last_seen: None,
            age_s: None,
            stale: true,
            components_not_ok: Vec::new(),
            critical_alerts: 0,
            warning_alerts: 0,
        })
    }
    for (l, v) in seen {
        let h = host(&mut hosts, label(&l, "host"));
        h.last_seen = Some(v);
        h.age_s = Some((now - v).max(0.0));
        h.stale = now - v > stale_after;
    }
    for (l, v) in verdicts {
        host(&mut hosts, label(&l, "host")).verdict = match v as i64 {
            0 => Some("healthy"),
            1 => Some("degraded"),
            _ => Some("critical"),
        };
    }
    for (l, v) in not_ok {
        let status = match v as i64 {
            1 => "warning",
            2 => "critical",
            _ => "unknown",
        };
        host(&mut hosts, label(&l, "host")).components_not_ok.push(NotOk { component: label(&l, "component"), status });
    }
    for (l, _) in down {
        let (h, c) = (label(&l, "host"), label(&l, "component"));
        let h = host(&mut hosts, h);
        match h.components_not_ok.iter_mut().find(|x| x.component == c) {
            Some(x) => x.status = "down",
            None => h.components_not_ok.push(NotOk { component: c, status: "down" }),
        }
    }
    for (l, v) in alerts {
        let h = host(&mut hosts, label(&l, "host"));
        match l.get("level").map(String::as_str) {
            Some("critical") => h.critical_alerts += v.max(0.0) as u64,
            Some("warning") => h.warning_alerts += v.max(0.0) as u64,
            _ => {}
        }
    }
    let rank = |s: &str| match s {
        "down" => 0,
        "critical" => 1,
        "unknown" => 2,
        _ => 3,
    };
    let mut out: Vec<Host> = hosts.into_values().filter(|h| !h.host.is_empty()).collect();
    for h in &mut out {
        h.components_not_ok.sort_by(|a, b| rank(a.status).cmp(&rank(b.status)).then(a.component.cmp(&b.component)));
    }
    let worst = |h: &Host| match (h.stale, h.verdict) {
        (true, _) => 0,
        (false, Some("critical")) => 1,
        (false, Some("degraded")) => 2,
        (false, None) => 3,
        _ => 4,
    };
    out.sort_by(|a, b| worst(a).cmp(&worst(b)).then(a.host.cmp(&b.host)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, &str)], v: f64) -> (BTreeMap<String, String>, f64) {
        (pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect(), v)
    }

    #[test]
    fn hosts_are_assembled_worst_first() {
        let now = 10_000.0;
        let hosts = assemble(
            now,
            120.0,
            vec![row(&[("host", "a")], 9_990.0), row(&[("host", "b")], 9_000.0), row(&[("host", "c")], 9_995.0)],
            vec![row(&[("host", "a")], 0.0), row(&[("host", "c")], 2.0)],
            vec![row(&[("host", "c"), ("component", "backup")], 1.0), row(&[("host", "c"), ("component", "x")], 2.0)],
            vec![row(&[("host", "c"), ("component", "backup")], 0.0)],
            vec![row(&[("host", "c"), ("level", "critical")], 2.0), row(&[("host", "c"), ("level", "warning")], 1.0)],
        );
        let names: Vec<&str> = hosts.iter().map(|h| h.host.as_str()).collect();
        assert_eq!(names, vec!["b", "c", "a"], "stale, critical, healthy");
        assert!(hosts[0].stale && hosts[0].verdict.is_none());
        assert_eq!(hosts[0].age_s, Some(1000.0));
        let c = &hosts[1];
        assert_eq!(
            c.components_not_ok,
            vec![
                NotOk { component: "backup".into(), status: "down" },
                NotOk { component: "x".into(), status: "critical" }
            ]
        );
        assert_eq!((c.critical_alerts, c.warning_alerts), (2, 1));
        assert!(!hosts[2].stale && hosts[2].verdict == Some("healthy"));
    }
}
