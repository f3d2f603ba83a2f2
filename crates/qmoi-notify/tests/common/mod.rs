//! Shared by the notifier's integration tests: a recording HTTP receiver (axum, on
//! loopback), report files written the way monitors write them, and the real binary.

#![allow(dead_code)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use qmoi_testkit::bin;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Req {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
    pub at: Instant,
}

impl Req {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{} is not JSON ({e}): {}", self.path, self.body))
    }
}

#[derive(Default)]
struct Inner {
    reqs: Vec<Req>,
    counts: HashMap<String, usize>,
}

/// An HTTP receiver that records every request. Behaviour by path:
/// `/flaky*` fails (500) twice then succeeds; `/dead*` always fails (500);
/// `/slow*` answers after 3 s; `/slowish*` after 300 ms; `/twilio/…` acts like Twilio's
/// Messages API (201, or 400 with Twilio's error body for the number +1999…);
/// anything else answers 200.
#[derive(Clone)]
pub struct Receiver {
    pub addr: std::net::SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let path = uri.path().to_string();
    let n = {
        let mut g = inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = path.split('/').nth(1).unwrap_or_default().to_string();
        let c = g.counts.entry(key).or_default();
        *c += 1;
        *c
    };
    let body = String::from_utf8_lossy(&body).into_owned();
    if path.starts_with("/slowish") {
        tokio::time::sleep(Duration::from_millis(300)).await;
    } else if path.starts_with("/slow") {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let headers: HashMap<String, String> =
        headers.iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string())).collect();
    let (status, answer) = if path.starts_with("/flaky") && n <= 2 {
        (StatusCode::INTERNAL_SERVER_ERROR, "try again".to_string())
    } else if path.starts_with("/dead") {
        (StatusCode::INTERNAL_SERVER_ERROR, "boom".to_string())
    } else if path.starts_with("/twilio/") {
        if body.contains("To=%2B1999") {
            (
                StatusCode::BAD_REQUEST,
                r#"{"code": 21211, "message": "The 'To' number +1999000 is not a valid phone number.", "status": 400}"#
                    .into(),
            )
        } else {
            (StatusCode::CREATED, r#"{"sid": "SM0123456789", "status": "queued"}"#.into())
        }
    } else {
        (StatusCode::OK, "ok".to_string())
    };
    let mut g = inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    g.reqs.push(Req { path, headers, body, at: Instant::now() });
    (status, answer)
}

impl Receiver {
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        listener.set_nonblocking(true).unwrap_or_else(|e| panic!("{e}"));
        let inner = Arc::new(Mutex::new(Inner::default()));
        let state = inner.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("{e}"));
            rt.block_on(async move {
                let app = Router::new().fallback(handle).with_state(state);
                let l = tokio::net::TcpListener::from_std(listener).unwrap_or_else(|e| panic!("{e}"));
                let _ = axum::serve(l, app).await;
            });
        });
        Self { addr, inner }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests whose path starts with `prefix`, in arrival order.
    pub fn requests(&self, prefix: &str) -> Vec<Req> {
        let g = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        g.reqs.iter().filter(|r| r.path.starts_with(prefix)).cloned().collect()
    }

    pub fn wait(&self, prefix: &str, n: usize, timeout: Duration) -> Vec<Req> {
        qmoi_testkit::wait_for(timeout, &format!("{n} request(s) to {prefix}"), || {
            let r = self.requests(prefix);
            (r.len() >= n).then_some(r)
        })
    }
}

/// A report file as a monitor writes it (temp file + rename: never torn).
pub fn write_report(dir: &Path, component: &str, alerts: &[(&str, &str, &str)]) {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let alerts: Vec<serde_json::Value> = alerts
        .iter()
        .map(|(subject, level, title)| {
            serde_json::json!({
                "fingerprint": format!("{component}/{subject}"), "level": level, "title": title,
                "detail": format!("{title} (detail)"), "since": now,
            })
        })
        .collect();
    let status = if alerts.is_empty() { "ok" } else { "warning" };
    let report = serde_json::json!({
        "schema_version": 1, "component": component, "host": "test-host", "generated_at": now,
        "interval_s": 60, "duration_ms": 1, "status": status, "summary": "test", "checks": [],
        "metrics": {}, "alerts": alerts, "details": {},
    });
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
    let tmp = dir.join(format!(".{component}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec(&report).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(&tmp, dir.join(format!("{component}_latest.json"))).unwrap_or_else(|e| panic!("{e}"));
}

/// A folder with a notifier config; runs the real binary there.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    /// Environment of every command (secrets referenced as ${VAR} in the config).
    pub vars: Vec<(String, String)>,
}

impl Env {
    pub fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("notification.toml"), config).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(dir.path().join("logs")).unwrap_or_else(|e| panic!("{e}"));
        Self { dir, child: None, vars: Vec::new() }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn logs(&self) -> PathBuf {
        self.path("logs")
    }

    pub fn command(&self) -> Command {
        self.command_with("notification.toml")
    }

    pub fn command_with(&self, config: &str) -> Command {
        let mut c = Command::new(bin("qmoi-notify"));
        c.current_dir(self.dir.path()).args(["--config", config, "--report-dir", "logs", "--log-dir", "logs"]);
        c.envs(self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        c
    }

    pub fn start(&mut self) -> u32 {
        let child = self
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(self.path("stderr.txt")).unwrap_or_else(|e| panic!("{e}"))))
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let pid = child.id();
        self.child = Some(child);
        pid
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            qmoi_testkit::signal(c.id(), nix::sys::signal::Signal::SIGTERM);
            let _ = c.wait();
        }
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn status_json(&self) -> serde_json::Value {
        let out = self.run(&["--status", "--format", "json"]);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("--status json ({e}): {}", String::from_utf8_lossy(&out.stderr)))
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.path("stderr.txt")).unwrap_or_default()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.kill9();
    }
}
