//! # qmoi-testkit
//!
//! Helpers for integration tests that run the real QMOI binaries: finding the built
//! executables, polling for a condition with a deadline (never a bare sleep), checking
//! whether a process is alive, and reading reports with the test's own expectations.
//!
//! The binary `qmoi-fake-monitor` is a monitor that crashes, hangs, leaks or reports a
//! config error on demand (see `src/bin/fake_monitor.rs`).

pub mod engines;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of a workspace binary. Integration tests run from `target/<profile>/deps/`, and
/// `cargo test --workspace` builds every binary into `target/<profile>/` before any test
/// runs.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default();
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is not built; run the tests with `cargo test --workspace` (or `cargo build --workspace` first)",
        p.display()
    );
    p
}

/// Are these tools on the PATH? When one is missing the test says so and returns false
/// (skip), unless `QMOI_REQUIRE_EXTERNAL` is set (as `scripts/test.sh` and CI set it):
/// then it fails, naming the tools and `install`, so a missing install step cannot hide
/// behind a skipped test.
pub fn require_tool(tools: &[&str], install: &str) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            !Command::new("sh").args(["-c", &format!("command -v {t}")]).output().is_ok_and(|o| o.status.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    let what = format!("{} required ({install})", missing.join(", "));
    assert!(!require_external(), "{what}; QMOI_REQUIRE_EXTERNAL is set, so this is a failure");
    eprintln!("skipped: {what}");
    false
}

/// Is `QMOI_REQUIRE_EXTERNAL` set (to anything but empty or 0)? Then a test whose outside
/// tool or server is missing fails instead of skipping.
pub fn require_external() -> bool {
    std::env::var("QMOI_REQUIRE_EXTERNAL").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The test venv's Python (`QMOI_TEST_PYTHON`, else `python3`) if it can import every
/// module of `modules`; otherwise skip (or fail under `QMOI_REQUIRE_EXTERNAL`), saying
/// that scripts/test.sh installs them.
pub fn python_with(modules: &[&str]) -> Option<PathBuf> {
    let py = PathBuf::from(std::env::var("QMOI_TEST_PYTHON").unwrap_or_else(|_| "python3".into()));
    let import = format!("import {}", modules.join(", "));
    if Command::new(&py).args(["-c", &import]).output().is_ok_and(|o| o.status.success()) {
        return Some(py);
    }
    let what = format!("Python modules {} are required (scripts/test.sh puts them in its venv)", modules.join(", "));
    assert!(!require_external(), "{what}; QMOI_REQUIRE_EXTERNAL is set, so this is a failure");
    eprintln!("skipped: {what}");
    None
}

/// A free TCP port on 127.0.0.1 (free when asked; a server started right after gets it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// A child process killed (and reaped) when the test ends, however it ends.
#[derive(Debug)]
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The check named `name` of a report, if it has one.
pub fn find_check<'a>(report: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    report["checks"].as_array()?.iter().find(|c| c["name"] == name)
}

/// The check named `name` of a report, or a panic listing the checks it has.
pub fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    find_check(report, name).unwrap_or_else(|| {
        let names: Vec<&str> =
            report["checks"].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str()).collect();
        panic!("no check {name} in the report; it has: {}", names.join(", "))
    })
}

/// Poll `f` every 20 ms until it returns `Some`, or panic with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Is `pid` alive? A zombie (exited, not yet reaped by whoever inherited it) is not.
pub fn alive(pid: u32) -> bool {
    qmoi_core::procfs::alive(Path::new("/proc"), pid).unwrap_or(false)
}

