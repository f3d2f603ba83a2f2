//! Live reload (SIGHUP or `qmoi-supervisor reload`): what changed between the running
//! plan and the configuration on disk now.
//!
//! A component is restarted only when its entry in the master config, its own config
//! file or its binary changed ([`Fingerprint`]); every other component keeps its
//! process. The supervisor-wide settings that need no listener (`[restart]`, `[alerts]`,
//! `[[maintenance]]`) are applied at once; the sections that own listeners or folders
//! are listed as waiting for a restart of the supervisor ([`pending_restart`]).

use crate::config::{ComponentSpec, MasterConfig, Plan};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;

/// What decides whether a running component must be restarted by a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// The resolved entry (`[monitoring_components.<id>]`: command, args, interval …).
    entry: String,
    /// A digest of the component's config file (`None`: no file; `Some(0)`: unreadable).
    config: Option<u64>,
    /// Device, inode, size and modification time of the binary (replaced on upgrade).
    binary: Option<(u64, u64, u64, i64, i64)>,
}

impl Fingerprint {
    /// Read the component's config file and look at its binary now.
    pub fn of(spec: &ComponentSpec) -> Self {
        let config = spec.config.as_ref().map(|p| match std::fs::read(p) {
            Ok(bytes) => {
                let mut h = std::hash::DefaultHasher::new();
                bytes.hash(&mut h);
                h.finish() | 1
            }
            Err(_) => 0,
        });
        let binary = spec
            .binary
            .as_ref()
            .ok()
            .and_then(|b| std::fs::metadata(b).ok())
            .map(|m| (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()));
        Self { entry: serde_json::to_string(spec).unwrap_or_default(), config, binary }
    }

    /// Why `self` (new) differs from `old`, for the reload's answer; `None` when equal.
    pub fn why_changed(&self, old: &Self, spec: &ComponentSpec) -> Option<String> {
        let mut why = Vec::new();
        if self.entry != old.entry {
            why.push(format!("its [monitoring_components.{}] entry changed", spec.id));
        }
        if self.config != old.config {
            why.push(match &spec.config {
                Some(p) => format!("{} changed", p.display()),
                None => "its config file is gone".into(),
            });
        }
        if self.binary != old.binary {
            why.push("its binary changed".into());
        }
        (!why.is_empty()).then(|| why.join(", "))
    }
}

/// The fingerprint of every component of `plan`, by id.
pub fn fingerprints(plan: &Plan) -> HashMap<String, Fingerprint> {
    plan.components.iter().map(|s| (s.id.clone(), Fingerprint::of(s))).collect()
}

/// Why each component of `plan` will run with new settings (absent: it keeps its
/// process): its fingerprint differs from the running one, or it is new.
pub fn changed(
    plan: &Plan,
    old: &HashMap<String, Fingerprint>,
    new: &HashMap<String, Fingerprint>,
) -> HashMap<String, String> {
    plan.components
        .iter()
        .filter_map(|s| {
            let why = match (old.get(&s.id), new.get(&s.id)) {
                (Some(o), Some(n)) => n.why_changed(o, s)?,
                _ => "added".into(),
            };
            Some((s.id.clone(), why))
        })
        .collect()
}

/// The sections of the master config a reload cannot apply to a running supervisor
/// (they own its listeners, folders and pushers), when they changed: `[grpc]`, … The
/// dashboard's own section is [`qmoi_dashboard::Dashboard::reconfigure`]'s to judge.
pub fn pending_restart(old: &MasterConfig, new: &MasterConfig) -> Vec<String> {
    let differs = |a: &dyn erased::Json, b: &dyn erased::Json| a.json() != b.json();
    let mut out = Vec::new();
    for (name, a, b) in [
        ("[paths]", &old.paths as &dyn erased::Json, &new.paths as &dyn erased::Json),
        ("[report]", &old.report, &new.report),
        ("[grpc]", &old.grpc, &new.grpc),
        ("[fleet]", &old.fleet, &new.fleet),
        ("[remote_write]", &old.remote_write, &new.remote_write),
    ] {
        if differs(a, b) {
            out.push(name.to_string());
        }
    }
    if old.dashboard.enabled != new.dashboard.enabled {
        out.push("[dashboard] enabled".into());
    }
    out
}

