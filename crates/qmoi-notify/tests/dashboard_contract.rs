//! The notifier reads acknowledgements, silences and maintenance windows from the
//! dashboard's own database:
//! written here through the dashboard's store (the real writer), read by the notifier.

use qmoi_core::report::Labels;
use qmoi_core::status::AlertLevel;
use qmoi_dashboard::store::{Ack, Matcher, Store};
use qmoi_notify::policy::{Policy, PolicyReader};

#[test]
fn acks_and_silences_written_by_the_dashboard_are_read_by_the_notifier() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    // No database yet: nothing acknowledged or silenced, no error.
    let none = Labels::new();
    let mut reader = PolicyReader::new(&path);
    let p = reader.read(100).unwrap();
    assert!(p.acked.is_empty() && p.silences.is_empty());

    let store = Store::open(&path, Default::default()).unwrap();
    store.ack("system_health/disk_usage:/", &Ack { by: "ops".into(), at: 100, comment: "on it".into() }).unwrap();
    let only_backup = Matcher { component: Some("backup".into()), fingerprint: None, level: Some("warning".into()) };
    store.add_silence(&only_backup, "ops", 100, 200, "maintenance").unwrap();

    let p = reader.read(150).unwrap();
    assert!(p.acked.contains("system_health/disk_usage:/"));
    assert!(p.silenced("backup", "backup/stale:db", AlertLevel::Warning, &none));
    assert!(!p.silenced("backup", "backup/stale:db", AlertLevel::Critical, &none), "the silence is for warnings only");
    assert!(!p.silenced("security", "security/x", AlertLevel::Warning, &none));
    // Expired: read with a later clock.
    let later = Policy::load(&path, 250).unwrap();
    assert!(!later.silenced("backup", "backup/stale:db", AlertLevel::Warning, &none), "expired silences do not hold");

    // A maintenance window silences its component while in force.
    let window = qmoi_dashboard::store::Maintenance {
        id: 0,
        component: "security".into(),
        subject: None,
        labels: Labels::new(),
        reason: "kernel upgrade".into(),
        created_by: "ops".into(),
        created_at: 300,
        starts_at: 400,
        ends_at: 500,
    };
    let id = store.add_maintenance(&window).unwrap();
    assert!(
        !Policy::load(&path, 350).unwrap().silenced("security", "security/x", AlertLevel::Critical, &none),
        "not yet"
    );
    assert!(Policy::load(&path, 450).unwrap().silenced("security", "security/x", AlertLevel::Critical, &none));
    assert!(!Policy::load(&path, 450).unwrap().silenced("backup", "backup/x", AlertLevel::Critical, &none));
    assert!(store.end_maintenance(id, 460).unwrap());
    assert!(
        !Policy::load(&path, 470).unwrap().silenced("security", "security/x", AlertLevel::Critical, &none),
        "ended"
    );
    assert!(!store.end_maintenance(id, 470).unwrap(), "ends once");

    // A window of one subject: that endpoint's alerts only, whatever their kind.
    let one = qmoi_dashboard::store::Maintenance {
        component: "api_endpoints".into(),
        subject: Some("checkout".into()),
        starts_at: 600,
        ends_at: 700,
        ..window.clone()
    };
    store.add_maintenance(&one).unwrap();
    let p = Policy::load(&path, 650).unwrap();
    for fp in ["api_endpoints/endpoint:checkout", "api_endpoints/slo:checkout", "api_endpoints/latency:checkout"] {
        assert!(p.silenced("api_endpoints", fp, AlertLevel::Critical, &none), "{fp}");
    }
    assert!(!p.silenced("api_endpoints", "api_endpoints/endpoint:search", AlertLevel::Critical, &none));
    assert!(!p.silenced("api_endpoints", "api_endpoints/endpoint:checkout-eu", AlertLevel::Critical, &none));
    assert!(
        !p.silenced("heartbeats", "heartbeats/heartbeat:checkout", AlertLevel::Critical, &none),
        "another component"
    );

    // A window of labels over every component: whatever carries them, in any component.
    let payments = qmoi_core::alerts::parse_labels("team=payments").unwrap();
    let by_label = qmoi_dashboard::store::Maintenance {
        component: qmoi_core::maintenance::ANY_COMPONENT.into(),
        subject: None,
        labels: payments.clone(),
        starts_at: 800,
        ends_at: 900,
        ..window
    };
    store.add_maintenance(&by_label).unwrap();
    let p = Policy::load(&path, 850).unwrap();
    let both = qmoi_core::alerts::parse_labels("team=payments,env=prod").unwrap();
    assert!(p.silenced("api_endpoints", "api_endpoints/endpoint:checkout", AlertLevel::Critical, &both));
    assert!(p.silenced("heartbeats", "heartbeats/heartbeat:ledger", AlertLevel::Critical, &payments));
    assert!(!p.silenced("heartbeats", "heartbeats/heartbeat:search", AlertLevel::Critical, &none), "no labels");
    let search = qmoi_core::alerts::parse_labels("team=search").unwrap();
    assert!(!p.silenced("api_endpoints", "api_endpoints/endpoint:search", AlertLevel::Critical, &search));
}
