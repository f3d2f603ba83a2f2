//! From what a provider returned to checks, alerts, metrics and the inventory rows, one
//! module per concern: the provider and its API errors ([`provider`]), instance state,
//! status checks and CPU ([`instances`]), waste ([`waste`]), spend ([`cost`]).
//! Pure functions: everything they need is handed in.

mod cost;
mod instances;
mod provider;
mod waste;

use crate::config::{CloudConfig, Provider};
use crate::cost::Cached;
use crate::model::{CpuSeries, IdleSet, Instance, InstanceState, Inventory, Stamped};
use chrono::{DateTime, Utc};
use qmoi_core::report::Alert;
use qmoi_core::runner::Collected;
use serde::Serialize;

/// Info alerts per provider for waste; beyond it the `waste:<provider>` check counts them.
pub const MAX_WASTE_ALERTS: usize = 100;

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
    /// How long the collection took (all of its APIs, concurrently).
    pub duration: std::time::Duration,
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
        .filter(|i| i.state == InstanceState::Running)
        .filter_map(|i| {
            let v = daily.get(&i.id)?;
            let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (v.len() >= days as usize && max < threshold).then_some((i.id.clone(), max))
        })
        .collect()
}

pub(crate) fn money(v: f64, currency: &str) -> String {
    format!("{v:.2} {currency}")
}

/// Everything about one provider this run: one module per concern, each adding its checks,
/// metrics and alerts to `f`.
pub fn analyze(cfg: &CloudConfig, p: &Provider, c: &Collection, cost: Option<&Cached>, now: DateTime<Utc>) -> Found {
    let mut f = Found::default();
    provider::check(&mut f, cfg, p, c);
    provider::counts(&mut f, &p.name, &c.inventory);
    instances::check(&mut f, cfg, &p.name, &c.inventory, c.cpu.as_ref().map(|(_, s)| s.as_ref()));
    waste::check(&mut f, cfg, &p.name, &c.inventory, c.idle.as_ref().map(|(_, s)| s.as_ref()), now);
    let cost_json = if p.cost { self::cost::check(&mut f, cfg, p, c, cost, now) } else { serde_json::Value::Null };
    let (name, kind, inv) = (p.name.as_str(), p.kind.as_str(), &c.inventory);
    let running = inv.instances.iter().filter(|i| i.state == InstanceState::Running).count();
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

pub(crate) fn fmt_time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "never".into(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string())
}
