//! Temperatures of the sensors the kernel exposes (hwmon, thermal zones). Many virtual
//! machines expose none: that is reported in the details, not as a problem.

use super::Collected;
use crate::SystemHealthConfig;
use qmoi_core::threshold::Threshold;
use sysinfo::Components;

pub fn check(cfg: &SystemHealthConfig, components: Option<&mut Components>, out: &mut Collected) {
    let Some(components) = components else {
        out.detail("temperatures", serde_json::json!({"note": "sensors are not available on this system"}));
        return;
    };
    components.refresh(true);
    let t = Threshold::above(cfg.temperature.warning, cfg.temperature.critical);
    let mut table = Vec::new();
    for c in components.iter() {
        let Some(temp) = c.temperature().map(f64::from).filter(|v| v.is_finite()) else {
            continue;
        };
        let label = c.label();
        out.checks.push(
            t.check(format!("temperature:{label}"), &format!("{label} temperature"), temp, "celsius", |v| {
                format!("{v:.1} °C")
            })
            .with_title(format!("{label} at {temp:.1} °C")),
        );
        out.metric("qmoi_temperature_celsius", &[("sensor", label)], temp);
        table.push(serde_json::json!({"sensor": label, "celsius": temp}));
    }
    if table.is_empty() {
        out.detail("temperatures", serde_json::json!({"note": "no temperature sensors exposed by the kernel"}));
    } else {
        out.detail("temperatures", serde_json::Value::Array(table));
    }
}