/// An argon2id hash of `password` from `qmoi-supervisor hash-password` (for
/// `[[dashboard.auth.users]]`).
pub fn hash_password(password: &str) -> String {
    use std::io::Write;
    let mut c = Command::new(bin("qmoi-supervisor"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run hash-password: {e}"));
    let _ = c.stdin.take().map(|mut i| i.write_all(format!("{password}\n").as_bytes()));
    let out = c.wait_with_output().unwrap_or_else(|e| panic!("hash-password: {e}"));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An `Authorization: Basic …` header value for `user` and `password`.
pub fn basic_auth(user: &str, password: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let text = format!("{user}:{password}");
    let mut out = String::from("Basic ");
    for chunk in text.as_bytes().chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &x)| acc | (u32::from(x) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A `[monitoring_components.<id>]` table that runs `qmoi-fake-monitor` as `id` every
/// second with `args` (and `--component id`), plus `extra` lines.
pub fn fake_component(id: &str, args: &[&str], extra: &str) -> String {
    let args: Vec<String> = args.iter().chain(&["--component", id]).map(|a| format!("\"{a}\"")).collect();
    format!(
        "[monitoring_components.{id}]\ninterval = 1\ncommand = \"{}\"\nargs = [{}]\n{extra}\n",
        bin("qmoi-fake-monitor").display(),
        args.join(", ")
    )
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`) in KiB; 0 when unreadable.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Send a signal to a process we started.
pub fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    if let Ok(p) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), sig);
    }
}

/// Read and parse a JSON file; `None` while it is missing or (never expected) torn.
pub fn read_json(path: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// A temporary installation folder: `config/`, `logs/`, `run/` under one temp dir, and
/// the supervisor process started in it (killed on drop, so a failing test leaves nothing).
pub struct Stack {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    /// Environment for every supervisor command (for `${ENV}` in configs).
    pub env: Vec<(String, String)>,
}

impl Stack {
    /// A temp dir with `config/master_monitor.toml` holding `master_toml`.
    pub fn new(master_toml: &str) -> Self {
        let dir = tempfile::Builder::new().prefix("qmoi-test").tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let cfg = dir.path().join("config");
        std::fs::create_dir_all(&cfg).unwrap_or_else(|e| panic!("mkdir: {e}"));
        std::fs::write(cfg.join("master_monitor.toml"), master_toml).unwrap_or_else(|e| panic!("write config: {e}"));
        Self { dir, child: None, env: Vec::new() }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Write a file in the stack's folder, creating its folders.
    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir for {rel}: {e}"));
        }
        std::fs::write(p, text).unwrap_or_else(|e| panic!("write {rel}: {e}"));
    }

    /// A command for the supervisor, run in the stack's folder.
    pub fn supervisor(&self) -> Command {
        let mut c = Command::new(bin("qmoi-supervisor"));
        c.current_dir(self.dir.path());
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// `qmoi-supervisor start` in the background, stderr to `supervisor.err`.
    pub fn start(&mut self) -> u32 {
        let err = std::fs::File::create(self.path("supervisor.err")).unwrap_or_else(|e| panic!("create: {e}"));
        let child = self
            .supervisor()
            .arg("start")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the supervisor: {e}"));
        let pid = child.id();
        self.child = Some(child);
        pid
    }

    /// Run a verb to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.supervisor().args(args).output().unwrap_or_else(|e| panic!("cannot run the supervisor: {e}"))
    }

    /// `status --json` parsed.
    pub fn status(&self) -> serde_json::Value {
        let out = self.run(&["status", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "status --json is not JSON ({e}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// The status entry of one component.
    pub fn component(&self, id: &str) -> serde_json::Value {
        let s = self.status();
        s["components"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["id"] == id).cloned())
            .unwrap_or_else(|| panic!("no component {id} in status: {s}"))
    }

    /// The pid of component `id` now (none while it is not running).
    pub fn pid_of(&self, id: &str) -> Option<u32> {
        self.component(id)["pid"].as_u64().and_then(|p| u32::try_from(p).ok())
    }

    /// The pid of component `id` once it is running (waits up to 15 s).
    pub fn running_pid(&self, id: &str) -> u32 {
        wait_for(Duration::from_secs(15), &format!("{id} to be running"), || {
            let c = self.component(id);
            (c["state"] == "running").then(|| c["pid"].as_u64().and_then(|p| u32::try_from(p).ok())).flatten()
        })
    }

    /// The dashboard's `host:port`, once the supervisor has written `run/dashboard.addr`.
    pub fn dashboard_addr(&self) -> String {
        wait_for(Duration::from_secs(10), "run/dashboard.addr", || {
            let t = std::fs::read_to_string(self.path("run/dashboard.addr")).ok()?;
            Some(t.trim().trim_start_matches("http://").trim_end_matches('/').to_string())
        })
    }

    pub fn supervisor_stderr(&self) -> String {
        std::fs::read_to_string(self.path("supervisor.err")).unwrap_or_default()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A response from [`http`].
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A minimal HTTP/1.1 client for tests against our own loopback servers: one request per
/// connection (`Connection: close`), a `Content-Length` or chunked body read to the end.
pub fn http(method: &str, addr: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> HttpResponse {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    s.write_all(req.as_bytes()).unwrap_or_else(|e| panic!("send: {e}"));
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap_or_else(|e| panic!("read: {e}"));
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { dechunk(rest) } else { rest.to_string() };
    HttpResponse { status, headers, body }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Make `cert.pem` and `key.pem` in `dir` with the `openssl` command: a self-signed
/// P-256 leaf certificate (not a CA) for `localhost` and 127.0.0.1, valid for `days`.
pub fn self_signed_cert(dir: &Path, days: u32) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-keyout", "key.pem", "-out", "cert.pem", "-days", &days.to_string(), "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "keyUsage=digitalSignature", "-addext", "extendedKeyUsage=serverAuth"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl: {e}"));
    assert!(out.status.success(), "openssl req: {}", String::from_utf8_lossy(&out.stderr));
}
