//! From what a provider returned to checks, alerts, metrics and the inventory rows.
//! Pure functions: everything they need is handed in.

use crate::config::{CloudConfig, Provider};
use crate::cost::{self, Cached};
use crate::model::{CpuSeries, IdleSet, Instance, Inventory, Stamped, State};
use chrono::{DateTime, Utc};
use qmoi_core::report::Alert;
use qmoi_core::runner::Collected;
use qmoi_core::{AlertLevel, CheckResult, Status};
use serde::Serialize;
use std::collections::BTreeMap;

/// Info alerts per provider for waste; beyond it the `waste:<provider>` check counts them.
pub const MAX_WASTE_ALERTS: usize = 100;

/// The APIs that list instances: when they fail and nothing was listed, the provider is
/// unknown as a whole.
const INSTANCE_APIS: [&str; 3] = ["ec2:DescribeInstances", "compute:virtualMachines", "compute:instances"];

/// What one provider's collection produced this run.
#[derive(Debug, Default)]
pub struct Collection {
    pub inventory: Inventory,
    /// CPU percent over `cpu_window` per instance id (running instances), and when fetched.
    pub cpu: Option<Stamped<CpuSeries>>,
    /// Idle instances (ids) with their highest daily average, and when checked.
    pub idle: Option<Stamped<IdleSet>>,
    /// The client could not be built (no credentials, unreadable key file): nothing listed.
    pub setup_error: Option<String>,
    /// The collection did not finish within the timeout.
    pub timed_out: bool,
}

/// One waste finding (info).
#[derive(Debug, Clone, Serialize)]
pub struct Waste {
    pub provider: String,
    pub kind: &'static str,
    pub id: String,
    pub name: String,
    pub region: String,
    pub detail: String,
}

/// An inventory row of the report's `details.instances`.
#[derive(Debug, Serialize)]
pub struct InstanceRow<'a> {
    pub provider: &'a str,
    #[serde(flatten)]
    pub instance: &'a Instance,
    pub cpu: Option<f64>,
    pub idle: bool,
}

#[derive(Debug, Default)]
pub struct Found {
    /// Checks and metrics.
    pub out: Collected,
    pub alerts: Vec<Alert>,
    pub waste: Vec<Waste>,
    /// The provider's line in `details.providers`.
    pub summary: serde_json::Value,
}

