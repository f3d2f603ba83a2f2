//! Shared by the cloud monitor's integration tests: run the real `qmoi-cloud` binary on a
//! config and read what it wrote.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A folder with a config, where `qmoi-cloud` writes its report, logs and data.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub vars: Vec<(String, String)>,
    pub removed: Vec<String>,
}

impl Env {
    pub fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let data = dir.path().join("data");
        let text = format!("data_dir = \"{}\"\n{config}", data.display());
        std::fs::write(dir.path().join("cloud.toml"), text).unwrap_or_else(|e| panic!("{e}"));
        // Never the machine's own AWS files or instance metadata service.
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap_or_else(|e| panic!("{e}"));
        let vars = vec![
            ("HOME".to_string(), home.display().to_string()),
            ("AWS_CONFIG_FILE".to_string(), home.join("aws-config").display().to_string()),
            ("AWS_SHARED_CREDENTIALS_FILE".to_string(), home.join("aws-credentials").display().to_string()),
            ("AWS_EC2_METADATA_DISABLED".to_string(), "true".to_string()),
            ("QMOI_CLOUD_BACKOFF_MS".to_string(), "20".to_string()),
        ];
        let removed = [
            "AWS_PROFILE",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT_URL",
            "AZURE_TENANT_ID",
            "AZURE_CLIENT_ID",
            "AZURE_CLIENT_SECRET",
            "GOOGLE_APPLICATION_CREDENTIALS",
        ]
        .iter()
        .map(|s| (*s).to_string())
        .collect();
        Self { dir, vars, removed }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn set(&mut self, k: &str, v: &str) {
        self.vars.push((k.to_string(), v.to_string()));
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(qmoi_testkit::bin("qmoi-cloud"));
        c.args(args)
            .arg("--config")
            .arg(self.path("cloud.toml"))
            .arg("--report-dir")
            .arg(self.path("logs"))
            .arg("--log-dir")
            .arg(self.path("logs"))
            .current_dir(self.dir.path());
        for k in &self.removed {
            c.env_remove(k);
        }
        for (k, v) in &self.vars {
            c.env(k, v);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap_or_else(|e| panic!("{e}"))
    }

    /// `--once`, then the report it wrote.
    pub fn once(&self) -> serde_json::Value {
        let out = self.run(&["--once"]);
        assert!(
            out.status.success(),
            "qmoi-cloud --once failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        qmoi_testkit::read_json(&self.path("logs/cloud_resources_latest.json"))
            .unwrap_or_else(|| panic!("no report in {}", self.path("logs").display()))
    }
}

pub fn has_check(report: &serde_json::Value, name: &str) -> bool {
    report["checks"].as_array().is_some_and(|a| a.iter().any(|c| c["name"] == name))
}

pub fn names(report: &serde_json::Value) -> String {
    report["checks"]
        .as_array()
        .map(|a| {
            a.iter().map(|c| format!("{}={} ({})", c["name"], c["status"], c["message"])).collect::<Vec<_>>().join("\n")
        })
        .unwrap_or_default()
}

pub fn status<'a>(report: &'a serde_json::Value, name: &str) -> &'a str {
    qmoi_testkit::check(report, name)["status"].as_str().unwrap_or("")
}

pub fn metric(report: &serde_json::Value, key: &str) -> Option<f64> {
    report["metrics"][key].as_f64()
}

pub fn alert_fingerprints(report: &serde_json::Value) -> Vec<String> {
    report["alerts"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["fingerprint"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

pub fn alert_level(report: &serde_json::Value, fingerprint: &str) -> Option<String> {
    report["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["fingerprint"] == fingerprint)
        .and_then(|a| a["level"].as_str().map(str::to_string))
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}
