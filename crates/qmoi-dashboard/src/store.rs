//! `data/history.db`: SQLite (bundled, WAL) holding metric history at three resolutions,
//! acknowledgements, silences, alert history and the audit trail.
//!
//! Tables other processes may read (the notifier honours acks and silences):
//!
//! ```sql
//! acks(fingerprint TEXT PRIMARY KEY, by TEXT, at INTEGER, comment TEXT)          -- unix seconds
//! silences(id INTEGER PRIMARY KEY, component TEXT, fingerprint TEXT, level TEXT, -- NULL = any
//!          created_by TEXT, created_at INTEGER, expires_at INTEGER, comment TEXT,
//!          deleted_at INTEGER)                                                   -- NULL = active
//! ```
//!
//! History: every report's metrics go to `samples_raw` and are folded into per-minute and
//! per-hour aggregates as they arrive (`sum`, `count`, `min`, `max`), so downsampling needs
//! no batch job; `prune` deletes each resolution past its retention, which bounds the file.

use crate::config::HistoryRetention;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
#[error("history database {path}: {source}")]
pub struct StoreError {
    path: String,
    #[source]
    source: rusqlite::Error,
}

pub struct Store {
    conn: Mutex<Connection>,
    path: String,
    /// The file found unreadable and moved aside when opening, for the report.
    pub note: Option<String>,
    series: Mutex<HashMap<(String, String), i64>>,
    retention: HistoryRetention,
}

