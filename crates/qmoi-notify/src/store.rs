//! `data/notification.db`: the notifier's durable state (SQLite, WAL).
//!
//! ```sql
//! alerts(fingerprint PRIMARY KEY, component, host, level, title, detail, since,  -- times: unix ms
//!        first_seen, notified_at, first_notified_at, notified_channels, escalation_step, am_sent_at,
//!        labels)                                                        -- labels: JSON object or NULL
//! queue(id, channel, group_key, not_before, level, retries, event)   -- events waiting for their group
//! outbox(id, msg_id, channel, target, created_at, attempts, max_attempts,
//!        next_attempt_at, last_error, message)                        -- messages to deliver
//! dead_letters(id, msg_id, channel, target, created_at, failed_at, attempts, last_error, message)
//! history(id, at, msg_id, channel, target, result, description, fingerprints, attempt, latency_ms, detail)
//! groups(channel, group_key, last_sent)    counters(channel, name, value)    suppressed(channel, count)
//! ```
//!
//! Every state change and the messages it causes are written in one transaction before
//! anything is sent; a delivered message leaves the outbox in the same transaction that
//! records it in the history. So after `kill -9` at any point, a restart delivers every
//! message that was due (at least once), and repeats none that was recorded as sent.

use crate::config::Sync;
use crate::model::Message;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use std::path::Path;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alerts (fingerprint TEXT PRIMARY KEY, component TEXT NOT NULL, host TEXT NOT NULL,
    level TEXT NOT NULL, title TEXT NOT NULL, detail TEXT NOT NULL, since INTEGER NOT NULL, first_seen INTEGER NOT NULL,
    notified_at INTEGER, first_notified_at INTEGER, notified_channels TEXT NOT NULL DEFAULT '[]',
    escalation_step INTEGER NOT NULL DEFAULT 0, am_sent_at INTEGER);
CREATE INDEX IF NOT EXISTS alerts_component ON alerts (component);
CREATE TABLE IF NOT EXISTS queue (id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, group_key TEXT NOT NULL,
    not_before INTEGER NOT NULL, level TEXT NOT NULL, retries INTEGER NOT NULL, event TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS queue_group ON queue (channel, group_key);
CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, msg_id TEXT NOT NULL, channel TEXT NOT NULL,
    target INTEGER NOT NULL, created_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL, next_attempt_at INTEGER NOT NULL, last_error TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_attempt_at);
CREATE TABLE IF NOT EXISTS dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, msg_id TEXT NOT NULL, channel TEXT NOT NULL,
    target INTEGER NOT NULL, created_at INTEGER NOT NULL, failed_at INTEGER NOT NULL, attempts INTEGER NOT NULL,
    last_error TEXT NOT NULL, message TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, msg_id TEXT NOT NULL,
    channel TEXT NOT NULL, target TEXT NOT NULL, result TEXT NOT NULL, description TEXT NOT NULL,
    fingerprints TEXT NOT NULL, attempt INTEGER NOT NULL, latency_ms INTEGER, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS history_at ON history (at);
CREATE TABLE IF NOT EXISTS groups (channel TEXT NOT NULL, group_key TEXT NOT NULL, last_sent INTEGER NOT NULL,
    PRIMARY KEY (channel, group_key));
CREATE TABLE IF NOT EXISTS counters (channel TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (channel, name));
CREATE TABLE IF NOT EXISTS suppressed (channel TEXT PRIMARY KEY, count INTEGER NOT NULL);
";

/// `PRAGMA user_version` migrations of `notification.db` (see `qmoi_core::sqlite`): version 1 is the
/// layout from before versioning, so an existing database opens as it is. Append a
/// migration here for every change of the schema; never edit one that has shipped.
/// Version 2: the labels of each alert (a JSON object; NULL for none).
const ALERT_LABELS: &str = "ALTER TABLE alerts ADD COLUMN labels TEXT;";

