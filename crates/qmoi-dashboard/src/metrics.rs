//! `/metrics`: the Prometheus text exposition (format 0.0.4) of every report's metrics,
//! each sample labelled with its `component`, plus the supervisor's own (which arrive in
//! the master report: `qmoi_component_up`, `qmoi_component_restarts_total`,
//! `qmoi_component_report_age_seconds`, `qmoi_verdict`).
//!
//! Every report's `metrics` map is `name{labels} -> value`; samples are grouped into
//! families by name, each with one `# HELP` and `# TYPE` line: `summary` for a family with
//! `quantile` labels (its `<name>_sum` and `<name>_count` samples join it), `counter` for
//! names ending in `_total`, as Prometheus' naming rules say, `gauge` otherwise.

use qmoi_core::Status;
use qmoi_core::report::Report;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Help texts of the metrics we know; others get a generic one.
fn help(name: &str) -> &'static str {
    match name {
        "qmoi_cpu_usage_ratio" => "Share of all CPU cores busy, averaged over the monitor's interval.",
        "qmoi_cpu_core_usage_ratio" => "Share of one CPU core busy.",
        "qmoi_cpu_cores" => "Number of CPU cores.",
        "qmoi_load1" | "qmoi_load5" | "qmoi_load15" => "Load average.",
        "qmoi_load1_per_core" => "1-minute load average divided by the number of cores.",
        "qmoi_memory_used_ratio" => "Share of memory in use (total minus available).",
        "qmoi_memory_total_bytes" => "Total memory.",
        "qmoi_memory_available_bytes" => "Memory available without swapping.",
        "qmoi_swap_used_ratio" => "Share of swap in use.",
        "qmoi_swap_total_bytes" => "Total swap.",
        "qmoi_disk_used_ratio" => "Share of a file system in use, as df counts it.",
        "qmoi_disk_size_bytes" => "File system size.",
        "qmoi_disk_avail_bytes" => "File system space available to unprivileged users.",
        "qmoi_disk_inodes_used_ratio" => "Share of a file system's inodes in use.",
        "qmoi_network_up" => "1 when the interface is up.",
        "qmoi_network_receive_bytes_per_second" | "qmoi_network_transmit_bytes_per_second" => {
            "Interface throughput over the monitor's interval."
        }
        "qmoi_network_receive_errors_total" | "qmoi_network_transmit_errors_total" => "Interface errors since boot.",
        "qmoi_connectivity_up" => "1 when the connectivity probe succeeded.",
        "qmoi_connectivity_latency_seconds" => "Duration of the connectivity probe.",
        "qmoi_process_count" => "Processes found for a required process.",
        "qmoi_processes" => "Processes on the host.",
        "qmoi_zombie_processes" => "Zombie processes on the host.",
        "qmoi_file_descriptors_open" => "Open file descriptors, system-wide.",
        "qmoi_file_descriptors_max" => "fs.file-max.",
        "qmoi_uptime_seconds" => "Seconds since boot.",
        "qmoi_check_duration_seconds" => "Time one concern's checks took in the monitor's last run.",
        "qmoi_temperature_celsius" => "Sensor temperature.",
        "qmoi_component_up" => "1 when the supervisor sees the component running with fresh reports.",
        "qmoi_component_restarts_total" => "Restarts of the component since the supervisor started.",
        "qmoi_component_report_age_seconds" => "Age of the component's latest report.",
        "qmoi_component_alerts" => "Alerts firing in the component's latest report, by level.",
        "qmoi_component_stale_after_seconds" => "A report older than this makes the supervisor restart the component.",
        "qmoi_verdict" => "Overall verdict: 0 healthy, 1 degraded, 2 critical.",
        "qmoi_last_report_timestamp_seconds" => {
            "Unix time the supervisor wrote its latest report (a fleet's last seen)."
        }
        "qmoi_remote_write_sent_samples_total" => "Samples a remote-write receiver accepted.",
        "qmoi_remote_write_sent_bytes_total" => "Request bytes (compressed) a remote-write receiver accepted.",
        "qmoi_remote_write_failed_samples_total" => "Samples a remote-write receiver refused for good (4xx); dropped.",
        "qmoi_remote_write_dropped_samples_total" => "Samples dropped because the remote-write buffer was full.",
        "qmoi_remote_write_retries_total" => "Remote-write requests retried (5xx, 429, transport errors).",
        "qmoi_remote_write_pending_bytes" => "Bytes of remote-write requests buffered on disk, not yet sent.",
        "qmoi_remote_write_pending_requests" => "Remote-write requests buffered on disk, not yet sent.",
        "qmoi_remote_write_last_success_timestamp_seconds" => "Unix time of the last accepted remote write (0: never).",
        "qmoi_endpoint_up" => "1 when the endpoint is up (after the failure/success thresholds).",
        "qmoi_endpoint_last_latency_seconds" => "Latency of the endpoint's last probe.",
        "qmoi_endpoint_latency_seconds" => "Latency of the endpoint's successful probes over the last hour.",
        "qmoi_endpoint_availability_ratio" => "Share of successful probes over the window.",
        "qmoi_endpoint_error_rate_ratio" => "Share of the last 20 probes that failed.",
        "qmoi_endpoint_cert_expiry_days" => "Days until the endpoint's certificate expires.",
        "qmoi_slo_objective_ratio" => "The objective: share of probes that must succeed over the window.",
        "qmoi_slo_availability_ratio" => "Share of counted probes that succeeded over the objective's window.",
        "qmoi_slo_error_budget_remaining_ratio" => {
            "Share of the error budget left (1 untouched, 0 spent, below 0 overspent)."
        }
        "qmoi_slo_probes_total" => "Probes counted for the objective over its window (maintenance excluded).",
        "qmoi_slo_probes_bad_total" => "Failed probes counted for the objective over its window.",
        "qmoi_slo_burn_rate" => "Error rate over the window divided by the rate the objective allows.",
        "qmoi_slo_alerting" => "1 while a burn-rate alert of the objective fires.",
        "qmoi_endpoint_status_code" => "HTTP status of the endpoint's last probe.",
        "qmoi_endpoint_probes_total" => "Endpoint probes run since the monitor started.",
        "qmoi_endpoint_schedule_lateness_p99_seconds" => {
            "99th percentile of how late probes start against their schedule."
        }
        "qmoi_report_status" => "Status of the component's latest report: 0 ok, 1 warning, 2 critical, 3 unknown.",
        _ => "",
    }
}

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Split `name{a="b"}` into the name and the inside of the braces.
fn split(key: &str) -> Option<(&str, &str)> {
    match key.find('{') {
        Some(i) => key.strip_suffix('}').map(|k| (&k[..i], &k[i + 1..])),
        None => Some((key, "")),
    }
}

