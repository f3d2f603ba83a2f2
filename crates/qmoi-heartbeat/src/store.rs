//! `data/heartbeats.db`: each check's state (so a restart of the monitor keeps it) and the
//! history of runs. Written by one writer in batches (see `lib.rs`): a ping is answered
//! from memory, and at most a second of pings is lost when the process is killed.

use crate::state::{CheckState, Kind, Run};
use rusqlite::{Connection, params};
use std::collections::HashMap;
use std::path::Path;

const MIGRATIONS: &[&str] = &["CREATE TABLE IF NOT EXISTS state (
        name TEXT PRIMARY KEY,
        json TEXT NOT NULL
     );
     CREATE TABLE IF NOT EXISTS runs (
        id INTEGER PRIMARY KEY,
        check_name TEXT NOT NULL,
        kind TEXT NOT NULL,
        started_at INTEGER,
        ended_at INTEGER NOT NULL,
        duration_s REAL,
        body TEXT NOT NULL
     );
     CREATE INDEX IF NOT EXISTS runs_by_check ON runs (check_name, id);"];

pub struct Store {
    conn: Connection,
    /// The file found unreadable and moved aside when opening, for the report.
    pub note: Option<String>,
    path: String,
    /// When each check's runs were last pruned, by check index, in seconds since the
    /// store opened (0: never). A prune is a query per check: at most once a minute
    /// each, so a flood of pings does not turn into a flood of deletes.
    pruned: Vec<u32>,
    opened: std::time::Instant,
}

impl Store {
    pub fn open(path: &Path) -> Result<Self, String> {
        let p = path.display().to_string();
        let e = |x: rusqlite::Error| format!("{p}: {x}");
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|x| format!("{}: {x}", dir.display()))?;
        }
        let (conn, note) = qmoi_core::sqlite::open_or_set_aside(path, |path| {
            let conn = Connection::open(path)?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            // Written in batches, read a few rows a report: SQLite's default 2 MiB page
            // cache would be an eighth of the monitor's memory.
            conn.pragma_update(None, "cache_size", -256)?;
            qmoi_core::sqlite::migrate(&conn, &p, MIGRATIONS)?;
            Ok(conn)
        })
        .map_err(e)?;
        Ok(Self { conn, path: p, note, pruned: Vec::new(), opened: std::time::Instant::now() })
    }

    /// Every check's saved state; a row that cannot be read is left out and named.
    pub fn load(&self) -> Result<(HashMap<String, CheckState>, Vec<String>), String> {
        let e = |x: rusqlite::Error| format!("{}: {x}", self.path);
        let mut st = self.conn.prepare("SELECT name, json FROM state").map_err(e)?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).map_err(e)?;
        let (mut out, mut bad) = (HashMap::new(), Vec::new());
        for row in rows {
            let (name, json) = row.map_err(e)?;
            match serde_json::from_str(&json) {
                Ok(s) => {
                    out.insert(name, s);
                }
                Err(x) => bad.push(format!("the saved state of '{name}' is unreadable ({x}); it starts afresh")),
            }
        }
        Ok((out, bad))
    }

    /// Save states and append runs (of check index `.0`, named by `name`) in one
    /// transaction; keep the newest `keep` runs of each check that got one.
    pub fn save<'a>(
        &mut self,
        states: &[(&str, CheckState)],
        runs: &[(usize, Run)],
        keep: usize,
        name: &dyn Fn(usize) -> &'a str,
    ) -> Result<(), String> {
        let path = self.path.clone();
        let e = |x: rusqlite::Error| format!("{path}: {x}");
        let tx = self.conn.transaction().map_err(e)?;
        let pruned = &mut self.pruned;
        // Seconds since open, at least 1 (0 is "never").
        let now = u32::try_from(self.opened.elapsed().as_secs()).unwrap_or(u32::MAX).saturating_add(1);
        {
            let mut up = tx.prepare_cached("INSERT OR REPLACE INTO state (name, json) VALUES (?1, ?2)").map_err(e)?;
            for (name, s) in states {
                let json = serde_json::to_string(s).map_err(|x| x.to_string())?;
                up.execute(params![name, json]).map_err(e)?;
            }
            let mut add = tx
                .prepare_cached(
                    "INSERT INTO runs (check_name, kind, started_at, ended_at, duration_s, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(e)?;
            for (i, r) in runs {
                add.execute(params![
                    name(*i),
                    r.kind.as_str(),
                    r.started_at.map(|t| t.timestamp()),
                    r.ended_at.timestamp(),
                    r.duration_s,
                    r.body
                ])
                .map_err(e)?;
            }
            let mut prune = tx
                .prepare_cached(
                    "DELETE FROM runs WHERE check_name = ?1 AND id <= (SELECT id FROM runs WHERE check_name = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                )
                .map_err(e)?;
            let mut ids: Vec<usize> = runs.iter().map(|(i, _)| *i).collect();
            ids.sort_unstable();
            ids.dedup();
            for i in ids {
                if pruned.len() <= i {
                    pruned.resize(i + 1, 0);
                }
                if pruned[i] != 0 && now - pruned[i] < 60 {
                    continue;
                }
                prune.execute(params![name(i), i64::try_from(keep).unwrap_or(i64::MAX)]).map_err(e)?;
                pruned[i] = now;
            }
        }
        tx.commit().map_err(e)
    }

    /// The newest `n` runs of check `name`, newest first.
    pub fn recent(&self, name: &str, n: usize) -> Result<Vec<Run>, String> {
        let e = |x: rusqlite::Error| format!("{}: {x}", self.path);
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT kind, started_at, ended_at, duration_s, body FROM runs WHERE check_name = ?1
                 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(e)?;
        let at = |t: i64| chrono::DateTime::from_timestamp(t, 0).unwrap_or_default();
        let rows = st
            .query_map(params![name, i64::try_from(n).unwrap_or(i64::MAX)], |r| {
                let kind: String = r.get(0)?;
                Ok(Run {
                    kind: Kind::from_name(&kind).unwrap_or(Kind::Log),
                    started_at: r.get::<_, Option<i64>>(1)?.map(at),
                    ended_at: at(r.get(2)?),
                    duration_s: r.get(3)?,
                    body: r.get(4)?,
                })
            })
            .map_err(e)?;
        rows.collect::<Result<_, _>>().map_err(e)
    }
}
