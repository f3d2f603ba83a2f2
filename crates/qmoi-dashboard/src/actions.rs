//! The admin actions — acknowledge, silence, end a silence, restart a component, the
//! supervisor-wide ones — in one copy for every API (REST in [`crate::http`], gRPC in
//! `qmoi-grpc`, GraphQL in `qmoi-graphql`): the checks, the store, the supervisor call, the
//! audit record and the live event. Each API only maps [`ActionError`] to its own codes.

use crate::auth::Identity;
use crate::config::Role;
use crate::hub::{AlertAction, AlertChange, Hub, unix_now};
use crate::store::{Ack, Matcher};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// The one audit record of an admin action, whichever API it came through: the audit
/// table and `logs/audit.log`.
pub async fn record_audit(
    store: &Arc<crate::store::Store>,
    audit_log: &std::path::Path,
    id: &Identity,
    remote: SocketAddr,
    action: &str,
    target: &str,
    result: &str,
) {
    let e = crate::store::AuditEntry {
        at: unix_now(),
        who: id.name.clone(),
        action: action.into(),
        target: target.into(),
        remote: remote.ip().to_string(),
        result: result.into(),
    };
    tracing::info!(who = %e.who, action, target, remote = %e.remote, result, "Audit.");
    let (store, path) = (store.clone(), audit_log.to_path_buf());
    let _ = tokio::task::spawn_blocking(move || {
        if let Err(x) = store.audit(&e) {
            tracing::warn!(error = %x, "Cannot write the audit table.");
        }
        let line = serde_json::json!({
            "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "who": e.who, "action": e.action, "target": e.target, "remote": e.remote, "result": e.result,
        });
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
            writeln!(f, "{line}")
        };
        if let Err(x) = write() {
            tracing::warn!(error = %x, path = %path.display(), "Cannot append to the audit log.");
        }
    })
    .await;
}

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionError {
    /// Admin role needed, or no auth configured (read-only).
    Forbidden(String),
    NotFound(String),
    Invalid(String),
    /// The database failed.
    Internal(String),
    /// The supervisor could not do it now.
    Unavailable(String),
}

impl std::fmt::Display for ActionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Forbidden(m) | Self::NotFound(m) | Self::Invalid(m) | Self::Internal(m) | Self::Unavailable(m) => {
                f.write_str(m)
            }
        }
    }
}

/// The supervisor-wide actions, as the CLI verbs of the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SupervisorAction {
    RestartAll,
    Reset,
    RestartDashboard,
}

impl SupervisorAction {
    /// The name in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RestartAll => "restart_all",
            Self::Reset => "reset",
            Self::RestartDashboard => "restart_dashboard",
        }
    }
}

/// A maintenance window to open ([`Ctx::add_maintenance`]).
#[derive(Debug, Clone, Copy)]
pub struct NewWindow<'a> {
    /// Empty or `*` with labels: every component.
    pub component: &'a str,
    /// One endpoint, check or target of the component (None: all of it).
    pub subject: Option<&'a str>,
    /// Only what carries all of these labels.
    pub labels: &'a qmoi_core::report::Labels,
    pub starts_at: i64,
    pub ends_at: i64,
    pub reason: &'a str,
}

/// Who acts, from where, against what.
pub struct Ctx<'a> {
    pub hub: &'a Arc<Hub>,
    pub backend: &'a dyn crate::Backend,
    pub audit_log: &'a Path,
    pub auth_enabled: bool,
    pub id: &'a Identity,
    pub remote: SocketAddr,
}

/// Admin actions: only with auth configured, and only for the admin role.
pub fn require_admin(auth_enabled: bool, id: &Identity) -> Result<(), ActionError> {
    if !auth_enabled {
        return Err(ActionError::Forbidden(
            "admin actions need [dashboard.auth] (tokens or users) in master_monitor.toml; without auth the dashboard is read-only"
                .into(),
        ));
    }
    if id.role < Role::Admin {
        return Err(ActionError::Forbidden(format!("'{}' has the read role; this needs admin", id.name)));
    }
    Ok(())
}

