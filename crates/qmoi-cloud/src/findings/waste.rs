//! Waste: unattached volumes, unassociated public IPs, idle instances (info alerts, at
//! most [`MAX_WASTE_ALERTS`] per provider).

use super::{Found, MAX_WASTE_ALERTS, Waste};
use crate::config::CloudConfig;
use crate::model::{IdleSet, InstanceState, Inventory};
use chrono::{DateTime, Utc};
use qmoi_core::report::Alert;
use qmoi_core::{AlertLevel, CheckResult};
use std::collections::BTreeMap;

pub fn check(
    f: &mut Found,
    cfg: &CloudConfig,
    name: &str,
    inv: &Inventory,
    idle: Option<&IdleSet>,
    now: DateTime<Utc>,
) {
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
    if let Some(idle) = idle {
        for i in inv.instances.iter().filter(|i| i.state == InstanceState::Running) {
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
            labels: Default::default(),
        });
    }
    let waste_msg = summary(name, &f.waste, &by_kind);
    f.out.check(CheckResult::ok(format!("waste:{name}"), waste_msg));
}

/// The `waste:<provider>` message: how many findings of each kind, and how many were not
/// raised as alerts.
fn summary(name: &str, waste: &[Waste], by_kind: &BTreeMap<&str, usize>) -> String {
    if waste.is_empty() {
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
        let more = waste.len().saturating_sub(MAX_WASTE_ALERTS);
        let more = if more > 0 {
            format!(" ({more} beyond the first {MAX_WASTE_ALERTS} not raised as alerts)")
        } else {
            String::new()
        };
        format!(
            "{name}: {} waste finding{}: {}{more}",
            waste.len(),
            if waste.len() == 1 { "" } else { "s" },
            parts.join(", ")
        )
    }
}
