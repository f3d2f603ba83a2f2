//! Access logs: requests per second, status classes, error rate, latency percentiles.

use crate::PerfMonitor;
use qmoi_core::CheckResult;
use qmoi_core::Status;
use qmoi_core::runner::Collected;
use serde_json::json;

impl PerfMonitor {
    pub(crate) fn access_logs(&mut self, interval_s: f64, out: &mut Collected) {
        let mut rows = Vec::new();
        for log in &mut self.logs {
            log.poll();
            let groups = log.take(interval_s);
            let name = log.cfg.name.clone();
            if let Some(e) = &log.error {
                out.checks.push(
                    CheckResult::unknown(format!("access_log:{name}"), format!("{name}: cannot read {e}"))
                        .with_title(format!("Access log {name} unreadable")),
                );
            }
            for g in &groups {
                fn l<'a>(
                    name: &'a str,
                    group: &'a str,
                    extra: Option<(&'static str, &'a str)>,
                ) -> Vec<(&'static str, &'a str)> {
                    let mut v = vec![("log", name), ("group", group)];
                    v.extend(extra);
                    v
                }
                let (n, gr) = (name.as_str(), g.group.as_str());
                out.metric("qmoi_perf_http_requests_per_second", &l(n, gr, None), g.requests_per_second);
                out.metric("qmoi_perf_http_error_rate_percent", &l(n, gr, None), g.error_rate_percent);
                for (class, count) in &g.status {
                    out.metric("qmoi_perf_http_responses", &l(n, gr, Some(("class", class))), *count as f64);
                }
                if let Some(lat) = &g.latency {
                    for (q, v) in [("0.5", lat.p50), ("0.95", lat.p95), ("0.99", lat.p99)] {
                        out.metric("qmoi_perf_http_latency_seconds", &l(n, gr, Some(("quantile", q))), v);
                    }
                }
            }
            if log.error.is_none()
                && let Some(all) = groups.first()
            {
                let mut problems = Vec::new();
                if let Some(w) = log.cfg.error_rate_warning
                    && all.error_rate_percent > w
                {
                    problems.push(format!("error rate {:.1}% (warning above {w}%)", all.error_rate_percent));
                }
                if let (Some(w), Some(lat)) = (log.cfg.p99_warning, &all.latency)
                    && lat.p99 > w.as_secs_f64()
                {
                    problems.push(format!("p99 {:.0} ms (warning above {w})", lat.p99 * 1000.0));
                }
                let lat = all.latency.as_ref().map_or_else(String::new, |l| {
                    format!(
                        ", p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
                        l.p50 * 1000.0,
                        l.p95 * 1000.0,
                        l.p99 * 1000.0
                    )
                });
                let base = format!(
                    "{name}: {} requests ({:.1}/s), {:.1}% 5xx{lat}",
                    all.requests, all.requests_per_second, all.error_rate_percent
                );
                out.checks.push(if problems.is_empty() {
                    CheckResult::ok(format!("access_log:{name}"), base)
                } else {
                    CheckResult::new(
                        format!("access_log:{name}"),
                        Status::Warning,
                        format!("{base}: {}", problems.join("; ")),
                    )
                    .with_title(format!("Slow or failing responses in {name}"))
                });
            }
            rows.push(json!({"name": name, "path": log.cfg.path.as_str(), "parsed_lines": log.parsed, "unparsed_lines": log.unparsed,
                "rotations": log.rotations(), "error": log.error, "last_poll_ms": log.last_poll_ms, "groups": groups}));
        }
        out.details.insert("access_logs".into(), json!(rows));
    }
}
