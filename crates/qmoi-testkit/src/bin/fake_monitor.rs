//! `qmoi-fake-monitor`: a monitor built on the real `qmoi-core` run loop that misbehaves on
//! demand, so the supervisor's handling of crashes, hangs, leaks and config errors can be
//! tested with a real process. Test support only; never shipped in a config.

use clap::{Parser, ValueEnum};
use qmoi_core::cli::MonitorArgs;
use qmoi_core::config::{ConfigDuration, Problems, Validate};
use qmoi_core::runner::{HistorySettings, Monitor, MonitorConfig, Outcome, RunContext};
use qmoi_core::{CheckResult, Status, component};
use serde::{Deserialize, Serialize};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Write an ok report every interval
    Write,
    /// Write a report with a warning check
    Warn,
    /// Write a report with a critical check
    Critical,
    /// Write one report, then never finish a run again (still honours SIGTERM)
    Hang,
    /// Write one report, then block the thread: ignores SIGTERM until SIGKILL
    HangHard,
    /// Print a message and exit with status 1 at once
    Crash,
    /// Print a configuration error and exit with status 2
    ConfigError,
    /// Grow resident memory by 16 MiB every run
    Leak,
}

/// A misbehaving monitor for the supervisor's tests.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    args: MonitorArgs,
    #[arg(long, value_enum, default_value = "write")]
    mode: Mode,
    /// Component id to report as
    #[arg(long, default_value = "system_health")]
    component: String,
    /// Wait this long before the first run (a slow start)
    #[arg(long, value_parser = qmoi_core::cli::parse_duration)]
    start_delay: Option<ConfigDuration>,
    /// A metric to put in every report, as NAME=VALUE (repeatable)
    #[arg(long = "metric", value_name = "NAME=VALUE")]
    metrics: Vec<String>,
    /// Report a warning while this file exists, ok otherwise (an alert a test fires and
    /// resolves)
    #[arg(long, value_name = "PATH")]
    warn_while: Option<std::path::PathBuf>,
    /// The warning's message (e.g. markup, to check that the page shows it as text)
    #[arg(long, value_name = "TEXT")]
    message: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FakeConfig {
    interval: Option<ConfigDuration>,
    /// Shown in the ok check's message: which configuration a run had (reload tests).
    label: Option<String>,
}

impl Validate for FakeConfig {
    fn validate(&self, _: &mut Problems) {}
}

impl MonitorConfig for FakeConfig {
    fn interval(&self) -> Duration {
        self.interval.map_or(Duration::from_secs(1), ConfigDuration::get)
    }
    fn check_timeout(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn history(&self) -> HistorySettings {
        HistorySettings { enabled: false, ..HistorySettings::default() }
    }
}

struct Fake {
    metrics: std::collections::BTreeMap<String, f64>,
    mode: Mode,
    runs: u32,
    start_delay: Option<Duration>,
    hoard: Vec<Vec<u8>>,
    warn_while: Option<std::path::PathBuf>,
    label: Option<String>,
    message: Option<String>,
}

impl Monitor for Fake {
    async fn run(&mut self, _: &RunContext) -> Outcome {
        if let Some(d) = self.start_delay.take() {
            tokio::time::sleep(d).await;
        }
        self.runs += 1;
        if self.runs > 1 {
            match self.mode {
                Mode::Hang => std::future::pending::<()>().await,
                // Deliberately blocks the only runtime thread, so signals go unhandled.
                Mode::HangHard => std::thread::sleep(Duration::from_secs(3600)),
                _ => {}
            }
        }
        if self.mode == Mode::Leak {
            // Touch every page so the memory is resident, not just reserved.
            self.hoard.push(vec![1u8; 16 * 1024 * 1024]);
        }
        let warn_file = self.warn_while.as_ref().is_some_and(|p| p.exists());
        let check = match self.mode {
            Mode::Warn => {
                CheckResult::new("fake", Status::Warning, self.message.clone().unwrap_or_else(|| "fake warning".into()))
            }
            _ if warn_file => CheckResult::new("fake", Status::Warning, "fake warning: the file is there"),
            Mode::Critical => CheckResult::new("fake", Status::Critical, "fake critical"),
            _ => match &self.label {
                Some(l) => CheckResult::ok("fake", format!("run {} ({l})", self.runs)),
                None => CheckResult::ok("fake", format!("run {}", self.runs)),
            },
        };
        Outcome { checks: vec![check], metrics: self.metrics.clone(), ..Outcome::default() }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !cli.args.validate {
        match cli.mode {
            Mode::Crash => {
                eprintln!("fake monitor: simulated crash");
                return ExitCode::from(1);
            }
            Mode::ConfigError => {
                eprintln!("qmoi-fake-monitor: configuration error: fake.toml: key 'frobnicate': not a real key");
                return ExitCode::from(2);
            }
            _ => {}
        }
    }
    // Leak the id: the run loop wants a `'static` component table entry.
    let id: &'static str = Box::leak(cli.component.clone().into_boxed_str());
    let base = component::find(id).copied().unwrap_or(component::COMPONENTS[1]);
    let info: &'static component::ComponentInfo = Box::leak(Box::new(component::ComponentInfo { id, ..base }));
    let mode = cli.mode;
    let start_delay = cli.start_delay.map(ConfigDuration::get);
    let warn_while = cli.warn_while;
    let message = cli.message;
    let mut metrics = std::collections::BTreeMap::new();
    for m in &cli.metrics {
        match m.split_once('=').and_then(|(k, v)| Some((k.to_string(), v.parse::<f64>().ok()?))) {
            Some((k, v)) => {
                metrics.insert(k, v);
            }
            None => {
                eprintln!("qmoi-fake-monitor: configuration error: --metric '{m}' is not NAME=VALUE");
                return ExitCode::from(2);
            }
        }
    }
    qmoi_core::runner::main::<FakeConfig, _>(info, cli.args, move |cfg| {
        Ok(Fake {
            metrics,
            mode,
            runs: 0,
            start_delay,
            hoard: Vec::new(),
            warn_while: warn_while.clone(),
            label: cfg.label.clone(),
            message: message.clone(),
        })
    })
}