/// Set on every open (they cannot run inside a migration's transaction).
const PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY, component TEXT NOT NULL, metric TEXT NOT NULL, UNIQUE (component, metric));
CREATE TABLE IF NOT EXISTS samples_raw (series INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL, PRIMARY KEY (series, ts)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS samples_1m (series INTEGER NOT NULL, ts INTEGER NOT NULL, sum REAL NOT NULL, count INTEGER NOT NULL, min REAL NOT NULL, max REAL NOT NULL, PRIMARY KEY (series, ts)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS samples_1h (series INTEGER NOT NULL, ts INTEGER NOT NULL, sum REAL NOT NULL, count INTEGER NOT NULL, min REAL NOT NULL, max REAL NOT NULL, PRIMARY KEY (series, ts)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS acks (fingerprint TEXT PRIMARY KEY, by TEXT NOT NULL, at INTEGER NOT NULL, comment TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS silences (id INTEGER PRIMARY KEY AUTOINCREMENT, component TEXT, fingerprint TEXT, level TEXT,
    created_by TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, comment TEXT NOT NULL DEFAULT '', deleted_at INTEGER);
CREATE TABLE IF NOT EXISTS alert_history (id INTEGER PRIMARY KEY AUTOINCREMENT, fingerprint TEXT NOT NULL, component TEXT NOT NULL,
    level TEXT NOT NULL, title TEXT NOT NULL, detail TEXT NOT NULL, started_at INTEGER NOT NULL, ended_at INTEGER);
CREATE INDEX IF NOT EXISTS alert_history_open ON alert_history (fingerprint, ended_at);
CREATE TABLE IF NOT EXISTS audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, who TEXT NOT NULL, action TEXT NOT NULL,
    target TEXT NOT NULL, remote TEXT NOT NULL, result TEXT NOT NULL);
";

/// `PRAGMA user_version` migrations of `history.db` (see `qmoi_core::sqlite`): version 1 is the
/// layout from before versioning, so an existing database opens as it is. Append a
/// migration here for every change of the schema; never edit one that has shipped.
/// Version 2: maintenance windows.
const MAINTENANCE: &str = "
CREATE TABLE IF NOT EXISTS maintenance (id INTEGER PRIMARY KEY AUTOINCREMENT, component TEXT NOT NULL,
    reason TEXT NOT NULL, created_by TEXT NOT NULL, created_at INTEGER NOT NULL, starts_at INTEGER NOT NULL,
    ends_at INTEGER NOT NULL, ended_at INTEGER);
";

/// Version 3: a window for one subject of a component (an endpoint, a heartbeat check).
const MAINTENANCE_SUBJECT: &str = "ALTER TABLE maintenance ADD COLUMN subject TEXT;";

/// Version 4: a window of labels (a JSON object of strings), of one component or of all
/// (`component` = `*`).
const MAINTENANCE_LABELS: &str = "ALTER TABLE maintenance ADD COLUMN labels TEXT;";

const MIGRATIONS: &[&str] = &[SCHEMA, MAINTENANCE, MAINTENANCE_SUBJECT, MAINTENANCE_LABELS];

/// A maintenance window from `starts_at` to `ends_at` (unix seconds): without `subject`
/// or `labels`, `component` counts for nothing in the verdict and its alerts are not
/// notified; with a subject, only that subject of it (its checks and alerts are those
/// whose name ends in `:<subject>`: `endpoint:checkout`, `slo:checkout`,
/// `heartbeat:nightly`); with labels, only the checks and alerts carrying all of them
/// (of every component when `component` is `*`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Maintenance {
    pub id: i64,
    pub component: String,
    /// An endpoint, a heartbeat check, a backup target … of `component` (None: all of it).
    #[serde(default)]
    pub subject: Option<String>,
    /// The labels what it covers must carry (an endpoint's, a heartbeat check's).
    #[serde(default, skip_serializing_if = "qmoi_core::report::Labels::is_empty")]
    pub labels: qmoi_core::report::Labels,
    pub reason: String,
    pub created_by: String,
    pub created_at: i64,
    pub starts_at: i64,
    pub ends_at: i64,
}

impl Maintenance {
    /// `until 2026-12-07 14:00 UTC: db upgrade (ops)`.
    pub fn describe(&self) -> String {
        let until = chrono::DateTime::from_timestamp(self.ends_at, 0)
            .map_or_else(|| self.ends_at.to_string(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string());
        format!("until {until}: {} ({})", self.reason, self.created_by)
    }

    /// `backup`, `api_endpoints/checkout` for a window of one subject, `*{team=payments}`
    /// for one of labels.
    pub fn scope(&self) -> String {
        let sep = if self.subject.is_some() { "/" } else { "" };
        format!("{}{sep}{}", self.component, self.part_name())
    }

    /// The part it covers, without the component: `checkout`, `{team=payments}`,
    /// `checkout{team=payments}` (empty: all of it).
    pub fn part_name(&self) -> String {
        let subject = self.subject.as_deref().unwrap_or_default();
        if self.labels.is_empty() {
            subject.to_string()
        } else {
            format!("{subject}{{{}}}", qmoi_core::alerts::format_labels(&self.labels))
        }
    }

    /// What part of its component(s) it covers.
    pub fn part(&self) -> qmoi_core::alerts::Scope {
        qmoi_core::alerts::Scope { subject: self.subject.clone(), labels: self.labels.clone() }
    }

    /// As the supervisor, the notifier and the monitors read it.
    pub fn window(&self) -> qmoi_core::maintenance::Window {
        qmoi_core::maintenance::Window {
            component: self.component.clone(),
            scope: self.part(),
            starts_at: self.starts_at,
            ends_at: self.ends_at,
        }
    }
}

/// A time given as unix seconds or RFC 3339 (absent or empty: `default`); the error
/// names the parameter `what`.
pub fn parse_time(s: Option<&str>, default: i64, what: &str) -> Result<i64, String> {
    match s {
        None | Some("") => Ok(default),
        Some(t) => t
            .parse::<i64>()
            .ok()
            .or_else(|| chrono::DateTime::parse_from_rfc3339(t).ok().map(|d| d.timestamp()))
            .ok_or_else(|| format!("{what} must be unix seconds or RFC 3339, got '{t}'")),
    }
}

/// The time range of a history query, checked (the same rules for every API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: i64,
    pub to: i64,
    /// Seconds per point; `None`: about 600 points over the range.
    pub step: Option<i64>,
}

impl Range {
    /// `from` and `to` as unix seconds or RFC 3339 (absent or empty: the hour before `to`,
    /// and now), `from` before `to`, `step` at least 1 s; the error names the parameter.
    pub fn parse(from: Option<&str>, to: Option<&str>, step: Option<i64>, now: i64) -> Result<Self, String> {
        let to = parse_time(to, now, "to")?;
        let from = parse_time(from, to.saturating_sub(3600), "from")?;
        if from >= to {
            return Err("from must be before to".into());
        }
        if step.is_some_and(|st| st < 1) {
            return Err("step must be at least 1 second".into());
        }
        Ok(Self { from, to, step })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Series {
    pub component: String,
    pub metric: String,
    /// `[unix seconds, value]`, oldest first.
    pub points: Vec<(i64, f64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ack {
    pub by: String,
    pub at: i64,
    pub comment: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Matcher {
    pub component: Option<String>,
    pub fingerprint: Option<String>,
    pub level: Option<String>,
}

/// What operators said of the firing alerts (see [`Store::marks`]).
#[derive(Debug, Default)]
pub struct Marks {
    pub acks: HashMap<String, Ack>,
    pub silences: Vec<Silence>,
}

impl Marks {
    pub fn ack(&self, fingerprint: &str) -> Option<&Ack> {
        self.acks.get(fingerprint)
    }

    /// The id of the first active silence covering this alert.
    pub fn silenced_by(&self, component: &str, fingerprint: &str, level: &str) -> Option<i64> {
        self.silences.iter().find(|s| s.matches(component, fingerprint, level)).map(|s| s.id)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Silence {
    pub id: i64,
    #[serde(flatten)]
    pub matcher: Matcher,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub comment: String,
}

impl Silence {
    pub fn matches(&self, component: &str, fingerprint: &str, level: &str) -> bool {
        let m = &self.matcher;
        m.component.as_deref().is_none_or(|c| c == component)
            && m.fingerprint.as_deref().is_none_or(|f| f == fingerprint)
            && m.level.as_deref().is_none_or(|l| l == level)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PastAlert {
    pub fingerprint: String,
    pub component: String,
    pub level: String,
    pub title: String,
    pub detail: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: i64,
    pub who: String,
    pub action: String,
    pub target: String,
    pub remote: String,
    pub result: String,
}

/// Which table answers a query, by how far back it reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Raw,
    Minute,
    Hour,
}

impl Resolution {
    fn table(self) -> &'static str {
        match self {
            Resolution::Raw => "samples_raw",
            Resolution::Minute => "samples_1m",
            Resolution::Hour => "samples_1h",
        }
    }

    fn seconds(self) -> i64 {
        match self {
            Resolution::Raw => 1,
            Resolution::Minute => 60,
            Resolution::Hour => 3600,
        }
    }
}

impl Store {
    pub fn open(path: &Path, retention: HistoryRetention) -> Result<Self, StoreError> {
        let p = path.display().to_string();
        let err = |source| StoreError { path: p.clone(), source };
        let (conn, note) = qmoi_core::sqlite::open_or_set_aside(path, |path| {
            let conn = Connection::open(path)?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            conn.execute_batch(PRAGMAS)?;
            qmoi_core::sqlite::migrate(&conn, &p, MIGRATIONS)?;
            Ok(conn)
        })
        .map_err(err)?;
        Ok(Self { conn: Mutex::new(conn), path: p, note, series: Mutex::new(HashMap::new()), retention })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError { path: self.path.clone(), source }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Record one report's metrics at `ts` (unix seconds).
    pub fn ingest(&self, component: &str, ts: i64, metrics: &BTreeMap<String, f64>) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        {
            let mut cache = self.series.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut raw = tx
                .prepare_cached("INSERT OR REPLACE INTO samples_raw (series, ts, value) VALUES (?1, ?2, ?3)")
                .map_err(|e| self.err(e))?;
            for (metric, value) in metrics.iter().filter(|(_, v)| v.is_finite()) {
                let key = (component.to_string(), metric.clone());
                let id = match cache.get(&key) {
                    Some(id) => *id,
                    None => {
                        tx.execute(
                            "INSERT OR IGNORE INTO series (component, metric) VALUES (?1, ?2)",
                            params![component, metric],
                        )
                        .map_err(|e| self.err(e))?;
                        let id: i64 = tx
                            .query_row(
                                "SELECT id FROM series WHERE component = ?1 AND metric = ?2",
                                params![component, metric],
                                |r| r.get(0),
                            )
                            .map_err(|e| self.err(e))?;
                        cache.insert(key, id);
                        id
                    }
                };
                raw.execute(params![id, ts, value]).map_err(|e| self.err(e))?;
                for (table, width) in [("samples_1m", 60), ("samples_1h", 3600)] {
                    let sql = format!(
                        "INSERT INTO {table} (series, ts, sum, count, min, max) VALUES (?1, ?2, ?3, 1, ?3, ?3)
                         ON CONFLICT (series, ts) DO UPDATE SET sum = sum + excluded.sum, count = count + 1,
                         min = MIN(min, excluded.min), max = MAX(max, excluded.max)"
                    );
                    tx.prepare_cached(&sql)
                        .and_then(|mut s| s.execute(params![id, ts - ts.rem_euclid(width), value]))
                        .map_err(|e| self.err(e))?;
                }
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Delete history past each resolution's retention. Series by series, so each delete
    /// is a range of the `(series, ts)` key: `WHERE ts < ?` alone scanned every table
    /// whole, holding the connection (and so ingest and queries) meanwhile.
    pub fn prune(&self, now: i64) -> Result<usize, StoreError> {
        let conn = self.conn();
        let ids: Vec<i64> = conn
            .prepare("SELECT id FROM series")
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .map_err(|e| self.err(e))?;
        let tx = conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let mut n = 0;
        for (table, keep) in [
            ("samples_raw", self.retention.raw),
            ("samples_1m", self.retention.minute),
            ("samples_1h", self.retention.hour),
        ] {
            let cutoff = now - i64::try_from(keep.get().as_secs()).unwrap_or(i64::MAX);
            let mut st = tx.prepare(&prune_sql(table)).map_err(|e| self.err(e))?;
            for id in &ids {
                n += st.execute(params![id, cutoff]).map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        conn.execute(
            "DELETE FROM alert_history WHERE ended_at IS NOT NULL AND ended_at < ?1",
            params![now - 90 * 86_400],
        )
        .map_err(|e| self.err(e))?;
        Ok(n)
    }

    /// The resolution that still holds data as old as `from`.
    pub fn resolution_for(&self, from: i64, now: i64) -> Resolution {
        let age = u64::try_from(now - from).unwrap_or(0);
        if age <= self.retention.raw.get().as_secs() {
            Resolution::Raw
        } else if age <= self.retention.minute.get().as_secs() {
            Resolution::Minute
        } else {
            Resolution::Hour
        }
    }

    /// Series whose metric is `metric` exactly, or (when `metric` has no labels) any series
    /// of that metric name; averaged over buckets of `step` seconds (at least the
    /// resolution's own width).
    pub fn query(
        &self,
        component: Option<&str>,
        metric: &str,
        range: &Range,
        now: i64,
    ) -> Result<Vec<Series>, StoreError> {
        let Range { from, to, step } = *range;
        let res = self.resolution_for(from, now);
        let step = step.unwrap_or(((to - from) / 600).max(1)).max(res.seconds());
        let value = if res == Resolution::Raw { "AVG(value)" } else { "SUM(sum) / SUM(count)" };
        let conn = self.conn();
        // First the matching series, then each one by its primary key (series, ts): a range
        // scan of exactly the rows wanted, whatever else the table holds.
        let mut find = conn
            .prepare_cached(
                "SELECT id, component, metric FROM series
                 WHERE (metric = ?1 OR (instr(?1, '{') = 0 AND metric LIKE ?1 || '{%'))
                   AND (?2 IS NULL OR component = ?2)
                 ORDER BY component, metric",
            )
            .map_err(|e| self.err(e))?;
        let ids: Vec<(i64, String, String)> = find
            .query_map(params![metric, component], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        let sql = format!(
            "SELECT (ts / ?1) * ?1 AS b, {value} FROM {} WHERE series = ?2 AND ts >= ?3 AND ts <= ?4 GROUP BY b ORDER BY b",
            res.table()
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(ids.len());
        for (id, c, m) in ids {
            let points: Vec<(i64, f64)> = stmt
                .query_map(params![step, id, from, to], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(|e| self.err(e))?
                .collect::<Result<_, _>>()
                .map_err(|e| self.err(e))?;
            if !points.is_empty() {
                out.push(Series { component: c, metric: m, points });
            }
        }
        Ok(out)
    }

    /// Every (component, metric) with history.
    pub fn list_series(&self) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT component, metric FROM series ORDER BY component, metric")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    pub fn ack(&self, fingerprint: &str, ack: &Ack) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO acks (fingerprint, by, at, comment) VALUES (?1, ?2, ?3, ?4)",
                params![fingerprint, ack.by, ack.at, ack.comment],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    pub fn clear_ack(&self, fingerprint: &str) -> Result<(), StoreError> {
        self.conn()
            .execute("DELETE FROM acks WHERE fingerprint = ?1", params![fingerprint])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The acknowledgements and the silences active at `now`: what every API shows beside
    /// a firing alert.
    pub fn marks(&self, now: i64) -> Result<Marks, StoreError> {
        Ok(Marks { acks: self.acks()?, silences: self.active_silences(now)? })
    }

    pub fn acks(&self) -> Result<HashMap<String, Ack>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT fingerprint, by, at, comment FROM acks").map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, Ack { by: r.get(1)?, at: r.get(2)?, comment: r.get(3)? })))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    pub fn add_silence(
        &self,
        m: &Matcher,
        by: &str,
        now: i64,
        expires_at: i64,
        comment: &str,
    ) -> Result<i64, StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO silences (component, fingerprint, level, created_by, created_at, expires_at, comment) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![m.component, m.fingerprint, m.level, by, now, expires_at, comment],
        )
        .map_err(|e| self.err(e))?;
        Ok(conn.last_insert_rowid())
    }

    pub fn add_maintenance(&self, m: &Maintenance) -> Result<i64, StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO maintenance (component, subject, reason, created_by, created_at, starts_at, ends_at, labels)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                m.component,
                m.subject,
                m.reason,
                m.created_by,
                m.created_at,
                m.starts_at,
                m.ends_at,
                qmoi_core::maintenance::labels_to_column(&m.labels)
            ],
        )
        .map_err(|e| self.err(e))?;
        Ok(conn.last_insert_rowid())
    }

    /// Add `m` unless a window of its component with its start, by its creator, is there
    /// already (ended or not): true when added.
    pub fn open_scheduled_maintenance(&self, m: &Maintenance) -> Result<bool, StoreError> {
        let conn = self.conn();
        let n = conn
            .execute(
                "INSERT INTO maintenance (component, reason, created_by, created_at, starts_at, ends_at, subject, labels)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 WHERE NOT EXISTS
                   (SELECT 1 FROM maintenance WHERE component = ?1 AND created_by = ?3 AND starts_at = ?5)",
                params![
                    m.component,
                    m.reason,
                    m.created_by,
                    m.created_at,
                    m.starts_at,
                    m.ends_at,
                    m.subject,
                    qmoi_core::maintenance::labels_to_column(&m.labels)
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    /// End window `id` now; false when no window that is not over has that id.
    pub fn end_maintenance(&self, id: i64, now: i64) -> Result<bool, StoreError> {
        self.conn()
            .execute(
                "UPDATE maintenance SET ended_at = ?2, ends_at = MIN(ends_at, ?2) WHERE id = ?1 AND ended_at IS NULL AND ends_at > ?2",
                params![id, now],
            )
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// Windows not over at `now` (in force, or to come), by start.
    pub fn maintenance(&self, now: i64) -> Result<Vec<Maintenance>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, component, reason, created_by, created_at, starts_at, ends_at, subject, labels FROM maintenance
                 WHERE ended_at IS NULL AND ends_at > ?1 ORDER BY starts_at, id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![now], |r| {
                Ok(Maintenance {
                    id: r.get(0)?,
                    component: r.get(1)?,
                    reason: r.get(2)?,
                    created_by: r.get(3)?,
                    created_at: r.get(4)?,
                    starts_at: r.get(5)?,
                    ends_at: r.get(6)?,
                    subject: r.get(7)?,
                    labels: qmoi_core::maintenance::labels_from_column(r.get::<_, Option<String>>(8)?.as_deref()),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Returns false when no active silence has that id.
    pub fn delete_silence(&self, id: i64, now: i64) -> Result<bool, StoreError> {
        self.conn()
            .execute("UPDATE silences SET deleted_at = ?2 WHERE id = ?1 AND deleted_at IS NULL", params![id, now])
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    pub fn active_silences(&self, now: i64) -> Result<Vec<Silence>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, component, fingerprint, level, created_by, created_at, expires_at, comment FROM silences
                 WHERE deleted_at IS NULL AND expires_at > ?1 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![now], |r| {
                Ok(Silence {
                    id: r.get(0)?,
                    matcher: Matcher { component: r.get(1)?, fingerprint: r.get(2)?, level: r.get(3)? },
                    created_by: r.get(4)?,
                    created_at: r.get(5)?,
                    expires_at: r.get(6)?,
                    comment: r.get(7)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// An alert started firing (no-op if it is already open).
    /// Record alerts that started firing, in one transaction (a report can start
    /// thousands at once).
    pub fn alerts_started(&self, alerts: &[PastAlert]) -> Result<(), StoreError> {
        if alerts.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        for a in alerts {
            let open: Option<i64> = tx
                .query_row(
                    "SELECT id FROM alert_history WHERE fingerprint = ?1 AND ended_at IS NULL",
                    params![a.fingerprint],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| self.err(e))?;
            if open.is_none() {
                tx.execute(
                    "INSERT INTO alert_history (fingerprint, component, level, title, detail, started_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![a.fingerprint, a.component, a.level, a.title, a.detail, a.started_at],
                )
                .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Close every open alert not in `active`, in one transaction.
    pub fn alerts_resolved_except(
        &self,
        active: &std::collections::HashSet<&str>,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let open: Vec<String> = {
            let mut stmt = tx
                .prepare_cached("SELECT fingerprint FROM alert_history WHERE ended_at IS NULL")
                .map_err(|e| self.err(e))?;
            stmt.query_map([], |r| r.get(0))
                .map_err(|e| self.err(e))?
                .collect::<Result<_, _>>()
                .map_err(|e| self.err(e))?
        };
        let mut ended = Vec::new();
        for fp in open.into_iter().filter(|f| !active.contains(f.as_str())) {
            tx.execute(
                "UPDATE alert_history SET ended_at = ?2 WHERE fingerprint = ?1 AND ended_at IS NULL",
                params![fp, now],
            )
            .map_err(|e| self.err(e))?;
            tx.execute("DELETE FROM acks WHERE fingerprint = ?1", params![fp]).map_err(|e| self.err(e))?;
            ended.push(fp);
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(ended)
    }

    /// Resolved alerts, newest first.
    pub fn recent_alerts(&self, limit: usize) -> Result<Vec<PastAlert>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT fingerprint, component, level, title, detail, started_at, ended_at FROM alert_history
                 WHERE ended_at IS NOT NULL ORDER BY ended_at DESC, id DESC LIMIT ?1",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![i64::try_from(limit).unwrap_or(100)], |r| {
                Ok(PastAlert {
                    fingerprint: r.get(0)?,
                    component: r.get(1)?,
                    level: r.get(2)?,
                    title: r.get(3)?,
                    detail: r.get(4)?,
                    started_at: r.get(5)?,
                    ended_at: r.get(6)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    pub fn audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO audit (at, who, action, target, remote, result) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![e.at, e.who, e.action, e.target, e.remote, e.result],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }
}

fn prune_sql(table: &str) -> String {
    format!("DELETE FROM {table} WHERE series = ?1 AND ts < ?2")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_ranges_default_parse_and_name_what_is_wrong() {
        let now = 1_765_000_000;
        assert_eq!(Range::parse(None, None, None, now), Ok(Range { from: now - 3600, to: now, step: None }));
        let r = Range::parse(Some("2025-12-06T04:46:40Z"), Some(""), Some(60), now).unwrap();
        assert_eq!((r.from, r.to, r.step), (now - 3600, now, Some(60)));
        assert_eq!(
            Range::parse(Some("yesterday"), None, None, now).unwrap_err(),
            "from must be unix seconds or RFC 3339, got 'yesterday'"
        );
        assert_eq!(Range::parse(Some("10"), Some("5"), None, now).unwrap_err(), "from must be before to");
        assert_eq!(Range::parse(None, None, Some(0), now).unwrap_err(), "step must be at least 1 second");
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("h.db"), HistoryRetention::default()).unwrap();
        (dir, s)
    }

    /// `history.db` files from before schema versions open with their data; one from a
    /// newer QMOI is refused with a message.
    #[test]
    fn databases_of_the_previous_layout_open_and_newer_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(SCHEMA).unwrap();
            c.execute("INSERT INTO acks (fingerprint, by, at) VALUES ('x/y', 'ops', 1)", []).unwrap();
        }
        let s = Store::open(&path, HistoryRetention::default()).unwrap();
        assert!(s.acks().is_ok_and(|a| a.contains_key("x/y")), "the old rows are there");
        let v: i64 = s.conn().pragma_query_value(None, "user_version", |r| r.get(0)).unwrap_or(-1);
        assert_eq!(v, i64::try_from(MIGRATIONS.len()).unwrap_or(0));
        s.conn().pragma_update(None, "user_version", 99).unwrap();
        drop(s);
        let e = Store::open(&path, HistoryRetention::default()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("history.db has schema version 99, newer than"), "{e}");
    }

    /// Regression: pruning ran `DELETE … WHERE ts < ?`, a scan of each whole table.
    #[test]
    fn pruning_searches_the_key_instead_of_scanning() -> Result<(), StoreError> {
        let (_d, s) = store();
        for table in ["samples_raw", "samples_1m", "samples_1h"] {
            let plan: Vec<String> = s
                .conn()
                .prepare(&format!("EXPLAIN QUERY PLAN {}", prune_sql(table)))
                .and_then(|mut st| st.query_map(params![1, 100], |r| r.get::<_, String>(3))?.collect())
                .map_err(|e| s.err(e))?;
            let plan = plan.join(" | ");
            assert!(
                plan.contains("SEARCH") && plan.contains("PRIMARY KEY") && !plan.contains("SCAN"),
                "{table}: {plan}"
            );
        }
        let m: BTreeMap<String, f64> = [("qmoi_x".to_string(), 1.0)].into();
        s.ingest("c", 1000, &m)?;
        s.ingest("c", 1_000_000, &m)?;
        let n = s.prune(1_000_000 + 49 * 3600)?;
        assert!(n >= 1, "the old raw sample is gone: {n}");
        Ok(())
    }

    #[test]
    fn ingest_query_and_downsample() -> Result<(), StoreError> {
        let (_d, s) = store();
        let now = 1_800_000_000;
        for i in 0..120 {
            let m = BTreeMap::from([
                ("qmoi_cpu_usage_ratio".to_string(), i as f64),
                ("qmoi_disk_used_ratio{mount=\"/\"}".to_string(), 0.5),
            ]);
            s.ingest("system_health", now - 120 + i, &m)?;
        }
        let raw = s.query(
            Some("system_health"),
            "qmoi_cpu_usage_ratio",
            &Range { from: now - 3600, to: now, step: Some(60) },
            now,
        )?;
        assert_eq!(raw.len(), 1);
        let total: f64 = raw[0].points.iter().map(|p| p.1).sum::<f64>();
        assert!(total > 0.0 && raw[0].points.len() <= 3, "{raw:?}");
        // By name: every labelled series of that metric.
        let disk = s.query(None, "qmoi_disk_used_ratio", &Range { from: now - 3600, to: now, step: None }, now)?;
        assert_eq!(disk[0].metric, "qmoi_disk_used_ratio{mount=\"/\"}");
        // Minute aggregates answer for older ranges, with the same average.
        let later = now + 3 * 86_400;
        let m1 = s.query(
            Some("system_health"),
            "qmoi_cpu_usage_ratio",
            &Range { from: now - 3600, to: now, step: Some(7200) },
            later,
        )?;
        assert_eq!(m1[0].points.len(), 1);
        assert!((m1[0].points[0].1 - 59.5).abs() < 1e-9, "{m1:?}");
        // Pruning at `later` removes raw samples but keeps minute ones.
        assert!(s.prune(later)? >= 240);
        assert!(
            s.query(None, "qmoi_cpu_usage_ratio", &Range { from: now - 3600, to: now, step: None }, now)?.is_empty()
        );
        assert_eq!(
            s.query(None, "qmoi_cpu_usage_ratio", &Range { from: now - 3600, to: now, step: None }, later)?.len(),
            1
        );
        Ok(())
    }

    #[test]
    fn silences_acks_and_alert_history() -> Result<(), StoreError> {
        let (_d, s) = store();
        let m = Matcher { component: Some("backup".into()), ..Matcher::default() };
        let id = s.add_silence(&m, "ops", 100, 200, "maintenance")?;
        let active = s.active_silences(150)?;
        assert!(active[0].matches("backup", "backup/x", "warning"));
        assert!(!active[0].matches("security", "security/x", "warning"));
        assert!(s.active_silences(250)?.is_empty(), "expired");
        assert!(s.delete_silence(id, 160)?);
        assert!(!s.delete_silence(id, 161)?);
        let a = PastAlert {
            fingerprint: "backup/x".into(),
            component: "backup".into(),
            level: "warning".into(),
            title: "t".into(),
            detail: "d".into(),
            started_at: 100,
            ended_at: None,
        };
        s.alerts_started(std::slice::from_ref(&a))?;
        s.alerts_started(std::slice::from_ref(&a))?;
        s.ack("backup/x", &Ack { by: "ops".into(), at: 110, comment: String::new() })?;
        assert_eq!(s.acks()?.len(), 1);
        assert_eq!(s.alerts_resolved_except(&Default::default(), 120)?, vec!["backup/x"]);
        assert!(s.acks()?.is_empty(), "acks end with the alert");
        let recent = s.recent_alerts(10)?;
        assert_eq!(recent.len(), 1);
        assert_eq!(recent[0].ended_at, Some(120));
        Ok(())
    }
}