/// The supervisor-wide settings a reload applies at once, when they changed.
pub fn applied_settings(old: &MasterConfig, new: &MasterConfig) -> Vec<String> {
    let mut out = Vec::new();
    let json = |v: &dyn erased::Json| v.json();
    if json(&old.restart) != json(&new.restart) {
        out.push("[restart] applied".to_string());
    }
    if json(&old.alerts) != json(&new.alerts) {
        out.push("[alerts] applied".to_string());
    }
    if json(&old.maintenance) != json(&new.maintenance) {
        out.push("[[maintenance]] applied".to_string());
    }
    out
}

/// Comparing sections by their serialized form. Secrets serialize masked, so a section
/// whose only change is a secret's value is not seen as changed (documented: restart the
/// supervisor after changing a secret of these sections).
mod erased {
    pub trait Json {
        fn json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Plan;

    fn plan(dir: &std::path::Path, master: &str) -> Plan {
        let path = dir.join("master_monitor.toml");
        std::fs::write(&path, master).unwrap();
        let cfg: MasterConfig = qmoi_core::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        Plan::new(cfg, Some(path))
    }

    #[test]
    fn only_what_changed_counts() {
        let dir = tempfile::tempdir().unwrap();
        let base = "[monitoring_components.system_health]\ncommand = \"/bin/true\"\n\
                    [monitoring_components.security]\ncommand = \"/bin/true\"\n";
        std::fs::write(dir.path().join("security.toml"), "interval = \"10s\"\n").unwrap();
        let a = plan(dir.path(), base);
        let fa = fingerprints(&a);
        // The same files: nothing changed.
        let b = plan(dir.path(), base);
        let fb = fingerprints(&b);
        for s in &b.components {
            assert_eq!(fb[&s.id].why_changed(&fa[&s.id], s), None, "{}", s.id);
        }
        // The component's own file.
        std::fs::write(dir.path().join("security.toml"), "interval = \"20s\"\n").unwrap();
        let c = plan(dir.path(), base);
        let fc = fingerprints(&c);
        let sec = c.components.iter().find(|s| s.id == "security").unwrap();
        let why = fc["security"].why_changed(&fa["security"], sec).unwrap();
        assert!(why.contains("security.toml changed"), "{why}");
        let sh = c.components.iter().find(|s| s.id == "system_health").unwrap();
        assert_eq!(fc["system_health"].why_changed(&fa["system_health"], sh), None);
        // Its entry in the master config.
        let d =
            plan(dir.path(), &base.replacen("command = \"/bin/true\"\n", "command = \"/bin/true\"\ninterval = 5\n", 1));
        let fd = fingerprints(&d);
        let why = fd["system_health"].why_changed(&fa["system_health"], sh).unwrap();
        assert!(why.contains("[monitoring_components.system_health] entry changed"), "{why}");
    }

    #[test]
    fn listeners_wait_for_a_restart_and_policies_apply_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let sh = "[monitoring_components.system_health]\n";
        let a = plan(dir.path(), &format!("[grpc]\nport = 0\n{sh}"));
        let b = plan(dir.path(), &format!("[grpc]\nport = 0\n[restart]\nmax_restarts = 9\n{sh}"));
        assert!(pending_restart(&a.config, &b.config).is_empty());
        assert_eq!(applied_settings(&a.config, &b.config), ["[restart] applied"]);
        let c = plan(dir.path(), &format!("[grpc]\nport = 1\n{sh}"));
        assert_eq!(pending_restart(&a.config, &c.config), ["[grpc]"]);
        assert!(applied_settings(&a.config, &c.config).is_empty());
    }
}
