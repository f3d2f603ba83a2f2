//! The `slo` of an endpoint or a check, and the monitor's `[slo]` table.

use crate::AlertLevel;
use crate::config::{ConfigDuration, EnvString, Problems};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::time::Duration;

/// An objective: `slo = { objective = 99.9, window = "30d" }`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloTarget {
    /// Percent that must be good (e.g. 99.9).
    pub objective: f64,
    /// The rolling window it is measured over (1h to 90d; default 30d).
    #[serde(default = "thirty_days")]
    pub window: ConfigDuration,
}

fn thirty_days() -> ConfigDuration {
    ConfigDuration::from_secs(30 * 86_400)
}

impl SloTarget {
    /// The problems of the objective at `key` (e.g. `endpoints[3].slo`), whose
    /// monitor keeps hour buckets for `keep`.
    pub fn validate(&self, p: &mut Problems, key: &str, keep: ConfigDuration) {
        if !(self.objective > 0.0 && self.objective < 100.0) {
            p.push(format!("{key}.objective"), format!("must be a percentage below 100, got '{}'", self.objective));
        }
        if self.window.get() < Duration::from_secs(3600) || self.window.get() > Duration::from_secs(90 * 86_400) {
            p.push(format!("{key}.window"), format!("must be from 1h to 90d, got '{}'", self.window));
        }
        if self.window > keep {
            p.push(format!("{key}.window"), format!("must not exceed slo.keep ('{keep}')"));
        }
    }
}

/// `[slo]`: shared by every objective of a monitor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SloSettings {
    /// Minute and hour buckets of every objective (SQLite) [default:
    /// `data/<component>_slo.db`].
    pub database: Option<EnvString>,
    /// The dashboard's database, read for the component's maintenance windows (what
    /// happens in one counts for no objective).
    pub maintenance_database: EnvString,
    /// Hour buckets are kept this long (the monthly report reads them).
    pub keep: ConfigDuration,
    /// `[[slo.burn_alerts]]`: multiwindow, multi-burn-rate alerts.
    pub burn_alerts: Vec<BurnAlert>,
}

impl Default for SloSettings {
    fn default() -> Self {
        Self {
            database: None,
            maintenance_database: EnvString::from("data/history.db"),
            keep: ConfigDuration::from_secs(400 * 86_400),
            burn_alerts: default_burn_alerts(),
        }
    }
}

/// The SRE workbook's pair: page at 14.4 over 1 h and 5 min (2% of a 30-day budget in an
/// hour), ticket at 6 over 6 h and 30 min (5% in six hours).
fn default_burn_alerts() -> Vec<BurnAlert> {
    let rule = |name: &str, level, long, short, burn| BurnAlert {
        name: name.into(),
        level,
        long: ConfigDuration::from_secs(long),
        short: ConfigDuration::from_secs(short),
        burn,
    };
    vec![rule("page", AlertLevel::Critical, 3600, 300, 14.4), rule("ticket", AlertLevel::Warning, 6 * 3600, 1800, 6.0)]
}

/// One burn-rate alert: fires when the error budget burns at least `burn` times as fast
/// as the objective allows, over both `long` and `short`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurnAlert {
    /// Named in the check and the report (`page`, `ticket`).
    pub name: String,
    pub level: AlertLevel,
    pub long: ConfigDuration,
    pub short: ConfigDuration,
    pub burn: f64,
}

impl SloSettings {
    /// Where the buckets of `component`'s objectives are.
    pub fn database_of(&self, component: &str) -> std::path::PathBuf {
        match &self.database {
            Some(d) => d.as_str().into(),
            None => format!("data/{component}_slo.db").into(),
        }
    }

    pub fn validate(&self, p: &mut Problems) {
        if self.keep.get() < Duration::from_secs(86_400) {
            p.push("slo.keep", format!("must be at least 1d, got '{}'", self.keep));
        }
        let mut names = HashSet::new();
        for (i, r) in self.burn_alerts.iter().enumerate() {
            let key = format!("slo.burn_alerts[{i}]");
            if r.name.trim().is_empty() || !names.insert(r.name.as_str()) {
                p.push(format!("{key}.name"), format!("must be set and unique, got '{}'", r.name));
            }
            if r.level == AlertLevel::Info {
                p.push(format!("{key}.level"), "must be warning or critical");
            }
            if !(r.burn.is_finite() && r.burn > 0.0) {
                p.push(format!("{key}.burn"), format!("must be a rate above 0, got '{}'", r.burn));
            }
            if r.short.get() < Duration::from_secs(60) || r.short >= r.long {
                p.push(format!("{key}.short"), format!("must be at least 1m and shorter than long, got '{}'", r.short));
            }
            if r.long.get() > Duration::from_secs(48 * 3600) {
                p.push(format!("{key}.long"), format!("must be at most 48h, got '{}'", r.long));
            }
        }
    }
}
