//! The notifier reads acknowledgements, silences and maintenance windows from the
//! dashboard's own database:
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

    // A maintenance window silences its component while in force.
    let window = qmoi_dashboard::store::Maintenance {
        id: 0,
        component: "security".into(),
        subject: None,
        reason: "kernel upgrade".into(),
        created_by: "ops".into(),
        created_at: 300,
        starts_at: 400,
        ends_at: 500,
    };
    let id = store.add_maintenance(&window).unwrap();
    assert!(!Policy::load(&path, 350).unwrap().silenced("security", "security/x", AlertLevel::Critical), "not yet");
    assert!(Policy::load(&path, 450).unwrap().silenced("security", "security/x", AlertLevel::Critical));
    assert!(!Policy::load(&path, 450).unwrap().silenced("backup", "backup/x", AlertLevel::Critical));
    assert!(store.end_maintenance(id, 460).unwrap());
    assert!(!Policy::load(&path, 470).unwrap().silenced("security", "security/x", AlertLevel::Critical), "ended");
    assert!(!store.end_maintenance(id, 470).unwrap(), "ends once");

    // A window of one subject: that endpoint's alerts only, whatever their kind.
    let one = qmoi_dashboard::store::Maintenance {
        component: "api_endpoints".into(),
        subject: Some("checkout".into()),
        starts_at: 600,
        ends_at: 700,
        ..window
    };
    store.add_maintenance(&one).unwrap();
    let p = Policy::load(&path, 650).unwrap();
    for fp in ["api_endpoints/endpoint:checkout", "api_endpoints/slo:checkout", "api_endpoints/latency:checkout"] {
        assert!(p.silenced("api_endpoints", fp, AlertLevel::Critical), "{fp}");
    }
    assert!(!p.silenced("api_endpoints", "api_endpoints/endpoint:search", AlertLevel::Critical));
    assert!(!p.silenced("api_endpoints", "api_endpoints/endpoint:checkout-eu", AlertLevel::Critical));
    assert!(!p.silenced("heartbeats", "heartbeats/heartbeat:checkout", AlertLevel::Critical), "another component");
}