const MIGRATIONS: &[&str] = &[SCHEMA, ALERT_LABELS];

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct StoreError {
    pub path: String,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Attach the database path to SQLite errors.
pub trait Ctx<T> {
    fn ctx(self, path: &str) -> Result<T>;
}

impl<T> Ctx<T> for rusqlite::Result<T> {
    fn ctx(self, path: &str) -> Result<T> {
        self.map_err(|e| StoreError { path: path.to_string(), message: e.to_string() })
    }
}

pub struct Store {
    pub conn: Connection,
    pub path: String,
    /// The file found unreadable and moved aside when opening, for the report.
    pub note: Option<String>,
}

impl Store {
    /// Open (creating the folder, file and tables when missing).
    pub fn open(path: &Path, sync: Sync) -> Result<Self> {
        let p = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs_err::create_dir_all(dir).map_err(|e| StoreError { path: p.clone(), message: e.to_string() })?;
        }
        let (conn, note) = qmoi_core::sqlite::open_or_set_aside(path, |path| {
            let conn = Connection::open(path)?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", if sync == Sync::Full { "FULL" } else { "NORMAL" })?;
            qmoi_core::sqlite::migrate(&conn, &p, MIGRATIONS)?;
            Ok(conn)
        })
        .ctx(&p)?;
        Ok(Self { conn, path: p, note })
    }

    /// Open an existing database for reading (`--status`, `--history`).
    pub fn open_existing(path: &Path) -> Result<Self> {
        let p = path.display().to_string();
        if !path.exists() {
            return Err(StoreError {
                path: p,
                message: "no notification database yet (qmoi-notify has not run with this config)".into(),
            });
        }
        let conn = Connection::open(path).ctx(&p)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).ctx(&p)?;
        qmoi_core::sqlite::migrate(&conn, &p, MIGRATIONS).ctx(&p)?;
        Ok(Self { conn, path: p, note: None })
    }

    pub fn count(&self, table: &str) -> Result<u64> {
        // `table` is one of our own table names, never input.
        self.conn
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get::<_, i64>(0))
            .ctx(&self.path)
            .map(|n| n as u64)
    }

    pub fn counters(&self) -> Result<Vec<(String, String, u64)>> {
        let mut st =
            self.conn.prepare("SELECT channel, name, value FROM counters ORDER BY channel, name").ctx(&self.path)?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))).ctx(&self.path)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(&self.path)
    }

    pub fn history(&self, limit: u64) -> Result<Vec<HistoryRow>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT id, at, msg_id, channel, target, result, description, fingerprints, attempt, latency_ms, detail
                 FROM history ORDER BY id DESC LIMIT ?1",
            )
            .ctx(&self.path)?;
        let rows = st
            .query_map([limit as i64], |r| {
                Ok(HistoryRow {
                    id: r.get(0)?,
                    at: ms_to_rfc3339(r.get(1)?),
                    msg_id: r.get(2)?,
                    channel: r.get(3)?,
                    target: r.get(4)?,
                    result: r.get(5)?,
                    description: r.get(6)?,
                    fingerprints: r.get(7)?,
                    attempt: r.get(8)?,
                    latency_ms: r.get(9)?,
                    detail: r.get(10)?,
                })
            })
            .ctx(&self.path)?;
        let mut v = rows.collect::<rusqlite::Result<Vec<_>>>().ctx(&self.path)?;
        v.reverse();
        Ok(v)
    }

    pub fn pending(&self, limit: u64) -> Result<Vec<PendingRow>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT id, msg_id, channel, target, created_at, attempts, max_attempts, next_attempt_at, last_error, message
                 FROM outbox ORDER BY id LIMIT ?1",
            )
            .ctx(&self.path)?;
        let rows = st
            .query_map([limit as i64], |r| {
                let msg: String = r.get(9)?;
                Ok(PendingRow {
                    id: r.get(0)?,
                    msg_id: r.get(1)?,
                    channel: r.get(2)?,
                    target: r.get(3)?,
                    created_at: ms_to_rfc3339(r.get(4)?),
                    attempts: r.get(5)?,
                    max_attempts: r.get(6)?,
                    next_attempt_at: ms_to_rfc3339(r.get(7)?),
                    last_error: r.get(8)?,
                    description: describe(&msg),
                })
            })
            .ctx(&self.path)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(&self.path)
    }

    pub fn dead_letters(&self, limit: u64) -> Result<Vec<DeadRow>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT id, msg_id, channel, target, created_at, failed_at, attempts, last_error, message
                 FROM dead_letters ORDER BY id DESC LIMIT ?1",
            )
            .ctx(&self.path)?;
        let rows = st
            .query_map([limit as i64], |r| {
                let msg: String = r.get(8)?;
                Ok(DeadRow {
                    id: r.get(0)?,
                    msg_id: r.get(1)?,
                    channel: r.get(2)?,
                    target: r.get(3)?,
                    created_at: ms_to_rfc3339(r.get(4)?),
                    failed_at: ms_to_rfc3339(r.get(5)?),
                    attempts: r.get(6)?,
                    last_error: r.get(7)?,
                    description: describe(&msg),
                })
            })
            .ctx(&self.path)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(&self.path)
    }

    /// Put every dead letter back into the outbox (attempt counter reset). Returns how many.
    pub fn retry_dead(&mut self, now_ms: i64) -> Result<usize> {
        let tx = self.conn.transaction().ctx(&self.path)?;
        let n = tx
            .execute(
                "INSERT INTO outbox (msg_id, channel, target, created_at, attempts, max_attempts, next_attempt_at, last_error, message)
                 SELECT msg_id, channel, target, created_at, 0, MAX(attempts, 1), ?1, last_error, message FROM dead_letters ORDER BY id",
                [now_ms],
            )
            .ctx(&self.path)?;
        tx.execute("DELETE FROM dead_letters", []).ctx(&self.path)?;
        tx.commit().ctx(&self.path)?;
        Ok(n)
    }

    pub fn purge_dead(&mut self) -> Result<usize> {
        self.conn.execute("DELETE FROM dead_letters", []).ctx(&self.path)
    }

    /// Delete history past `max_age_ms` and beyond `max_rows`.
    pub fn prune_history(&self, now_ms: i64, max_age_ms: i64, max_rows: u64) -> Result<usize> {
        let mut n = self.conn.execute("DELETE FROM history WHERE at < ?1", [now_ms - max_age_ms]).ctx(&self.path)?;
        n += self
            .conn
            .execute(
                "DELETE FROM history WHERE id <= (SELECT id FROM history ORDER BY id DESC LIMIT 1 OFFSET ?1)",
                [max_rows as i64],
            )
            .ctx(&self.path)?;
        Ok(n)
    }

    pub fn oldest_pending_ms(&self) -> Result<Option<i64>> {
        self.conn
            .query_row("SELECT MIN(created_at) FROM outbox", [], |r| r.get::<_, Option<i64>>(0))
            .optional()
            .ctx(&self.path)
            .map(Option::flatten)
    }
}

