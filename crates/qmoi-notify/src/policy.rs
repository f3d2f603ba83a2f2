//! Acknowledgements, silences and maintenance windows made in the dashboard (or with
//! `qmoi-supervisor maintenance`), read from its database (`data/history.db`, tables
//! `acks`, `silences` and `maintenance`; schema in crates/qmoi-dashboard/src/store.rs). A
//! window in force silences what it covers (a component, one subject of it, or the alerts
//! with some labels: `qmoi_core::maintenance`).

use crate::store::Cached;
use qmoi_core::report::Labels;
use qmoi_core::status::AlertLevel;
use rusqlite::{Connection, OptionalExtension};
use std::collections::HashSet;
use std::path::Path;

type Res<T> = rusqlite::Result<T>;

/// Acknowledgements and silences made in the dashboard (`data/history.db`).
#[derive(Debug, Default, Clone)]
pub struct Policy {
    pub acked: HashSet<String>,
    pub silences: Vec<Silence>,
    /// Maintenance windows in force.
    pub maintenance: Vec<qmoi_core::maintenance::Window>,
}

#[derive(Debug, Clone, Default)]
pub struct Silence {
    pub component: Option<String>,
    pub fingerprint: Option<String>,
    pub level: Option<String>,
}

impl Policy {
    /// Read the dashboard's tables once (see [`PolicyReader`] for the daemon).
    pub fn load(path: &Path, now_s: i64) -> Result<Self, String> {
        PolicyReader::new(path).read(now_s)
    }

    /// Whether the alert is silenced, or covered by a maintenance window in force.
    pub fn silenced(&self, component: &str, fingerprint: &str, level: AlertLevel, labels: &Labels) -> bool {
        self.silences.iter().any(|s| {
            s.component.as_deref().is_none_or(|c| c == component)
                && s.fingerprint.as_deref().is_none_or(|f| f == fingerprint)
                && s.level.as_deref().is_none_or(|l| l == level.as_str())
        }) || self.maintenance.iter().any(|w| w.of(component) && w.scope.covers(fingerprint, labels))
    }
}

/// Reads acknowledgements and silences from the dashboard's database, keeping one
/// read-only connection open between reads (reopened after an error, or once the file
/// appears).
pub struct PolicyReader {
    path: std::path::PathBuf,
    conn: Option<Connection>,
}

impl PolicyReader {
    pub fn new(path: &Path) -> Self {
        Self { path: path.to_path_buf(), conn: None }
    }

    /// A missing database means "no acknowledgements, no silences"; an unreadable one is
    /// an error the caller reports (and keeps the previous policy).
    pub fn read(&mut self, now_s: i64) -> Result<Policy, String> {
        if self.conn.is_none() {
            if !self.path.exists() {
                return Ok(Policy::default());
            }
            let conn = Connection::open_with_flags(&self.path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(|e| format!("{}: {e}", self.path.display()))?;
            let _ = conn.busy_timeout(std::time::Duration::from_secs(2));
            self.conn = Some(conn);
        }
        let Some(conn) = &self.conn else { return Ok(Policy::default()) };
        let read = || -> Res<Policy> {
            let mut p = Policy::default();
            if table_exists(conn, "acks")? {
                let mut st = conn.prepare_cached("SELECT fingerprint FROM acks")?;
                p.acked = st.query_map([], |r| r.get(0))?.collect::<Res<_>>()?;
            }
            p.maintenance = qmoi_core::maintenance::read(conn, now_s)?;
            p.maintenance.retain(|w| w.in_force(now_s));
            if table_exists(conn, "silences")? {
                let mut st = conn.prepare_cached(
                    "SELECT component, fingerprint, level FROM silences WHERE deleted_at IS NULL AND expires_at > ?1",
                )?;
                for row in st.query_map([now_s], |r| {
                    Ok(Silence { component: r.get(0)?, fingerprint: r.get(1)?, level: r.get(2)? })
                })? {
                    p.silences.push(row?);
                }
            }
            Ok(p)
        };
        let r = read().map_err(|e| format!("{}: {e}", self.path.display()));
        if r.is_err() {
            self.conn = None;
        }
        r
    }
}

fn table_exists(conn: &Connection, name: &str) -> Res<bool> {
    conn.row("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1", [name], |_| Ok(()))
        .optional()
        .map(|o| o.is_some())
}
