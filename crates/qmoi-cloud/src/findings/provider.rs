//! The provider as a whole: reachable, listed, its API errors and its counts.

use super::{Collection, Found};
use crate::config::{CloudConfig, Provider};
use crate::model::{InstanceState, Inventory};
use qmoi_core::CheckResult;
use std::collections::BTreeMap;

/// The APIs that list instances: when they fail and nothing was listed, the provider is
/// unknown as a whole.
const INSTANCE_APIS: [&str; 3] = ["ec2:DescribeInstances", "compute:virtualMachines", "compute:instances"];

/// `provider:<name>` and one `api:` check per failed call.
pub fn check(f: &mut Found, cfg: &CloudConfig, p: &Provider, c: &Collection) {
    let name = p.name.as_str();
    let kind = p.kind.as_str();
    let inv = &c.inventory;
    let running = inv.instances.iter().filter(|i| i.state == InstanceState::Running).count();
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
}

/// Instances, volumes and public IPs per region and state.
pub fn counts(f: &mut Found, name: &str, inv: &Inventory) {
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
}