/// Average of a window's datapoints.
pub fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Idle instances: running, with at least `days` daily averages (the data itself shows the
/// instance ran that long; a launch time can be older than a stop/start) all below
/// `threshold`. Returns id → highest daily average.
pub fn idle(instances: &[Instance], daily: &CpuSeries, days: u32, threshold: f64) -> IdleSet {
    instances
        .iter()
        .filter(|i| i.state == State::Running)
        .filter_map(|i| {
            let v = daily.get(&i.id)?;
            let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (v.len() >= days as usize && max < threshold).then_some((i.id.clone(), max))
        })
        .collect()
}

fn money(v: f64, currency: &str) -> String {
    format!("{v:.2} {currency}")
}

/// Everything about one provider this run.
pub fn analyze(cfg: &CloudConfig, p: &Provider, c: &Collection, cost: Option<&Cached>, now: DateTime<Utc>) -> Found {
    let mut f = Found::default();
    let name = p.name.as_str();
    let kind = p.kind.as_str();
    let inv = &c.inventory;

    // --- the provider itself and its API errors ---
    let running = inv.instances.iter().filter(|i| i.state == State::Running).count();
    let scopes = if inv.scopes.len() == 1 { "1 scope".to_string() } else { format!("{} scopes", inv.scopes.len()) };
    let listed = format!(
        "{} instance{} ({running} running), {} volume{}, {} public IP{} in {scopes}",
        inv.instances.len(),
        if inv.instances.len() == 1 { "" } else { "s" },
        inv.volumes.len(),
        if inv.volumes.len() == 1 { "" } else { "s" },
        inv.ips.len(),
        if inv.ips.len() == 1 { "" } else { "s" },
    );
    let inventory_apis_failed = inv.errors.iter().any(|e| INSTANCE_APIS.iter().any(|a| e.api.contains(a)));
    let provider_check = if let Some(e) = &c.setup_error {
        CheckResult::unknown(format!("provider:{name}"), format!("{name} ({kind}): cannot connect: {e}"))
    } else if c.timed_out {
        CheckResult::unknown(
            format!("provider:{name}"),
            format!("{name} ({kind}): no complete answer within {} (raise timeout?); {listed}", cfg.timeout),
        )
    } else if inventory_apis_failed && inv.instances.is_empty() {
        let first = inv.errors.first().map(|e| format!("{}: {}", e.kind.as_str(), e.message)).unwrap_or_default();
        CheckResult::unknown(
            format!("provider:{name}"),
            format!("{name} ({kind}): instances could not be listed: {first}"),
        )
    } else {
        let errs = if inv.errors.is_empty() {
            String::new()
        } else {
            format!(
                "; {} API error{} (see the api: checks)",
                inv.errors.len(),
                if inv.errors.len() == 1 { "" } else { "s" }
            )
        };
        CheckResult::ok(format!("provider:{name}"), format!("{name} ({kind}): {listed}{errs}"))
    };
    f.out.check(provider_check);
    for e in &inv.errors {
        let scope = if e.scope.is_empty() { String::new() } else { format!(" for {}", e.scope) };
        f.out.check(CheckResult::unknown(
            format!("api:{name}:{}:{}", e.api, e.scope),
            format!("{name}: {}{scope}: {}: {}", e.api, e.kind.as_str(), e.message),
        ));
    }
    f.out.metric("qmoi_cloud_api_errors", &[("provider", name)], inv.errors.len() as f64);
    f.out.metric("qmoi_cloud_api_requests_total", &[("provider", name)], inv.requests as f64);

    // --- counts per region and state ---
    let mut counts: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for i in &inv.instances {
        *counts.entry((i.region.as_str(), i.state.as_str())).or_default() += 1;
    }
    for ((region, state), n) in counts {
        f.out.metric("qmoi_cloud_instances", &[("provider", name), ("region", region), ("state", state)], n as f64);
    }
    let mut vols: BTreeMap<(&str, bool), usize> = BTreeMap::new();
    for v in &inv.volumes {
        *vols.entry((v.region.as_str(), v.attached)).or_default() += 1;
    }
    for ((region, attached), n) in vols {
        let a = if attached { "true" } else { "false" };
        f.out.metric("qmoi_cloud_volumes", &[("provider", name), ("region", region), ("attached", a)], n as f64);
    }
    let mut ips: BTreeMap<(&str, bool), usize> = BTreeMap::new();
    for v in &inv.ips {
        *ips.entry((v.region.as_str(), v.associated)).or_default() += 1;
    }
    for ((region, assoc), n) in ips {
        let a = if assoc { "true" } else { "false" };
        f.out.metric("qmoi_cloud_public_ips", &[("provider", name), ("region", region), ("associated", a)], n as f64);
    }

    // --- instances: state, status checks, CPU ---
    let cpu = c.cpu.as_ref().map(|(_, s)| s.as_ref());
    for i in &inv.instances {
        let label = if i.name.is_empty() || i.name == i.id { i.id.clone() } else { format!("{} ({})", i.name, i.id) };
        if i.critical && i.state != State::Running {
            let status = if i.state == State::Pending { Status::Warning } else { Status::Critical };
            f.out.check(
                CheckResult::new(
                    format!("instance:{name}:{}", i.id),
                    status,
                    format!(
                        "critical instance {label} in {} is {}{}",
                        i.region,
                        i.state.as_str(),
                        if i.raw_state == i.state.as_str() { String::new() } else { format!(" ({})", i.raw_state) }
                    ),
                )
                .with_title(format!("Critical instance {label} is {}", i.state.as_str())),
            );
        } else if i.critical {
            f.out.check(CheckResult::ok(
                format!("instance:{name}:{}", i.id),
                format!("critical instance {label} is running"),
            ));
        }
        if let Some(s) = i.status_check.as_ref().filter(|s| s.failed()) {
            f.out.check(CheckResult::new(
                format!("status_check:{name}:{}", i.id),
                if i.critical { Status::Critical } else { Status::Warning },
                format!(
                    "instance {label} in {} fails its status checks: instance {}, system {}",
                    i.region, s.instance, s.system
                ),
            ));
        }
        if i.state != State::Running {
            continue;
        }
        let Some(avg) = cpu.and_then(|c| c.get(&i.id)).and_then(|v| mean(v)) else { continue };
        f.out.metric("qmoi_cloud_instance_cpu_percent", &[("provider", name), ("instance", &i.id)], avg);
        let status = if avg >= cfg.cpu_critical {
            Status::Critical
        } else if avg >= cfg.cpu_warning {
            Status::Warning
        } else {
            continue;
        };
        f.out.check(
            CheckResult::new(
                format!("cpu:{name}:{}", i.id),
                status,
                format!("instance {label} in {} at {avg:.1}% CPU over the last {}", i.region, cfg.cpu_window),
            )
            .with_value((avg * 10.0).round() / 10.0, "percent")
            .with_thresholds(cfg.cpu_warning, cfg.cpu_critical),
        );
    }

    // --- waste ---
    for v in inv.volumes.iter().filter(|v| !v.attached) {
        let size = v.size_gb.map(|s| format!("{s} GB ")).unwrap_or_default();
        f.waste.push(Waste {
            provider: name.to_string(),
            kind: "unattached_volume",
            id: v.id.clone(),
            name: v.name.clone(),
            region: v.region.clone(),
            detail: format!("{size}volume {} in {} is attached to nothing (still billed)", v.id, v.region),
        });
    }
    for ip in inv.ips.iter().filter(|i| !i.associated) {
        f.waste.push(Waste {
            provider: name.to_string(),
            kind: "unassociated_ip",
            id: ip.id.clone(),
            name: ip.address.clone(),
            region: ip.region.clone(),
            detail: format!(
                "public IP {} ({}) in {} is associated with nothing (still billed)",
                ip.address, ip.id, ip.region
            ),
        });
    }
    if let Some((_, idle)) = &c.idle {
        for i in inv.instances.iter().filter(|i| i.state == State::Running) {
            if let Some(max) = idle.get(&i.id) {
                f.waste.push(Waste {
                    provider: name.to_string(),
                    kind: "idle_instance",
                    id: i.id.clone(),
                    name: i.name.clone(),
                    region: i.region.clone(),
                    detail: format!(
                        "instance {} ({}) in {} used at most {max:.1}% CPU per day for {} days (idle below {}%)",
                        i.id, i.itype, i.region, cfg.idle_days, cfg.idle_cpu_percent
                    ),
                });
            }
        }
    }
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for w in &f.waste {
        *by_kind.entry(w.kind).or_default() += 1;
    }
    for k in ["unattached_volume", "unassociated_ip", "idle_instance"] {
        f.out.metric(
            "qmoi_cloud_waste_findings",
            &[("provider", name), ("kind", k)],
            *by_kind.get(k).unwrap_or(&0) as f64,
        );
    }
    for w in f.waste.iter().take(MAX_WASTE_ALERTS) {
        f.alerts.push(Alert {
            fingerprint: qmoi_core::alerts::fingerprint(
                "cloud_resources",
                &format!("waste:{name}:{}:{}", w.kind, w.id),
            ),
            level: AlertLevel::Info,
            title: match w.kind {
                "unattached_volume" => format!("Unattached volume {}", w.id),
                "unassociated_ip" => format!("Unassociated public IP {}", w.name),
                _ if w.name.is_empty() => format!("Idle instance {}", w.id),
                _ => format!("Idle instance {} ({})", w.name, w.id),
            },
            detail: w.detail.clone(),
            since: now,
        });
    }
    let waste_msg = if f.waste.is_empty() {
        format!("{name}: no waste found")
    } else {
        let parts: Vec<String> = by_kind
            .iter()
            .map(|(k, n)| {
                let word = match *k {
                    "unattached_volume" => "unattached volume",
                    "unassociated_ip" => "unassociated public IP",
                    _ => "idle instance",
                };
                format!("{n} {word}{}", if *n == 1 { "" } else { "s" })
            })
            .collect();
        let more = f.waste.len().saturating_sub(MAX_WASTE_ALERTS);
        let more = if more > 0 {
            format!(" ({more} beyond the first {MAX_WASTE_ALERTS} not raised as alerts)")
        } else {
            String::new()
        };
        format!(
            "{name}: {} waste finding{}: {}{more}",
            f.waste.len(),
            if f.waste.len() == 1 { "" } else { "s" },
            parts.join(", ")
        )
    };
    f.out.check(CheckResult::ok(format!("waste:{name}"), waste_msg));

    // --- cost ---
    let mut cost_json = serde_json::Value::Null;
    if p.cost {
        let cached = cost.cloned().unwrap_or_default();
        match (&cached.data, &cached.error) {
            (Some(data), err) => {
                let s = cost::summarize(
                    data,
                    now.date_naive(),
                    cfg.anomaly_baseline_days,
                    cfg.anomaly_factor,
                    cfg.anomaly_min_amount,
                );
                let cur = s.currency.clone();
                f.out.metric("qmoi_cloud_cost_month_to_date", &[("provider", name)], s.month_to_date);
                f.out.metric("qmoi_cloud_cost_forecast", &[("provider", name)], s.forecast);
                if let Some((_, v)) = s.last_day {
                    f.out.metric("qmoi_cloud_cost_last_day", &[("provider", name)], v);
                }
                let stale = match err {
                    Some(e) => format!(" (last fetch failed: {e}; figures from {})", fmt_time(cached.fetched_at)),
                    None => String::new(),
                };
                let status = if err.is_some() { Status::Unknown } else { Status::Ok };
                f.out.check(CheckResult::new(
                    format!("cost:{name}"),
                    status,
                    format!(
                        "{name}: month to date {}, forecast {} for the month{stale}",
                        money(s.month_to_date, &cur),
                        money(s.forecast, &cur)
                    ),
                ));
                if let Some(budget) = p.monthly_budget {
                    f.out.metric("qmoi_cloud_budget", &[("provider", name)], budget);
                    let pct = s.forecast / budget * 100.0;
                    let status = if pct >= cfg.budget_critical_percent {
                        Status::Critical
                    } else if pct >= cfg.budget_warning_percent {
                        Status::Warning
                    } else {
                        Status::Ok
                    };
                    f.out.check(
                        CheckResult::new(
                            format!("budget:{name}"),
                            status,
                            format!(
                                "{name}: forecast {} is {pct:.0}% of the {} monthly budget (month to date {})",
                                money(s.forecast, &cur),
                                money(budget, &cur),
                                money(s.month_to_date, &cur)
                            ),
                        )
                        .with_value((pct * 10.0).round() / 10.0, "percent")
                        .with_thresholds(cfg.budget_warning_percent, cfg.budget_critical_percent),
                    );
                }
                match (s.last_day, s.baseline) {
                    (Some((day, v)), Some(b)) => f.out.check(CheckResult::new(
                        format!("cost_anomaly:{name}"),
                        if s.anomaly { Status::Warning } else { Status::Ok },
                        format!(
                            "{name}: {day} cost {} against a {}-day mean of {}{}",
                            money(v, &cur),
                            cfg.anomaly_baseline_days,
                            money(b, &cur),
                            if s.anomaly { format!(" ({:.1}×)", v / b.max(f64::MIN_POSITIVE)) } else { String::new() }
                        ),
                    )),
                    _ => f.out.check(CheckResult::ok(
                        format!("cost_anomaly:{name}"),
                        format!("{name}: not enough daily cost data yet for an anomaly baseline"),
                    )),
                }
                cost_json = serde_json::json!({
                    "currency": cur,
                    "month_to_date": s.month_to_date,
                    "forecast": s.forecast,
                    "daily_rate": s.daily_rate,
                    "budget": p.monthly_budget,
                    "last_day": s.last_day.map(|(d, v)| serde_json::json!({"day": d, "amount": v})),
                    "baseline": s.baseline,
                    "anomaly": s.anomaly,
                    "fetched_at": cached.fetched_at,
                    "error": cached.error,
                });
            }
            (None, Some(e)) => {
                f.out.check(CheckResult::unknown(format!("cost:{name}"), format!("{name}: cost unavailable: {e}")));
                cost_json = serde_json::json!({"error": e, "failed_at": cached.failed_at});
            }
            (None, None) => {
                let why = if c.setup_error.is_some() { "no connection" } else { "not fetched yet" };
                f.out.check(CheckResult::ok(format!("cost:{name}"), format!("{name}: cost {why}")));
            }
        }
    }

    let idle_n = c.idle.as_ref().map(|(_, m)| m.len());
    f.summary = serde_json::json!({
        "name": name,
        "type": kind,
        "scopes": inv.scopes,
        "instances": inv.instances.len(),
        "running": running,
        "volumes": inv.volumes.len(),
        "unattached_volumes": inv.volumes.iter().filter(|v| !v.attached).count(),
        "public_ips": inv.ips.len(),
        "unassociated_ips": inv.ips.iter().filter(|v| !v.associated).count(),
        "idle_instances": idle_n,
        "errors": inv.errors,
        "setup_error": c.setup_error,
        "requests": inv.requests,
        "cpu_fetched_at": c.cpu.as_ref().map(|(t, _)| *t),
        "idle_checked_at": c.idle.as_ref().map(|(t, _)| *t),
        "cost": cost_json,
        "labels": p.labels,
    });
    f
}

fn fmt_time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "never".into(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string())
}
