//! The `status` table.

use crate::overview::Overview;
use crate::state::State;
use qmoi_core::human::{clip, duration as fmt_age, escape_control as esc};
use std::fmt::Write as _;

/// The table `qmoi-supervisor status` prints. Texts that come from reports (summaries,
/// reasons, notes) have their control characters made visible: they carry observed data,
/// such as the path of a process an unprivileged user started.
pub fn render(o: &Overview) -> String {
    let mut out = String::new();
    let now = chrono::Utc::now();
    match &o.supervisor {
        Some(s) => {
            let up = (now - s.started_at).num_milliseconds() as f64 / 1000.0;
            let _ = writeln!(
                out,
                "QMOI supervisor pid {}, up {} — verdict: {}",
                s.pid,
                fmt_age(up),
                o.verdict.overall.as_str().to_uppercase()
            );
            if let Some(url) = &s.dashboard {
                let _ = writeln!(out, "dashboard: {}", esc(url));
            }
            match &s.reload {
                Some(r) if !r.ok => {
                    let _ = writeln!(
                        out,
                        "config reload FAILED at {}; the previous configuration keeps running:",
                        r.at.format("%Y-%m-%d %H:%M:%S UTC")
                    );
                    for e in &r.errors {
                        let _ = writeln!(out, "  ! {}", clip(&esc(e), 160));
                    }
                }
                Some(r) if !r.pending_restart.is_empty() => {
                    let _ = writeln!(
                        out,
                        "config reloaded at {}; applied when the supervisor restarts: {}",
                        r.at.format("%Y-%m-%d %H:%M:%S UTC"),
                        esc(&r.pending_restart.join(", "))
                    );
                }
                _ => {}
            }
        }
        None => {
            let _ = writeln!(
                out,
                "No supervisor is running; from the report files — verdict: {}",
                o.verdict.overall.as_str().to_uppercase()
            );
        }
    }
    for r in &o.verdict.reasons {
        let _ = writeln!(out, "  - {}", clip(&esc(r), 160));
    }
    let _ = writeln!(out);
    let w = o.components.iter().map(|c| c.id.len()).max().unwrap_or(9).max(9);
    let _ = writeln!(
        out,
        "{:<w$}  {:<10}  {:>7}  {:>7}  {:>8}  {:>10}  {:<8}  SUMMARY",
        "COMPONENT", "STATE", "PID", "UPTIME", "RESTARTS", "REPORT AGE", "STATUS"
    );
    for c in &o.components {
        let uptime = match (c.started_at, c.pid) {
            (Some(t), Some(_)) => fmt_age((now - t).num_milliseconds() as f64 / 1000.0),
            _ => "-".into(),
        };
        let summary = match (c.state, &c.note, &c.maintenance) {
            (_, _, Some(m)) => format!("in maintenance {m}"),
            (State::Running, _, _) | (_, None, _) => c.summary.clone().unwrap_or_default(),
            (_, Some(n), _) => n.clone(),
        };
        let _ = writeln!(
            out,
            "{:<w$}  {:<10}  {:>7}  {:>7}  {:>8}  {:>10}  {:<8}  {}",
            esc(&c.id),
            c.state.as_str(),
            c.pid.map_or_else(|| "-".into(), |p| p.to_string()),
            uptime,
            c.restarts,
            c.report_age_s.map_or_else(|| "-".into(), fmt_age),
            c.report_status.map_or("-", |s| s.as_str()),
            clip(&esc(&summary), 100),
        );
    }
    out
}
