//! Timed commands: the configured probes of what users wait for.

use crate::PerfMonitor;
use qmoi_core::CheckResult;
use qmoi_core::Status;
use qmoi_core::runner::Collected;
use serde_json::json;
use std::time::Instant;

impl PerfMonitor {
    pub(crate) async fn commands(&mut self, out: &mut Collected) {
        let mut rows = Vec::new();
        for (i, c) in self.cfg.commands.clone().iter().enumerate() {
            let due = self.commands[i].0.is_none_or(|t| t.elapsed() >= c.every.get());
            if due {
                let mut cmd = tokio::process::Command::new(&c.command);
                cmd.args(&c.args);
                // Tied to this monitor's life, its output bounded, its process group killed
                // at the timeout.
                let result = match qmoi_core::child::run_bounded(cmd, c.timeout.get(), 4096).await {
                    Err(e) => (f64::NAN, format!("cannot run {}: {e}", c.command), Status::Unknown),
                    Ok(r) => {
                        let secs = r.elapsed.as_secs_f64();
                        match r.status {
                            None => (
                                c.timeout.as_secs_f64(),
                                format!("did not finish within {} (killed)", c.timeout),
                                Status::Warning,
                            ),
                            Some(st) if st.success() => {
                                let slow = c.warning.is_some_and(|w| secs > w.as_secs_f64());
                                (
                                    secs,
                                    format!("took {}", fmt_secs(secs)),
                                    if slow { Status::Warning } else { Status::Ok },
                                )
                            }
                            Some(st) => {
                                let err = String::from_utf8_lossy(&r.stderr);
                                (
                                    secs,
                                    format!(
                                        "failed ({st}) after {}: {}",
                                        fmt_secs(secs),
                                        err.lines().last().unwrap_or("")
                                    ),
                                    Status::Warning,
                                )
                            }
                        }
                    }
                };
                self.commands[i] = (Some(Instant::now()), Some(result));
            }
            if let Some((secs, msg, status)) = &self.commands[i].1 {
                out.metric("qmoi_perf_command_duration_seconds", &[("command", &c.name)], *secs);
                let warn = c.warning.map_or_else(String::new, |w| format!(" (warning above {w})"));
                out.checks.push(
                    CheckResult::new(format!("command:{}", c.name), *status, format!("{}: {msg}{warn}", c.name))
                        .with_title(format!("Command {} slow or failing", c.name)),
                );
                rows.push(json!({"name": c.name, "seconds": secs, "result": msg}));
            }
        }
        out.details.insert("commands".into(), json!(rows));
    }
}

fn fmt_secs(s: f64) -> String {
    if s < 1.0 { format!("{:.0} ms", s * 1000.0) } else { format!("{s:.2} s") }
}
