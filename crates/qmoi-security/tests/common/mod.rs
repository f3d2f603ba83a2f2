//! A temp folder with a security config, and helpers to run `qmoi-security` in it and
//! read its report with this test's own expectations of the JSON.
#![allow(dead_code)]

use qmoi_testkit::{bin, find_check, read_json, wait_for};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub struct Site {
    pub dir: tempfile::TempDir,
    daemon: Option<Child>,
}

impl Site {
    /// `config` is the TOML body; `data_dir`, report and log folders are inside the site.
    pub fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let site = Self { dir, daemon: None };
        site.write("security.toml", &format!("data_dir = \"data\"\n{config}"));
        site
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
        }
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin("qmoi-security"));
        c.current_dir(self.dir.path())
            .args(["--config", "security.toml", "--report-dir", "logs", "--log-dir", "logs"])
            .env_remove("QMOI_SECURITY_KEY");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap_or_else(|e| panic!("run qmoi-security: {e}"))
    }

    /// `--once`, then the report.
    pub fn once(&self) -> Value {
        let out = self.run(&["--once"]);
        assert!(out.status.success(), "--once failed: {}", String::from_utf8_lossy(&out.stderr));
        self.report().unwrap_or_else(|| panic!("no report after --once"))
    }

    pub fn report(&self) -> Option<Value> {
        read_json(&self.path("logs/security_latest.json"))
    }

    /// Start the daemon (killed when the site is dropped).
    pub fn start(&mut self, extra: &[&str]) {
        let child = self
            .cmd()
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start qmoi-security: {e}"));
        self.daemon = Some(child);
    }

    /// Wait until the latest report satisfies `f`.
    pub fn wait_report(&self, timeout: Duration, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        wait_for(timeout, what, || self.report().filter(|r| f(r)))
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn status_of(report: &Value, name: &str) -> Option<String> {
    find_check(report, name).and_then(|c| c["status"].as_str()).map(str::to_string)
}

pub fn message_of(report: &Value, name: &str) -> String {
    find_check(report, name).and_then(|c| c["message"].as_str()).unwrap_or_default().to_string()
}

pub fn names(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .map_or_else(Vec::new, |a| a.iter().filter_map(|c| c["name"].as_str().map(str::to_string)).collect())
}

/// Tables turning off every part but `parts`, so a test sees only what it is about (the
/// test writes the tables of the parts it keeps).
pub fn only(parts: &[&str]) -> String {
    let all = ["integrity", "network", "auth_log", "accounts", "processes", "kernel_modules"];
    all.iter().filter(|p| !parts.contains(p)).map(|p| format!("[{p}]\nenabled = false\n")).collect()
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

pub fn file_name(p: &Path) -> String {
    p.display().to_string()
}
