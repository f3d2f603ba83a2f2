//! Instances: a critical instance not running, failed status checks, high CPU.

use super::{Found, mean};
use crate::config::CloudConfig;
use crate::model::{CpuSeries, InstanceState, Inventory};
use qmoi_core::{CheckResult, Status};

pub fn check(f: &mut Found, cfg: &CloudConfig, name: &str, inv: &Inventory, cpu: Option<&CpuSeries>) {
    for i in &inv.instances {
        let label = if i.name.is_empty() || i.name == i.id { i.id.clone() } else { format!("{} ({})", i.name, i.id) };
        if i.critical && i.state != InstanceState::Running {
            let status = if i.state == InstanceState::Pending { Status::Warning } else { Status::Critical };
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
        if i.state != InstanceState::Running {
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
}
