//! What the parts of one run found: checks, metrics and a details section per part.

use qmoi_core::CheckResult;
use qmoi_core::report::metric_key;
use qmoi_core::runner::Outcome;
use std::collections::BTreeMap;

#[derive(Debug, Default, Clone)]
pub struct Found {
    pub checks: Vec<CheckResult>,
    pub metrics: BTreeMap<String, f64>,
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl Found {
    pub fn check(&mut self, c: CheckResult) {
        self.checks.push(c);
    }

    pub fn metric(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        if value.is_finite() {
            self.metrics.insert(metric_key(name, labels), value);
        }
    }

    pub fn detail(&mut self, key: &str, value: serde_json::Value) {
        self.details.insert(key.to_string(), value);
    }

    pub fn extend(&mut self, other: Found) {
        self.checks.extend(other.checks);
        self.metrics.extend(other.metrics);
        self.details.extend(other.details);
    }

    pub fn into_outcome(self) -> Outcome {
        Outcome {
            checks: self.checks,
            metrics: self.metrics,
            alerts: Vec::new(),
            details: qmoi_core::report::Details::of(&self.details),
        }
    }
}
