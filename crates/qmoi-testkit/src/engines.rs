//! The real time-series engines a fleet runs on, started for a test: Prometheus (Debian
//! `prometheus` 2.42) and VictoriaMetrics (Debian `victoria-metrics`), each on a loopback
//! port (or an address given) with its data in a folder of the test, stopped on drop.

use crate::{Kill, http, wait_for};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Percent-encode a query parameter value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A Prometheus-compatible query API at `addr` (`host:port`).
pub trait QueryApi {
    fn addr(&self) -> String;

    /// `GET /api/v1/query?query=…[&time=…]`: the `data.result` array (empty on errors,
    /// which are printed).
    fn query_at(&self, promql: &str, time: Option<f64>) -> Vec<serde_json::Value> {
        let mut path = format!("/api/v1/query?query={}", urlencode(promql));
        if let Some(t) = time {
            path.push_str(&format!("&time={t:.3}"));
        }
        let r = http("GET", &self.addr(), &path, &[], None);
        let j: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
        if j["status"] != "success" {
            eprintln!("query {promql}: HTTP {}: {}", r.status, r.body);
        }
        j["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        self.query_at(promql, None)
    }

    /// The value of a one-series instant query, if it has one.
    fn value(&self, promql: &str) -> Option<f64> {
        self.query(promql).first()?["value"][1].as_str()?.parse().ok()
    }
}

/// Is this Debian binary installed? When not: fail under `QMOI_REQUIRE_EXTERNAL`, else skip.
pub fn installed(bin: &str, package: &str) -> bool {
    crate::require_tool(&[bin], &format!("apt-get install {package}; scripts/test.sh installs it"))
}

pub struct Prometheus {
    pub listen: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    extra: Vec<String>,
    child: Option<Kill>,
}

impl Prometheus {
    /// Start `prometheus` on `listen` (`127.0.0.1:0` picks a free port) with `config_yaml`
    /// and the remote-write receiver on; data in `dir/prometheus`.
    pub fn start(dir: &Path, listen: &str, config_yaml: &str, extra: &[&str]) -> Self {
        let listen = match listen.strip_suffix(":0") {
            Some(h) => format!("{h}:{}", crate::free_port()),
            None => listen.to_string(),
        };
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, config_yaml).unwrap_or_else(|e| panic!("write prometheus.yml: {e}"));
        let mut p = Self {
            listen,
            dir: dir.join("prometheus"),
            config,
            extra: extra.iter().map(|s| (*s).to_string()).collect(),
            child: None,
        };
        p.restart();
        p
    }

    /// The command line of this Prometheus (the same on every restart).
    fn command(&self) -> Command {
        let mut c = Command::new("prometheus");
        c.arg(format!("--config.file={}", self.config.display()))
            .arg(format!("--storage.tsdb.path={}", self.dir.display()))
            .arg(format!("--web.listen-address={}", self.listen))
            .arg("--web.enable-remote-write-receiver")
            .args(&self.extra);
        c
    }

    /// Start it (again, on the same address and data) and wait until it is ready.
    pub fn restart(&mut self) {
        self.stop();
        let log = std::fs::File::create(self.dir.with_extension("log")).unwrap_or_else(|e| panic!("log: {e}"));
        let child = self
            .command()
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start prometheus: {e}"));
        self.child = Some(Kill(child));
        let addr = self.listen.clone();
        wait_for(Duration::from_secs(30), "Prometheus ready", || {
            std::net::TcpStream::connect(&addr).ok()?;
            (http("GET", &addr, "/-/ready", &[], None).status == 200).then_some(())
        });
    }

    /// Stop it (SIGKILL: a receiver that vanishes).
    pub fn stop(&mut self) {
        self.child = None;
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.with_extension("log")).unwrap_or_default()
    }

    pub fn write_url(&self) -> String {
        format!("http://{}/api/v1/write", self.listen)
    }
}

impl QueryApi for Prometheus {
    fn addr(&self) -> String {
        self.listen.clone()
    }
}

pub struct VictoriaMetrics {
    pub listen: String,
    _child: Kill,
}

impl VictoriaMetrics {
    /// Start single-node `victoria-metrics` on `listen` (`127.0.0.1:0`: a free port), data
    /// in `dir/vm`. Queries see samples at once (no latency offset), as a test needs.
    pub fn start(dir: &Path, listen: &str) -> Self {
        let listen = match listen.strip_suffix(":0") {
            Some(h) => format!("{h}:{}", crate::free_port()),
            None => listen.to_string(),
        };
        let log = std::fs::File::create(dir.join("vm.log")).unwrap_or_else(|e| panic!("log: {e}"));
        let child = Command::new("victoria-metrics")
            .arg(format!("-httpListenAddr={listen}"))
            .arg(format!("-storageDataPath={}", dir.join("vm").display()))
            .arg("-search.latencyOffset=0s")
            .arg("-search.disableCache")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start victoria-metrics: {e}"));
        let vm = Self { listen, _child: Kill(child) };
        let addr = vm.listen.clone();
        wait_for(Duration::from_secs(30), "VictoriaMetrics ready", || {
            std::net::TcpStream::connect(&addr).ok()?;
            (http("GET", &addr, "/health", &[], None).status == 200).then_some(())
        });
        vm
    }

    pub fn write_url(&self) -> String {
        format!("http://{}/api/v1/write", self.listen)
    }
}

impl QueryApi for VictoriaMetrics {
    fn addr(&self) -> String {
        self.listen.clone()
    }
}