fn describe(message_json: &str) -> String {
    serde_json::from_str::<Message>(message_json)
        .map_or_else(|e| format!("(unreadable message: {e})"), |m| m.describe())
}

pub fn ms_to_rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryRow {
    pub id: i64,
    pub at: String,
    pub msg_id: String,
    pub channel: String,
    pub target: String,
    /// sent | failed | dead | suppressed | delivered-internal
    pub result: String,
    pub description: String,
    pub fingerprints: String,
    pub attempt: i64,
    pub latency_ms: Option<i64>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PendingRow {
    pub id: i64,
    pub msg_id: String,
    pub channel: String,
    pub target: i64,
    pub created_at: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub next_attempt_at: String,
    pub last_error: String,
    pub description: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeadRow {
    pub id: i64,
    pub msg_id: String,
    pub channel: String,
    pub target: i64,
    pub created_at: String,
    pub failed_at: String,
    pub attempts: i64,
    pub last_error: String,
    pub description: String,
}

/// Statements through SQLite's prepared-statement cache: parsing SQL costs more than
/// running these small statements, and they run on the alert-to-notification path.
pub trait Cached {
    fn exec<P: rusqlite::Params>(&self, sql: &str, p: P) -> rusqlite::Result<usize>;
    fn row<T, P: rusqlite::Params, F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        p: P,
        f: F,
    ) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, p: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(p)
    }
    fn row<T, P: rusqlite::Params, F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        p: P,
        f: F,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(p, f)
    }
}

/// Add `by` to a counter.
pub fn bump(conn: &Connection, channel: &str, name: &str, by: u64) -> rusqlite::Result<()> {
    conn.exec(
        "INSERT INTO counters (channel, name, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (channel, name) DO UPDATE SET value = value + excluded.value",
        params![channel, name, by as i64],
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `notification.db` from before schema versions opens with its data (the outbox
    /// must survive an upgrade); one from a newer QMOI is refused with a message.
    #[test]
    fn databases_of_the_previous_layout_open_and_newer_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notification.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(SCHEMA).unwrap();
            c.execute("INSERT INTO counters (channel, name, value) VALUES ('hook', 'sent', 7)", []).unwrap();
        }
        let s = Store::open(&path, Sync::Normal).unwrap();
        let counters = s.counters().unwrap_or_default();
        assert!(counters.contains(&("hook".into(), "sent".into(), 7)), "{counters:?}");
        let v: i64 = s.conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap_or(-1);
        assert_eq!(v, i64::try_from(MIGRATIONS.len()).unwrap_or(0));
        s.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(s);
        let e = Store::open(&path, Sync::Normal).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("notification.db has schema version 99, newer than"), "{e}");
    }
}
