//! Network interfaces: operational state, throughput and error rate since the last run.

use super::{Collected, fmt_bytes, percent};
use crate::SystemHealthConfig;
use qmoi_core::threshold::fmt_percent;
use qmoi_core::{CheckResult, Status};
use std::time::Duration;
use sysinfo::Networks;

/// `/sys/class/net/<if>/operstate`: `up`, `down`, `unknown` (common for virtual links), …
fn operstate(iface: &str) -> String {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/operstate"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

pub fn check(cfg: &SystemHealthConfig, networks: Option<&mut Networks>, elapsed: Duration, out: &mut Collected) {
    let Some(networks) = networks else {
        out.checks.push(CheckResult::unknown("network", "network interfaces are not available on this system"));
        return;
    };
    networks.refresh(true);
    let secs = elapsed.as_secs_f64().max(0.001);
    let mut names: Vec<String> = networks.keys().map(|k| k.to_string_lossy().into_owned()).collect();
    names.sort();
    let mut table = Vec::new();
    for (name, data) in networks.iter() {
        let name = name.to_string_lossy().into_owned();
        if cfg.network.ignore_interfaces.contains(&name) {
            continue;
        }
        let state = operstate(&name);
        let up = state == "up" || state == "unknown";
        let rx = data.received() as f64 / secs;
        let tx = data.transmitted() as f64 / secs;
        let packets = (data.packets_received() + data.packets_transmitted()) as f64;
        let errors = (data.errors_on_received() + data.errors_on_transmitted()) as f64;
        let labels = [("interface", name.as_str())];
        out.metric("qmoi_network_up", &labels, if up { 1.0 } else { 0.0 });
        out.metric("qmoi_network_receive_bytes_per_second", &labels, rx);
        out.metric("qmoi_network_transmit_bytes_per_second", &labels, tx);
        out.metric("qmoi_network_receive_errors_total", &labels, data.total_errors_on_received() as f64);
        out.metric("qmoi_network_transmit_errors_total", &labels, data.total_errors_on_transmitted() as f64);
        if packets > 0.0 {
            let rate = percent(errors, packets);
            let c = cfg.network.error_rate.check(
                format!("interface_errors:{name}"),
                &format!("packet errors on {name}"),
                rate,
                "percent",
                fmt_percent,
            );
            if c.status != Status::Ok {
                let message = format!("{} ({errors} errors in {packets} packets)", c.message);
                out.checks.push(CheckResult { message, ..c });
            }
        }
        table.push(serde_json::json!({
            "interface": name, "state": state,
            "receive_bytes_per_second": rx.round(), "transmit_bytes_per_second": tx.round(),
            "receive": fmt_bytes(rx) + "/s", "transmit": fmt_bytes(tx) + "/s",
            "errors_total": data.total_errors_on_received() + data.total_errors_on_transmitted(),
        }));
    }
    let up_count = table.iter().filter(|t| t["state"] == "up" || t["state"] == "unknown").count();
    out.checks.push(CheckResult::ok(
        "network",
        format!("{} interface{} seen, {up_count} up", table.len(), if table.len() == 1 { "" } else { "s" }),
    ));
    for req in &cfg.network.required_up {
        let state = if names.contains(req) { operstate(req) } else { "missing".into() };
        let ok = state == "up" || state == "unknown";
        let name = format!("interface:{req}");
        out.checks.push(if ok {
            CheckResult::ok(name, format!("interface {req} is {state}"))
        } else {
            CheckResult::new(name, Status::Critical, format!("interface {req} is {state}"))
                .with_title(format!("Interface {req} is {state}"))
        });
    }
    out.detail("interfaces", serde_json::Value::Array(table));
}
