//! Schema versions of QMOI's SQLite databases (`PRAGMA user_version`).
//!
//! Each database has a list of migrations; migration `i` takes the schema from version `i`
//! to `i + 1`, in a transaction that also records the new version. The first one is the
//! layout the database had before it was versioned, written with `IF NOT EXISTS`, so a
//! database from before versioning (version 0, tables present) opens as it is. A database
//! from a newer QMOI (a higher version than the list knows) is refused with a message,
//! never half understood.

use rusqlite::Connection;

/// Bring `conn` to the last version of `migrations`. `what` names the database in errors.
pub fn migrate(conn: &Connection, what: &str, migrations: &[&str]) -> rusqlite::Result<()> {
    let known = i64::try_from(migrations.len()).unwrap_or(i64::MAX);
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > known {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(format!(
                "{what} has schema version {version}, newer than the {known} this QMOI knows: it was written by a newer \
                 QMOI; upgrade, or move the file away to start a new one"
            )),
        ));
    }
    for (i, sql) in migrations.iter().enumerate().skip(usize::try_from(version).unwrap_or(0)) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i64::try_from(i + 1).unwrap_or(i64::MAX))?;
        tx.commit()?;
    }
    Ok(())
}

/// Whether `e` says the file is not a database, or a damaged one.
pub fn is_corrupt(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt))
}

/// Open the database at `path` with `open` (which sets its pragmas and migrates it). A
/// file that is not a database, or is damaged where opening reads, is moved aside to
/// `<path>.corrupt-<UTC time>` with its `-wal` and `-shm`, and a new, empty database is
/// opened: the note says what was found and where it went, for the component to report
/// (nothing in it is lost for good: it can be looked at, or recovered with `sqlite3
/// .recover`). Any other error is returned as it is.
pub fn open_or_set_aside<T>(
    path: &std::path::Path,
    open: impl Fn(&std::path::Path) -> rusqlite::Result<T>,
) -> rusqlite::Result<(T, Option<String>)> {
    match open(path) {
        Err(e) if is_corrupt(&e) => {
            let aside = crate::statefile::aside_name(path);
            let moved = |from: &std::path::Path, to: &std::path::Path| {
                std::fs::rename(from, to)
                    .or_else(|r| if r.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(r) })
            };
            for suffix in ["", "-wal", "-shm"] {
                let from = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
                let to = std::path::PathBuf::from(format!("{}{suffix}", aside.display()));
                moved(&from, &to).map_err(|r| {
                    rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                        Some(format!("{e}; cannot move it aside to {}: {r}", to.display())),
                    )
                })?;
            }
            tracing::error!(path = %path.display(), moved_to = %aside.display(), error = %e, "Database unreadable; moved aside, starting a new one.");
            let t = open(path)?;
            Ok((
                t,
                Some(format!(
                    "{} was unreadable ({e}): moved to {} and started empty",
                    path.display(),
                    aside.display()
                )),
            ))
        }
        r => r.map(|t| (t, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_a_database_is_moved_aside_and_a_new_one_opened() -> rusqlite::Result<()> {
        let dir = tempfile::tempdir().map_err(|e| rusqlite::Error::InvalidPath(e.to_string().into()))?;
        let path = dir.path().join("x.db");
        let open = |p: &std::path::Path| -> rusqlite::Result<Connection> {
            let c = Connection::open(p)?;
            c.pragma_update(None, "journal_mode", "WAL")?;
            migrate(&c, "x.db", &[V1])?;
            Ok(c)
        };
        std::fs::write(&path, vec![0x5a; 5000]).map_err(|e| rusqlite::Error::InvalidPath(e.to_string().into()))?;
        let (c, note) = open_or_set_aside(&path, open)?;
        let note = note.unwrap_or_default();
        assert!(
            note.contains("x.db was unreadable (file is not a database): moved to") && note.ends_with("started empty"),
            "{note}"
        );
        c.execute("INSERT INTO t (name) VALUES ('new')", [])?;
        let aside: Vec<String> = std::fs::read_dir(dir.path())
            .map_err(|e| rusqlite::Error::InvalidPath(e.to_string().into()))?
            .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
            .filter(|n| n.starts_with("x.db.corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
        assert_eq!(std::fs::read(dir.path().join(&aside[0])).map(|b| b.len()).unwrap_or(0), 5000, "kept as it was");
        drop(c);
        // A sound database opens as it is, with no note.
        let (_, note) = open_or_set_aside(&path, open)?;
        assert!(note.is_none());
        Ok(())
    }

    const V1: &str = "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, name TEXT NOT NULL);";
    const V2: &str = "ALTER TABLE t ADD COLUMN note TEXT NOT NULL DEFAULT '';";

    fn version(c: &Connection) -> i64 {
        c.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap_or(-1)
    }

    #[test]
    fn unversioned_databases_upgrade_and_newer_ones_are_refused() -> rusqlite::Result<()> {
        // A database of the layout from before versioning: version 0, table and rows there.
        let c = Connection::open_in_memory()?;
        c.execute_batch(V1)?;
        c.execute("INSERT INTO t (name) VALUES ('kept')", [])?;
        migrate(&c, "test.db", &[V1])?;
        assert_eq!(version(&c), 1);
        migrate(&c, "test.db", &[V1, V2])?;
        assert_eq!(version(&c), 2);
        let (name, note): (String, String) =
            c.query_row("SELECT name, note FROM t", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
        assert_eq!((name.as_str(), note.as_str()), ("kept", ""));
        // Opened again: nothing to do.
        migrate(&c, "test.db", &[V1, V2])?;
        assert_eq!(version(&c), 2);
        // An older QMOI opening it refuses.
        let e = migrate(&c, "test.db", &[V1]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("test.db has schema version 2, newer than the 1 this QMOI knows"), "{e}");
        Ok(())
    }
}
