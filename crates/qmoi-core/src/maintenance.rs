//! Maintenance windows as every reader sees them: the dashboard keeps them in
//! `data/history.db` (table `maintenance`, schema in crates/qmoi-dashboard/src/store.rs),
//! the supervisor, the notifier and the monitors that count availability read them here.
//!
//! A window covers a component, or a part of it ([`Scope`]): one subject, the checks and
//! alerts with some labels, or both. A window of labels may be of every component
//! ([`ANY_COMPONENT`]).

use crate::alerts::Scope;
use crate::report::Labels;
use rusqlite::{Connection, OptionalExtension};

/// The `component` of a window of labels over all components.
pub const ANY_COMPONENT: &str = "*";

/// One open window (not ended early) as the readers need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub component: String,
    pub scope: Scope,
    /// `[starts_at, ends_at)` in unix seconds.
    pub starts_at: i64,
    pub ends_at: i64,
}

impl Window {
    /// A window of `component` (its own, or one of labels over every component).
    pub fn of(&self, component: &str) -> bool {
        self.component == component || self.component == ANY_COMPONENT
    }

    pub fn in_force(&self, t: i64) -> bool {
        self.starts_at <= t && t < self.ends_at
    }
}

/// The `labels` column: a JSON object of strings, or NULL.
pub fn labels_from_column(text: Option<&str>) -> Labels {
    text.and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default()
}

/// What goes into the `labels` column (NULL for none).
pub fn labels_to_column(labels: &Labels) -> Option<String> {
    (!labels.is_empty()).then(|| serde_json::to_string(labels).unwrap_or_default())
}

/// The windows not ended early that end after `now` (in force or to come). A database
/// without the table has none; one from before windows of a subject or of labels has
/// no such columns, and its windows cover whole components.
pub fn read(conn: &Connection, now: i64) -> rusqlite::Result<Vec<Window>> {
    let exists = conn
        .query_row("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'maintenance'", [], |_| Ok(()))
        .optional()?
        .is_some();
    if !exists {
        return Ok(Vec::new());
    }
    let columns: Vec<String> = conn
        .prepare_cached("SELECT name FROM pragma_table_info('maintenance')")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let has = |c: &'static str| -> &'static str { if columns.iter().any(|n| n == c) { c } else { "NULL" } };
    let sql = format!(
        "SELECT component, {}, {}, starts_at, ends_at FROM maintenance WHERE ended_at IS NULL AND ends_at > ?1",
        has("subject"),
        has("labels")
    );
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map([now], |r| {
        let labels: Option<String> = r.get(2)?;
        Ok(Window {
            component: r.get(0)?,
            scope: Scope { subject: r.get(1)?, labels: labels_from_column(labels.as_deref()) },
            starts_at: r.get(3)?,
            ends_at: r.get(4)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_layout_of_the_table() {
        let conn = Connection::open_in_memory().unwrap();
        assert!(read(&conn, 0).unwrap().is_empty());
        conn.execute_batch(
            "CREATE TABLE maintenance (id INTEGER PRIMARY KEY, component TEXT NOT NULL, reason TEXT NOT NULL,
               created_by TEXT NOT NULL, created_at INTEGER NOT NULL, starts_at INTEGER NOT NULL,
               ends_at INTEGER NOT NULL, ended_at INTEGER);
             INSERT INTO maintenance VALUES (1, 'backup', 'r', 'ops', 0, 10, 20, NULL);
             INSERT INTO maintenance VALUES (2, 'backup', 'r', 'ops', 0, 10, 20, 15);
             INSERT INTO maintenance VALUES (3, 'backup', 'r', 'ops', 0, 1, 5, NULL);",
        )
        .unwrap();
        let w = read(&conn, 6).unwrap();
        assert_eq!(w.len(), 1);
        assert!(w[0].scope.all() && w[0].of("backup") && !w[0].of("cloud") && w[0].in_force(10) && !w[0].in_force(20));
        conn.execute_batch(
            "ALTER TABLE maintenance ADD COLUMN subject TEXT;
             ALTER TABLE maintenance ADD COLUMN labels TEXT;
             INSERT INTO maintenance VALUES (4, '*', 'r', 'ops', 0, 10, 20, NULL, NULL, '{\"team\":\"payments\"}');",
        )
        .unwrap();
        let w = read(&conn, 6).unwrap();
        assert_eq!(w[1].scope.labels, crate::alerts::parse_labels("team=payments").unwrap());
        assert!(w[1].of("heartbeats") && w[1].of("api_endpoints"));
        assert_eq!(labels_to_column(&w[1].scope.labels).as_deref(), Some("{\"team\":\"payments\"}"));
        assert_eq!(labels_to_column(&Labels::new()), None);
    }
}