impl Ctx<'_> {
    pub fn require_admin(&self) -> Result<(), ActionError> {
        require_admin(self.auth_enabled, self.id)
    }

    async fn audit(&self, action: &str, target: &str, result: &str) {
        record_audit(&self.hub.store, self.audit_log, self.id, self.remote, action, target, result).await;
    }

    async fn on_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&crate::store::Store) -> Result<T, crate::store::StoreError> + Send + 'static,
    ) -> Result<T, ActionError> {
        let store = self.hub.store.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(ActionError::Internal(e.to_string())),
            Err(e) => Err(ActionError::Internal(e.to_string())),
        }
    }

    /// Acknowledge the firing alert `fp`.
    pub async fn acknowledge(&self, fp: &str, comment: String) -> Result<Ack, ActionError> {
        self.require_admin()?;
        if !self.hub.firing().iter().any(|f| f.alert.fingerprint == fp) {
            self.audit("ack", fp, "not firing").await;
            return Err(ActionError::NotFound(format!("no alert '{fp}' is firing")));
        }
        let a = Ack { by: self.id.name.clone(), at: unix_now(), comment };
        let (key, ack) = (fp.to_string(), a.clone());
        self.on_store(move |st| st.ack(&key, &ack)).await?;
        self.audit("ack", fp, "ok").await;
        self.hub.publish_alert(AlertChange {
            fingerprint: Some(fp.to_string()),
            acknowledged: Some(a.clone()),
            ..AlertChange::new(AlertAction::Acknowledged)
        });
        Ok(a)
    }

    /// Silence what `m` matches until `expires_at` (unix seconds). Returns the silence's id.
    pub async fn silence(&self, m: Matcher, expires_at: i64, comment: String) -> Result<i64, ActionError> {
        self.require_admin()?;
        if m.component.is_none() && m.fingerprint.is_none() && m.level.is_none() {
            return Err(ActionError::Invalid("a silence needs at least one of component, fingerprint, level".into()));
        }
        if let Some(l) = &m.level
            && !["critical", "warning", "info"].contains(&l.as_str())
        {
            return Err(ActionError::Invalid(format!("level must be critical, warning or info, got '{l}'")));
        }
        let now = unix_now();
        if expires_at <= now {
            return Err(ActionError::Invalid("the silence would already be expired".into()));
        }
        let target = serde_json::to_string(&m).unwrap_or_default();
        let who = self.id.name.clone();
        let sid = self.on_store(move |st| st.add_silence(&m, &who, now, expires_at, &comment)).await?;
        self.audit("silence", &target, &format!("id {sid}")).await;
        self.hub.publish_alert(AlertChange { silence: Some(sid), ..AlertChange::new(AlertAction::Silenced) });
        Ok(sid)
    }

    /// Open a maintenance window for `w.component` (or one subject of it) from
    /// `w.starts_at` to `w.ends_at` (unix seconds): it counts for nothing in the verdict
    /// and its alerts are not notified.
    pub async fn add_maintenance(&self, w: NewWindow<'_>) -> Result<crate::store::Maintenance, ActionError> {
        let NewWindow { component, subject, labels, starts_at, ends_at, reason } = w;
        self.require_admin()?;
        let now = unix_now();
        let any = component.is_empty() || component == qmoi_core::maintenance::ANY_COMPONENT;
        if any && labels.is_empty() {
            return Err(ActionError::Invalid(
                "give a component, or labels for a window over every component (team=payments)".into(),
            ));
        }
        if !any
            && (qmoi_core::component::find(component).is_none() || component == qmoi_core::component::MASTER_MONITOR)
        {
            let known: Vec<&str> = qmoi_core::component::monitor_ids().collect();
            return Err(ActionError::Invalid(format!(
                "component must be one of {}, got '{component}'",
                known.join(", ")
            )));
        }
        for (k, v) in labels {
            qmoi_core::alerts::check_label(k, v).map_err(ActionError::Invalid)?;
        }
        if labels.len() > 20 {
            return Err(ActionError::Invalid("at most 20 labels".into()));
        }
        let component = if any { qmoi_core::maintenance::ANY_COMPONENT } else { component };
        if reason.trim().is_empty() || reason.len() > 500 {
            return Err(ActionError::Invalid("give a reason (at most 500 characters): it is shown to everyone".into()));
        }
        if ends_at <= starts_at || ends_at <= now {
            return Err(ActionError::Invalid("the window must end after it starts, and in the future".into()));
        }
        if ends_at - starts_at > 30 * 86_400 {
            return Err(ActionError::Invalid("a window lasts at most 30 days".into()));
        }
        let subject = subject.map(str::trim).filter(|s| !s.is_empty());
        if let Some(s) = subject
            && (s.chars().count() > 200 || s.contains(':') || s.chars().any(char::is_control))
        {
            return Err(ActionError::Invalid(format!(
                "subject must be the name of an endpoint, check or target of {component} (no ':', at most 200 characters), got '{s}'"
            )));
        }
        let mut m = crate::store::Maintenance {
            id: 0,
            component: component.to_string(),
            subject: subject.map(str::to_string),
            labels: labels.clone(),
            reason: reason.trim().to_string(),
            created_by: self.id.name.clone(),
            created_at: now,
            starts_at,
            ends_at,
        };
        let row = m.clone();
        m.id = self.on_store(move |st| st.add_maintenance(&row)).await?;
        self.audit("maintenance", &m.scope(), &format!("id {} until {}", m.id, m.ends_at)).await;
        Ok(m)
    }

    /// End maintenance window `id` now.
    pub async fn end_maintenance(&self, id: i64) -> Result<(), ActionError> {
        self.require_admin()?;
        let now = unix_now();
        if !self.on_store(move |st| st.end_maintenance(id, now)).await? {
            return Err(ActionError::NotFound(format!("no maintenance window with id {id} is open")));
        }
        self.audit("maintenance_end", &id.to_string(), "ok").await;
        Ok(())
    }

    /// Restart one component; the supervisor's answer.
    pub async fn restart(&self, component: &str) -> Result<String, ActionError> {
        self.require_admin()?;
        let r = self.backend.restart(component);
        self.audit("restart", component, r.as_ref().map_or_else(String::as_str, |_| "ok")).await;
        r.map_err(ActionError::NotFound)
    }

    /// A supervisor-wide action; the supervisor's answer.
    pub async fn supervisor(&self, action: SupervisorAction) -> Result<String, ActionError> {
        self.require_admin()?;
        let r = match action {
            SupervisorAction::RestartAll => self.backend.restart_all(),
            SupervisorAction::Reset => self.backend.reset(),
            SupervisorAction::RestartDashboard => self.backend.restart_dashboard(),
        };
        self.audit(action.as_str(), "*", r.as_ref().map_or_else(String::as_str, |_| "ok")).await;
        r.map_err(ActionError::Unavailable)
    }

    /// End the active silence `sid`.
    pub async fn unsilence(&self, sid: i64) -> Result<(), ActionError> {
        self.require_admin()?;
        let now = unix_now();
        if !self.on_store(move |st| st.delete_silence(sid, now)).await? {
            return Err(ActionError::NotFound(format!("no active silence with id {sid}")));
        }
        self.audit("unsilence", &sid.to_string(), "ok").await;
        self.hub.publish_alert(AlertChange { silence: Some(sid), ..AlertChange::new(AlertAction::Unsilenced) });
        Ok(())
    }
}
