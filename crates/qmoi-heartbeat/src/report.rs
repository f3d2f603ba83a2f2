//! The report's metrics and `details` written straight into the report file, one check
//! at a time: for 10,000 checks they are ~60,000 metrics and megabytes of details, which
//! built in memory first (a map of metric keys, a JSON tree of rows) made every report
//! allocate several times the monitor's steady size.

use crate::{Shared, lock, state};
use qmoi_core::Status;
use qmoi_core::report::{StreamParts, metric_key};
use qmoi_core::slo::SloStatus;
use std::io::Write;
use std::sync::Arc;

/// What a report writes beside its checks.
pub struct ChecksStream {
    pub shared: Arc<Shared>,
    /// Each check's status and message as the run worked them out (the rows say the
    /// same as the checks; the rest of a row is the state when it is written).
    pub evaluated: Vec<(Status, String)>,
    pub listen: String,
    pub slos: Vec<SloStatus>,
    pub runs_dropped: u64,
    /// The newest runs of the checks that are not ok, newest first, by check index.
    pub recent: std::collections::HashMap<usize, Vec<state::Run>>,
}

impl StreamParts for ChecksStream {
    fn write_metrics(&self, w: &mut dyn Write) -> std::io::Result<()> {
        let mut first = true;
        let mut put = |key: &str, v: f64| -> std::io::Result<()> {
            if !v.is_finite() {
                return Ok(());
            }
            w.write_all(if first { b"{" } else { b"," })?;
            first = false;
            serde_json::to_writer(&mut *w, key)?;
            w.write_all(b":")?;
            serde_json::to_writer(&mut *w, &v)?;
            Ok(())
        };
        put("qmoi_heartbeat_runs_dropped_total", self.runs_dropped as f64)?;
        for (i, c) in self.shared.checks.iter().enumerate() {
            let labels = [("check", c.name.as_str())];
            let up = self.evaluated.get(i).is_some_and(|(s, _)| *s == Status::Ok);
            put(&metric_key("qmoi_heartbeat_up", &labels), if up { 1.0 } else { 0.0 })?;
            // The state under its lock for a moment; written outside it.
            let (last_ping, last_success, duration, exit, pings) = {
                let states = lock(&self.shared.states);
                let st = &states[i];
                let exit = match st.last_end.as_ref().map(|e| e.kind) {
                    Some(state::Kind::Exit(n)) => Some(n),
                    _ => None,
                };
                (
                    st.last().map(|p| p.at.timestamp()),
                    st.last_success.map(|t| t.timestamp()),
                    st.last_duration_s,
                    exit,
                    st.pings,
                )
            };
            if let Some(t) = last_ping {
                put(&metric_key("qmoi_heartbeat_last_ping_timestamp_seconds", &labels), t as f64)?;
            }
            if let Some(t) = last_success {
                put(&metric_key("qmoi_heartbeat_last_success_timestamp_seconds", &labels), t as f64)?;
            }
            if let Some(d) = duration {
                put(&metric_key("qmoi_heartbeat_last_duration_seconds", &labels), d)?;
            }
            if let Some(n) = exit {
                put(&metric_key("qmoi_heartbeat_last_exit_status", &labels), f64::from(n))?;
            }
            for (kind, n) in pings.iter() {
                put(
                    &metric_key("qmoi_heartbeat_pings_total", &[("check", c.name.as_str()), ("kind", kind)]),
                    f64::from(n),
                )?;
            }
        }
        for s in &self.slos {
            qmoi_core::slo::metrics(s, "check", &mut put)?;
        }
        if first {
            w.write_all(b"{")?;
        }
        w.write_all(b"}")
    }

    fn write_details(&self, w: &mut dyn Write) -> std::io::Result<()> {
        w.write_all(b"{\"listen\":")?;
        serde_json::to_writer(&mut *w, &self.listen)?;
        w.write_all(b",\"checks\":[")?;
        for (i, c) in self.shared.checks.iter().enumerate() {
            if i > 0 {
                w.write_all(b",")?;
            }
            let (status, message) = self.evaluated.get(i).map_or((Status::Unknown, ""), |(s, m)| (*s, m.as_str()));
            let row = {
                let states = lock(&self.shared.states);
                let st = &states[i];
                serde_json::json!({
                    "name": c.name,
                    "status": status,
                    "message": message,
                    "schedule": self.shared.schedules[i].describe(),
                    "grace": c.grace.to_string(),
                    "last_ping": st.last().map(|p| serde_json::json!({
                        "kind": p.kind.as_str(), "at": p.at, "from": p.from,
                        "body": p.body.chars().take(200).collect::<String>()})),
                    "last_success": st.last_success,
                    "last_duration_s": st.last_duration_s,
                    "running": st.open.len(),
                    // The runs of a check in trouble (all of them would make a report of
                    // 10,000 checks tens of megabytes); every run is in the database.
                    "recent_runs": self.recent.get(&i).map_or_else(Vec::new, |r| r.iter().map(run_json).collect()),
                })
            };
            serde_json::to_writer(&mut *w, &row)?;
        }
        w.write_all(b"]")?;
        if !self.slos.is_empty() {
            w.write_all(b",\"slo\":")?;
            serde_json::to_writer(&mut *w, &self.slos)?;
        }
        w.write_all(b"}")
    }
}

/// A run as the report shows it.
fn run_json(r: &state::Run) -> serde_json::Value {
    serde_json::json!({"kind": r.kind.as_str(), "started_at": r.started_at, "ended_at": r.ended_at,
                       "duration_s": r.duration_s, "body": r.body})
}
