//! The SLO database (minute buckets for two days, hour buckets for `keep`) and the
//! maintenance windows read from the dashboard's.

use super::{Counts, HOUR, MINUTE, secs};
use crate::config::ConfigDuration;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::path::Path;

/// Minute buckets are kept this long (the longest burn window is 48 h).
const KEEP_MINUTES_S: i64 = 2 * 86_400 + HOUR;

/// The SLO database: minute and hour buckets per name (endpoint, check).
pub struct Store {
    conn: Connection,
    /// The file found unreadable and moved aside when opening, for the report.
    pub note: Option<String>,
}

const MIGRATIONS: &[&str] = &["CREATE TABLE IF NOT EXISTS buckets (
        name TEXT NOT NULL,
        res INTEGER NOT NULL,
        start INTEGER NOT NULL,
        total INTEGER NOT NULL,
        bad INTEGER NOT NULL,
        in_maintenance INTEGER NOT NULL,
        PRIMARY KEY (name, res, start)
    ) WITHOUT ROWID;"];

impl Store {
    /// Open (creating it and its folder) for writing.
    pub fn open(path: &Path) -> Result<Self, String> {
        let named = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| named(&e))?;
        }
        let (conn, note) = crate::sqlite::open_or_set_aside(path, |path| {
            let conn = Connection::open(path)?;
            let _ = conn.busy_timeout(std::time::Duration::from_secs(5));
            conn.pragma_update(None, "journal_mode", "WAL")?;
            crate::sqlite::migrate(&conn, &path.display().to_string(), MIGRATIONS)?;
            Ok(conn)
        })
        .map_err(|e| named(&e))?;
        Ok(Self { conn, note })
    }

    /// Open an existing database to read (`--sla-report` beside a running monitor).
    pub fn open_read_only(path: &Path) -> Result<Self, String> {
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let _ = conn.busy_timeout(std::time::Duration::from_secs(5));
        Ok(Self { conn, note: None })
    }

    /// Add what was counted since the last call: `(name, minute start) → counts`,
    /// into their minute and hour buckets, in one transaction; then drop minute buckets
    /// older than two days and hour buckets older than `keep`.
    pub fn add(&mut self, pending: &HashMap<(String, i64), Counts>, now: i64, keep: i64) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut up = tx.prepare_cached(
                "INSERT INTO buckets (name, res, start, total, bad, in_maintenance) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (name, res, start) DO UPDATE SET total = total + excluded.total,
                 bad = bad + excluded.bad, in_maintenance = in_maintenance + excluded.in_maintenance",
            )?;
            for ((name, minute), c) in pending {
                let (t, b, x) = (to_i64(c.total), to_i64(c.bad), to_i64(c.excluded));
                up.execute(params![name, MINUTE, minute, t, b, x])?;
                up.execute(params![name, HOUR, minute - minute.rem_euclid(HOUR), t, b, x])?;
            }
            tx.execute("DELETE FROM buckets WHERE res = ?1 AND start < ?2", params![MINUTE, now - KEEP_MINUTES_S])?;
            tx.execute("DELETE FROM buckets WHERE res = ?1 AND start < ?2", params![HOUR, now - keep])?;
        }
        tx.commit()
    }

    /// Counts of the buckets of resolution `res` starting in `[from, to)`.
    pub fn sum(&self, name: &str, res: i64, from: i64, to: i64) -> rusqlite::Result<Counts> {
        let mut st = self.conn.prepare_cached(
            "SELECT SUM(total), SUM(bad), SUM(in_maintenance) FROM buckets
             WHERE name = ?1 AND res = ?2 AND start >= ?3 AND start < ?4",
        )?;
        let row: Option<(Option<i64>, Option<i64>, Option<i64>)> =
            st.query_row(params![name, res, from, to], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).optional()?;
        let (t, b, x) = row.unwrap_or_default();
        let u = |v: Option<i64>| u64::try_from(v.unwrap_or(0)).unwrap_or(0);
        Ok(Counts { total: u(t), bad: u(b), excluded: u(x) })
    }

    /// The last `window` up to `now`: the hours (the current one included) it covers.
    pub fn window(&self, name: &str, window: ConfigDuration, now: i64) -> rusqlite::Result<Counts> {
        let hour = now - now.rem_euclid(HOUR);
        let hours = ceil_div(secs(window), HOUR).max(1);
        self.sum(name, HOUR, hour - (hours - 1) * HOUR, hour + HOUR)
    }

    /// The last `secs` up to `now`, by minutes (the current one included).
    pub fn recent(&self, name: &str, secs: i64, now: i64) -> rusqlite::Result<Counts> {
        let minute = now - now.rem_euclid(MINUTE);
        let minutes = ceil_div(secs, MINUTE).max(1);
        self.sum(name, MINUTE, minute - (minutes - 1) * MINUTE, minute + MINUTE)
    }
}

fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1).div_euclid(b)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Windows of one component's maintenance, as the dashboard keeps them
/// (`data/history.db`, table `maintenance`; see [`crate::maintenance`]): what is counted
/// in one is excluded. A window of one subject or of labels covers just what it names.
#[derive(Debug, Default, Clone)]
pub struct Maintenance {
    windows: Vec<crate::maintenance::Window>,
}

impl Maintenance {
    /// Read the windows of `component` in force or to come (a missing database or
    /// table: none).
    pub fn read(path: &Path, component: &str, now: i64) -> Result<Self, String> {
        if !path.exists() {
            return Ok(Self::default());
        }
        let named = |e: rusqlite::Error| format!("{}: {e}", path.display());
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(named)?;
        let _ = conn.busy_timeout(std::time::Duration::from_secs(2));
        let mut windows = crate::maintenance::read(&conn, now).map_err(named)?;
        windows.retain(|w| w.of(component));
        Ok(Self { windows })
    }

    /// These windows, as if read.
    pub fn from_windows(windows: Vec<crate::maintenance::Window>) -> Self {
        Self { windows }
    }

    /// A window covering `subject` with `labels` (its own, one of its labels, or the
    /// whole component's) is in force at `t`.
    pub fn in_force(&self, t: i64, subject: &str, labels: &crate::report::Labels) -> bool {
        self.windows.iter().any(|w| w.in_force(t) && w.scope.covers_subject(Some(subject), labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_add_up_by_minute_and_hour_and_age_out() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("slo.db")).unwrap();
        let h = 1_800_000_000 - 1_800_000_000 % HOUR;
        let mut pending = HashMap::new();
        for (minute, ok, excl) in [(h, true, false), (h, false, false), (h + 60, true, false), (h + 120, false, true)] {
            pending.entry(("a".to_string(), minute)).or_insert_with(Counts::default).add(1, ok, excl);
        }
        s.add(&pending, h + 150, 400 * 86_400).unwrap();
        s.add(&pending, h + 150, 400 * 86_400).unwrap(); // the same again: counts add up
        let window = s.window("a", ConfigDuration::parse("30d").unwrap(), h + 150).unwrap();
        assert_eq!(window, Counts { total: 6, bad: 2, excluded: 2 });
        assert_eq!(s.recent("a", 60, h + 150).unwrap(), Counts { total: 0, bad: 0, excluded: 2 });
        assert_eq!(s.recent("a", 120, h + 150).unwrap(), Counts { total: 2, bad: 0, excluded: 2 });
        assert_eq!(s.recent("a", 180, h + 150).unwrap(), Counts { total: 6, bad: 2, excluded: 2 });
        // Three days later the minutes are gone, the hour stays.
        s.add(&HashMap::new(), h + 3 * 86_400, 400 * 86_400).unwrap();
        assert_eq!(s.sum("a", MINUTE, 0, i64::MAX).unwrap(), Counts::default());
        assert_eq!(s.sum("a", HOUR, 0, i64::MAX).unwrap().total, 6);
    }
}