/// Is `labels` (the inside of the braces) a well-formed label list: `a="x",b="y\"z"`,
/// values escaped as the exposition format requires? A key that is not is skipped: a
/// report is outside input, and a raw newline or brace in a label would let it write
/// lines of its own into `/metrics` (an adversarial run made a second `qmoi_verdict`).
fn valid_labels(labels: &str) -> bool {
    let mut rest = labels.as_bytes();
    while !rest.is_empty() {
        let name_len = rest.iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
        if name_len == 0 || rest[0].is_ascii_digit() || rest.get(name_len..name_len + 2) != Some(b"=\"") {
            return false;
        }
        rest = &rest[name_len + 2..];
        loop {
            match rest.first() {
                None | Some(b'\n') => return false,
                Some(b'"') => break,
                Some(b'\\') => {
                    if !matches!(rest.get(1), Some(b'\\' | b'"' | b'n')) {
                        return false;
                    }
                    rest = &rest[2..];
                }
                Some(_) => rest = &rest[1..],
            }
        }
        rest = &rest[1..];
        match rest.first() {
            None => {}
            Some(b',') if rest.len() > 1 => rest = &rest[1..],
            Some(_) => return false,
        }
    }
    true
}

/// Names only the supervisor's own report may use: a monitor's report cannot fake the
/// verdict or another component's state.
fn reserved(name: &str) -> bool {
    name == "qmoi_verdict"
        || name == "qmoi_report_status"
        || name.starts_with("qmoi_component_")
        || name.starts_with("qmoi_dashboard_")
}

fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{v}")
    }
}

/// Render the reports, each under its component id (the name of its file, not what the
/// file claims to be) with the status to show for it (`unknown` when its file can no
/// longer be read, whatever the last usable report said).
pub fn render<'a>(reports: impl Iterator<Item = (&'a str, &'a Report, Status)>) -> String {
    // family name -> lines
    let mut families: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, r, status) in reports {
        let master = id == qmoi_core::component::MASTER_MONITOR;
        let id_label = id.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        for (key, value) in &r.metrics {
            let Some((name, labels)) = split(key) else { continue };
            if !valid_name(name) || !valid_labels(labels) {
                continue;
            }
            let has_component = labels.starts_with("component=\"") || labels.contains(",component=\"");
            if !master && (reserved(name) || has_component) {
                continue;
            }
            // Component first; the supervisor's metrics already say which component.
            let comp = if has_component { String::new() } else { format!("component=\"{id_label}\"") };
            let all = match (comp.is_empty(), labels.is_empty()) {
                (true, true) => String::new(),
                (true, false) => format!("{{{labels}}}"),
                (false, true) => format!("{{{comp}}}"),
                (false, false) => format!("{{{comp},{labels}}}"),
            };
            families.entry(name.to_string()).or_default().push(format!("{name}{all} {}", fmt_value(*value)));
        }
        if !master {
            let s = f64::from(status.exit_code());
            families
                .entry("qmoi_report_status".into())
                .or_default()
                .push(format!("qmoi_report_status{{component=\"{id_label}\"}} {s}"));
        }
    }
    // Summaries: a family with quantile labels takes in its _sum and _count samples.
    let summaries: Vec<String> = families
        .iter()
        .filter(|(_, lines)| lines.iter().any(|l| l.contains("quantile=\"")))
        .map(|(n, _)| n.clone())
        .collect();
    for name in &summaries {
        for suffix in ["_sum", "_count"] {
            if let Some(extra) = families.remove(&format!("{name}{suffix}"))
                && let Some(f) = families.get_mut(name)
            {
                f.extend(extra);
            }
        }
    }
    let mut out = String::with_capacity(families.len() * 128);
    for (name, mut lines) in families {
        lines.sort();
        lines.dedup();
        let h = help(&name);
        let _ = writeln!(out, "# HELP {name} {}", if h.is_empty() { "QMOI metric (see docs/CONFIG.md)." } else { h });
        let kind = if summaries.contains(&name) {
            "summary"
        } else if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_families_and_labels_components() {
        let mut r: Report = serde_json::from_value(serde_json::json!({
            "schema_version": 1, "component": "system_health", "host": "h", "generated_at": "2026-11-27T03:00:00Z",
            "interval_s": 60, "duration_ms": 1, "status": "warning", "summary": "", "checks": [], "alerts": [], "details": {},
            "metrics": {"qmoi_disk_used_ratio{mount=\"/\"}": 0.5, "qmoi_load1": 0.25, "bad name": 1.0, "qmoi_network_receive_errors_total{interface=\"eth0\"}": 3.0}
        }))
        .unwrap();
        r.component = "system_health".into();
        let text = render([("system_health", &r, r.status)].into_iter());
        assert!(
            text.contains(
                "# TYPE qmoi_disk_used_ratio gauge\nqmoi_disk_used_ratio{component=\"system_health\",mount=\"/\"} 0.5\n"
            ),
            "{text}"
        );
        assert!(text.contains("# TYPE qmoi_network_receive_errors_total counter"), "{text}");
        assert!(text.contains("qmoi_report_status{component=\"system_health\"} 1"), "{text}");
        assert!(!text.contains("bad name"));

        let s: Report = serde_json::from_value(serde_json::json!({
            "schema_version": 1, "component": "api_endpoints", "host": "h", "generated_at": "2026-11-27T03:00:00Z",
            "interval_s": 15, "duration_ms": 1, "status": "ok", "summary": "", "checks": [], "alerts": [], "details": {},
            "metrics": {"qmoi_endpoint_latency_seconds{endpoint=\"a\",quantile=\"0.5\"}": 0.01,
                        "qmoi_endpoint_latency_seconds_sum{endpoint=\"a\"}": 1.5,
                        "qmoi_endpoint_latency_seconds_count{endpoint=\"a\"}": 100.0}
        }))
        .unwrap();
        let text = render([("api_endpoints", &s, s.status)].into_iter());
        assert!(text.contains("# TYPE qmoi_endpoint_latency_seconds summary\n"), "{text}");
        assert!(
            text.contains("qmoi_endpoint_latency_seconds_count{component=\"api_endpoints\",endpoint=\"a\"} 100"),
            "{text}"
        );
        assert!(!text.contains("# TYPE qmoi_endpoint_latency_seconds_sum"), "folded into the summary: {text}");
    }

    /// Regression: metric keys with newlines, braces or a reserved name in a report wrote
    /// lines of their own into /metrics (a second `qmoi_verdict` appeared).
    #[test]
    fn hostile_metric_keys_cannot_inject_lines_or_fake_the_verdict() {
        let r: Report = serde_json::from_value(serde_json::json!({
            "schema_version": 1, "component": "master_monitor", "host": "h", "generated_at": "2026-11-27T03:00:00Z",
            "interval_s": 60, "duration_ms": 1, "status": "ok", "summary": "", "checks": [], "alerts": [], "details": {},
            "metrics": {
                "qmoi_x{a=\"1\"} 1\nqmoi_verdict 0\n{b=\"2\"}": 1.0,
                "qmoi_y{a=\"1\"}\nqmoi_verdict{x=\"\"}": 1.0,
                "qmoi_z{a=\"line\nbreak\"}": 1.0,
                "qmoi_w{a=\"ok\\\"quoted\\n\",b=\"2\"}": 4.0,
                "qmoi_verdict": 0.0,
                "qmoi_component_up{component=\"security\"}": 1.0,
                "qmoi_v{component=\"security\"}": 1.0
            }
        }))
        .unwrap();
        let text = render([("cloud_resources", &r, r.status)].into_iter());
        assert!(!text.contains("qmoi_verdict"), "{text}");
        assert!(!text.contains("qmoi_component_up"), "{text}");
        assert!(!text.contains("qmoi_x") && !text.contains("qmoi_y") && !text.contains("qmoi_z"), "{text}");
        assert!(!text.contains("qmoi_v{"), "a monitor cannot speak for another component: {text}");
        assert!(text.contains("qmoi_w{component=\"cloud_resources\",a=\"ok\\\"quoted\\n\",b=\"2\"} 4"), "{text}");
        assert!(text.contains("qmoi_report_status{component=\"cloud_resources\"} 0"), "{text}");
        for line in text.lines() {
            assert!(
                line.starts_with('#') || line.starts_with("qmoi_w") || line.starts_with("qmoi_report_status"),
                "{line}"
            );
        }
        // The supervisor's own report keeps its component labels and the verdict.
        let text = render([("master_monitor", &r, r.status)].into_iter());
        assert!(
            text.contains("\nqmoi_verdict{component=\"master_monitor\"} 0\n")
                && text.contains("qmoi_component_up{component=\"security\"} 1")
        );
    }
}
