//! The running components: one supervising task each ([`crate::supervise`]), their
//! command channels and ready signals, and how a reload brings them in line with a new
//! plan ([`Monitors::reconcile`]).

use crate::config::{ComponentSpec, Plan};
use crate::state::{ComponentStatus, Shared};
use crate::supervise::{Apply, Cmd, Task};
use crate::{Error, process, reload};
use qmoi_core::cli::CommonArgs;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{Notify, mpsc, watch};

/// The running components: one task each, and what a reload compares and needs to start
/// one more.
pub struct Monitors {
    /// The plan in force (the last one a reload applied).
    pub plan: Plan,
    pub fingerprints: HashMap<String, reload::Fingerprint>,
    pub cmds: HashMap<String, mpsc::Sender<Cmd>>,
    ready: HashMap<String, watch::Receiver<bool>>,
    pub tasks: tokio::task::JoinSet<()>,
    spawner: Arc<process::Spawner>,
    shared: Shared,
    changed: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
    /// Report and log folders.
    dirs: (PathBuf, PathBuf),
}

impl Monitors {
    /// The ready signals of `spec`'s dependencies.
    fn deps(&self, spec: &ComponentSpec) -> Vec<(String, watch::Receiver<bool>)> {
        spec.depends_on.iter().filter_map(|d| self.ready.get(d).map(|rx| (d.clone(), rx.clone()))).collect()
    }

    /// Start the task of one more component (it starts its monitor once its
    /// dependencies are ready).
    fn spawn(&mut self, spec: &ComponentSpec) {
        self.shared.lock().insert(
            spec.id.clone(),
            ComponentStatus::new(&spec.id, spec.priority, spec.interval.as_secs(), spec.stale_after.as_secs()),
        );
        let (ready_tx, ready_rx) = watch::channel(false);
        let deps = self.deps(spec);
        self.ready.insert(spec.id.clone(), ready_rx);
        let (cmd_tx, cmd_rx) = mpsc::channel(8);
        self.cmds.insert(spec.id.clone(), cmd_tx);
        let task = Task::new(
            spec.clone(),
            self.plan.config.restart.clone(),
            self.plan.config.alerts.auto_restart,
            self.shared.clone(),
            self.spawner.clone(),
            self.dirs.clone(),
            deps,
            ready_tx,
            cmd_rx,
            self.shutdown.clone(),
            self.changed.clone(),
        );
        self.tasks.spawn(task.run());
    }

    /// Bring the tasks in line with `plan` (already validated): stop the removed
    /// components, start the added ones, hand every other its new settings (`why` names
    /// those to restart, with the reason). What changed, for the reload's answer, and the
    /// commands to send once the lock is let go.
    pub fn reconcile(
        &mut self,
        plan: &Plan,
        fingerprints: HashMap<String, reload::Fingerprint>,
        why: &HashMap<String, String>,
    ) -> (Vec<String>, Vec<(mpsc::Sender<Cmd>, Cmd)>) {
        let mut changes = Vec::new();
        let mut sends = Vec::new();
        let mut gone: Vec<String> =
            self.cmds.keys().filter(|id| !plan.components.iter().any(|s| &s.id == *id)).cloned().collect();
        gone.sort();
        for id in gone {
            if let Some(tx) = self.cmds.remove(&id) {
                sends.push((tx, Cmd::Remove));
            }
            self.ready.remove(&id);
            changes.push(format!("{id}: stopped (removed from the configuration)"));
        }
        let old = std::mem::replace(&mut self.plan, plan.clone());
        for s in &plan.components {
            let Some(tx) = self.cmds.get(&s.id).cloned() else {
                self.spawn(s);
                changes.push(format!("{}: {}", s.id, if s.enabled { "started (added)" } else { "added (disabled)" }));
                continue;
            };
            let was_enabled = old.components.iter().any(|o| o.id == s.id && o.enabled);
            let w = why.get(&s.id);
            let apply = Apply {
                spec: s.clone(),
                restart: plan.config.restart.clone(),
                auto_restart: plan.config.alerts.auto_restart,
                deps: self.deps(s),
                restart_now: w.is_some() && s.enabled,
            };
            sends.push((tx, Cmd::Apply(Box::new(apply))));
            match (was_enabled, s.enabled, w) {
                (true, false, _) => changes.push(format!("{}: stopped (enabled = false)", s.id)),
                (false, true, _) => changes.push(format!("{}: started (enabled)", s.id)),
                (true, true, Some(w)) => changes.push(format!("{}: restarted ({w})", s.id)),
                _ => {}
            }
        }
        self.fingerprints = fingerprints;
        (changes, sends)
    }
}

/// One task per component (started in dependency order by the tasks themselves).
pub fn start_monitors(
    plan: &Plan,
    common: &CommonArgs,
    shared: &Shared,
    changed: &Arc<Notify>,
    shutdown: &watch::Receiver<bool>,
) -> Result<Monitors, Error> {
    let spawner = Arc::new(
        process::Spawner::start(tokio::runtime::Handle::current())
            .map_err(|e| Error::Runtime(format!("cannot start the spawner thread: {e}")))?,
    );
    let mut m = Monitors {
        plan: plan.clone(),
        fingerprints: reload::fingerprints(plan),
        cmds: HashMap::new(),
        ready: HashMap::new(),
        tasks: tokio::task::JoinSet::new(),
        spawner,
        shared: shared.clone(),
        changed: changed.clone(),
        shutdown: shutdown.clone(),
        dirs: (common.report_dir.clone(), common.log_dir.clone()),
    };
    for spec in &plan.components {
        m.spawn(spec);
    }
    Ok(m)
}
