//! Nagios / Monitoring Plugins checks (`[[plugins]]` in `config/system_health.toml`): any
//! program that follows the plugin guidelines — exit 0/1/2/3 for ok/warning/critical/
//! unknown, a status line, performance data — becomes a check of this report, its
//! performance data metrics.
//!
//! Each plugin runs when due (its own `interval`, else every run), all due ones at once,
//! through [`qmoi_core::child::run_bounded`]: in its own process group, killed with it at
//! its `timeout` (then unknown), its output kept up to [`MAX_OUTPUT`], `LC_ALL=C` so
//! numbers have a decimal point. Between runs its last result is reported again.

pub mod output;

use crate::config::PluginConfig;
use qmoi_core::runner::Collected;
use qmoi_core::{CheckResult, Status};
use serde_json::json;
use std::time::{Duration, Instant};

/// Output kept per stream.
pub const MAX_OUTPUT: usize = 64 << 10;
/// Lines of long output kept in the details.
const LONG_LINES: usize = 20;

/// One plugin's last result.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    /// The exit status as the plugin gave it (`None`: killed, or could not start).
    pub exit: Option<i32>,
    pub message: String,
    pub output: output::Output,
    pub duration: Duration,
    pub truncated: bool,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// What is remembered between runs, per configured plugin.
#[derive(Debug, Default)]
pub struct State {
    ran: Vec<Option<(Instant, Outcome)>>,
}

/// Run `cfg` once, now: the plugin's answer as a check.
pub async fn run(cfg: &PluginConfig) -> Outcome {
    let at = chrono::Utc::now();
    let mut cmd = tokio::process::Command::new(&cfg.command);
    cmd.args(&cfg.args).env("LC_ALL", "C");
    let timeout = cfg.timeout.get();
    let r = match qmoi_core::child::run_bounded(cmd, timeout, MAX_OUTPUT).await {
        Ok(r) => r,
        Err(e) => {
            return Outcome {
                status: Status::Unknown,
                exit: None,
                message: format!("cannot run {}: {e}", cfg.command),
                output: output::Output::default(),
                duration: Duration::ZERO,
                truncated: false,
                at,
            };
        }
    };
    let Some(st) = r.status else {
        return Outcome {
            status: Status::Unknown,
            exit: None,
            message: format!("no answer within {} (killed with its process group)", cfg.timeout),
            output: output::Output::default(),
            duration: r.elapsed,
            truncated: false,
            at,
        };
    };
    let text = String::from_utf8_lossy(&r.stdout);
    let out = output::parse(&text);
    let exit = st.code();
    let mut status = match exit {
        Some(0) => Status::Ok,
        Some(1) => Status::Warning,
        Some(2) => Status::Critical,
        _ => Status::Unknown,
    };
    if status == Status::Critical && !cfg.critical {
        status = Status::Warning;
    }
    let message = if !out.message.is_empty() {
        out.message.clone()
    } else {
        // Nothing on stdout: what it said on stderr, or how it ended.
        let err = String::from_utf8_lossy(&r.stderr);
        match err.lines().find(|l| !l.trim().is_empty()) {
            Some(l) => l.trim().to_string(),
            None => format!("no output ({st})"),
        }
    };
    let message = match exit {
        Some(0..=3) => message,
        _ => format!("{message} ({st}: not a plugin exit status, so unknown)"),
    };
    Outcome { status, exit, message, output: out, duration: r.elapsed, truncated: r.truncated, at }
}

/// Run the plugins that are due, and report every plugin's last result.
pub async fn check(plugins: &[PluginConfig], state: &mut State, out: &mut Collected) {
    state.ran.resize_with(plugins.len(), || None);
    let due: Vec<usize> = (0..plugins.len())
        .filter(|&i| {
            let every = plugins[i].interval.map_or(Duration::ZERO, |d| d.get());
            state.ran[i].as_ref().is_none_or(|(t, _)| t.elapsed() + Duration::from_millis(500) >= every)
        })
        .collect();
    let results = futures_util::future::join_all(due.iter().map(|&i| run(&plugins[i]))).await;
    for (i, r) in due.into_iter().zip(results) {
        state.ran[i] = Some((Instant::now(), r));
    }
    let mut rows = Vec::new();
    for (cfg, ran) in plugins.iter().zip(&state.ran) {
        let Some((_, r)) = ran else { continue };
        report(cfg, r, out);
        rows.push(details(cfg, r));
    }
    if !plugins.is_empty() {
        out.details.insert("plugins".into(), json!(rows));
    }
}

fn report(cfg: &PluginConfig, r: &Outcome, out: &mut Collected) {
    let plugin = cfg.name.as_str();
    out.metric(
        "qmoi_plugin_status",
        &[("plugin", plugin)],
        f64::from(r.exit.filter(|c| (0..=3).contains(c)).unwrap_or(3)),
    );
    out.metric("qmoi_plugin_duration_seconds", &[("plugin", plugin)], r.duration.as_secs_f64());
    for p in &r.output.perfdata {
        let (unit, factor) = p.unit();
        let labels = [("plugin", plugin), ("label", p.label.as_str()), ("unit", unit)];
        if let Some(v) = p.value {
            out.metric("qmoi_plugin_value", &labels, v * factor);
        }
        for (name, v) in [
            ("qmoi_plugin_warning", output::plain_threshold(&p.warn)),
            ("qmoi_plugin_critical", output::plain_threshold(&p.crit)),
            ("qmoi_plugin_min", p.min),
            ("qmoi_plugin_max", p.max),
        ] {
            if let Some(v) = v {
                out.metric(name, &labels, v * factor);
            }
        }
    }
    let mut c = CheckResult::new(format!("plugin:{plugin}"), r.status, format!("{plugin}: {}", r.message))
        .with_value(r.duration.as_secs_f64(), "seconds");
    if r.status != Status::Ok {
        c = c.with_title(format!("Plugin {plugin} reports {}", r.status.as_str()));
    }
    out.checks.push(c);
}

fn details(cfg: &PluginConfig, r: &Outcome) -> serde_json::Value {
    let perf: Vec<serde_json::Value> = r
        .output
        .perfdata
        .iter()
        .map(|p| {
            json!({"label": p.label, "value": p.value, "uom": p.uom, "warn": p.warn, "crit": p.crit,
                   "min": p.min, "max": p.max})
        })
        .collect();
    json!({
        "name": cfg.name,
        "command": cfg.command,
        "args": cfg.args,
        "status": r.status,
        "exit": r.exit,
        "message": r.message,
        "long_output": r.output.long_text.iter().take(LONG_LINES).collect::<Vec<_>>(),
        "perfdata": perf,
        "perfdata_problems": r.output.problems,
        "output_truncated": r.truncated,
        "duration_s": r.duration.as_secs_f64(),
        "ran_at": r.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}
