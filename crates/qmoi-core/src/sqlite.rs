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

#[cfg(test)]
mod tests {
    use super::*;

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
