//! The notifier reads acknowledgements and silences from the dashboard's own database:
//! written here through the dashboard's store (the real writer), read by the notifier.

use qmoi_core::status::AlertLevel;
use qmoi_dashboard::store::{Ack, Matcher, Store};
use qmoi_notify::policy::{Policy, PolicyReader};

#[test]
fn acks_and_silences_written_by_the_dashboard_are_read_by_the_notifier() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    // No database yet: nothing acknowledged or silenced, no error.
    let mut reader = PolicyReader::new(&path);
    let p = reader.read(100).unwrap();
    assert!(p.acked.is_empty() && p.silences.is_empty());

    let store = Store::open(&path, Default::default()).unwrap();
    store.ack("system_health/disk_usage:/", &Ack { by: "ops".into(), at: 100, comment: "on it".into() }).unwrap();
    let only_backup = Matcher { component: Some("backup".into()), fingerprint: None, level: Some("warning".into()) };
    store.add_silence(&only_backup, "ops", 100, 200, "maintenance").unwrap();

    let p = reader.read(150).unwrap();
    assert!(p.acked.contains("system_health/disk_usage:/"));
    assert!(p.silenced("backup", "backup/stale:db", AlertLevel::Warning));
    assert!(!p.silenced("backup", "backup/stale:db", AlertLevel::Critical), "the silence is for warnings only");
    assert!(!p.silenced("security", "security/x", AlertLevel::Warning));
    // Expired: read with a later clock.
    let later = Policy::load(&path, 250).unwrap();
    assert!(!later.silenced("backup", "backup/stale:db", AlertLevel::Warning), "expired silences do not hold");
}
