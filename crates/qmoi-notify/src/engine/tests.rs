//! Every policy rule of the engine, against a clock passed in.

use super::*;
use crate::config::{ChannelConfig, Priority, QuietHours, RateLimit, Route, UrlEntry};
use crate::policy::Silence;
use crate::store::Store;
use qmoi_core::config::{ConfigDuration, Secret};

const T0: i64 = 1_790_000_000_000;

fn hook() -> ChannelConfig {
    ChannelConfig {
        urls: vec![UrlEntry {
            url: Secret::new("http://127.0.0.1:9/h"),
            format: None,
            headers: BTreeMap::new(),
            secret: None,
        }],
        ..ChannelConfig::default()
    }
}

fn config(f: impl FnOnce(&mut NotifyConfig)) -> Arc<NotifyConfig> {
    let mut c = NotifyConfig::default();
    c.grouping.group_wait = ConfigDuration::from_secs(0);
    c.grouping.group_interval = ConfigDuration::from_secs(0);
    c.channels.insert("webhook".into(), hook());
    for l in ["critical", "warning", "info"] {
        c.priorities.insert(l.into(), Priority { channels: vec!["webhook".into()], retry_attempts: 2 });
    }
    f(&mut c);
    Arc::new(c)
}

fn alert(fp: &str, level: AlertLevel) -> Alert {
    Alert {
        fingerprint: fp.into(),
        level,
        title: fp.into(),
        detail: "d".into(),
        since: at(T0),
        labels: Default::default(),
    }
}

struct H {
    store: Store,
    engine: Engine,
    policy: Policy,
    _dir: tempfile::TempDir,
}

impl H {
    fn new(cfg: Arc<NotifyConfig>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("n.db"), crate::config::Sync::Normal).unwrap();
        Self { store, engine: Engine::new(cfg, "h".into()), policy: Policy::default(), _dir: dir }
    }

    /// One step like the daemon's; returns the messages that entered the outbox.
    fn step(&mut self, component: &str, alerts: Option<&[Alert]>, now: i64) -> Vec<Message> {
        let before: i64 = self.max_outbox();
        let tx = self.store.conn.transaction().unwrap();
        if let Some(a) = alerts {
            self.engine.observe(&tx, component, "h", a, now).unwrap();
        }
        self.engine.tick(&tx, &self.policy, now, None).unwrap();
        self.engine.flush(&tx, now, false).unwrap();
        tx.commit().unwrap();
        let mut st =
            self.store.conn.prepare("SELECT message FROM outbox WHERE id > ?1 AND target = 0 ORDER BY id").unwrap();
        st.query_map([before], |r| r.get::<_, String>(0))
            .unwrap()
            .filter_map(|r| r.ok())
            .filter_map(|s| serde_json::from_str(&s).ok())
            .collect()
    }

    fn max_outbox(&self) -> i64 {
        self.store.conn.query_row("SELECT COALESCE(MAX(id), 0) FROM outbox", [], |r| r.get(0)).unwrap_or(0)
    }
}

fn kinds(m: &[Message]) -> Vec<String> {
    m.iter()
        .map(|m| {
            m.events.iter().map(|e| format!("{}:{}", e.kind.as_str(), e.fingerprint)).collect::<Vec<_>>().join(",")
        })
        .collect()
}

#[test]
fn fires_once_repeats_and_resolves() {
    let mut h = H::new(config(|c| c.grouping.repeat_interval = ConfigDuration::from_secs(3600)));
    let a = [alert("sh/disk", AlertLevel::Warning)];
    assert_eq!(kinds(&h.step("sh", Some(&a), T0)), ["firing:sh/disk"]);
    assert!(h.step("sh", Some(&a), T0 + 1000).is_empty(), "deduplicated");
    assert_eq!(kinds(&h.step("sh", Some(&a), T0 + 3_600_000)), ["repeat:sh/disk"]);
    assert_eq!(kinds(&h.step("sh", Some(&[]), T0 + 3_601_000)), ["resolved:sh/disk"]);
    assert!(h.step("sh", Some(&[]), T0 + 3_602_000).is_empty());
}

#[test]
fn groups_wait_and_interval() {
    let mut h = H::new(config(|c| {
        c.grouping.group_wait = ConfigDuration::from_secs(10);
        c.grouping.group_interval = ConfigDuration::from_secs(60);
    }));
    assert!(h.step("sh", Some(&[alert("sh/a", AlertLevel::Warning)]), T0).is_empty());
    let both = [alert("sh/a", AlertLevel::Warning), alert("sh/b", AlertLevel::Critical)];
    assert!(h.step("sh", Some(&both), T0 + 5000).is_empty());
    let m = h.step("sh", Some(&both), T0 + 10_000);
    assert_eq!(kinds(&m), ["firing:sh/b,firing:sh/a"], "one message, critical first");
    assert!(h.step("sh", Some(&both[..1]), T0 + 20_000).is_empty(), "group_interval holds the resolution");
    assert_eq!(kinds(&h.step("sh", None, T0 + 70_000)), ["resolved:sh/b"]);
}

#[test]
fn inhibition_silences_and_acks() {
    let mut h = H::new(config(|c| c.grouping.repeat_interval = ConfigDuration::from_secs(60)));
    let both = [alert("sh/load", AlertLevel::Warning), alert("sh/disk", AlertLevel::Critical)];
    assert_eq!(kinds(&h.step("sh", Some(&both), T0)), ["firing:sh/disk"], "warning inhibited");
    assert_eq!(kinds(&h.step("sh", Some(&both[..1]), T0 + 1000)), ["firing:sh/load,resolved:sh/disk"]);
    h.policy.silences.push(Silence { component: Some("api".into()), ..Silence::default() });
    assert!(h.step("api", Some(&[alert("api/x", AlertLevel::Critical)]), T0 + 2000).is_empty(), "silenced");
    h.policy.silences.clear();
    assert_eq!(kinds(&h.step("api", None, T0 + 3000)), ["firing:api/x"], "notified when the silence ends");
    h.policy.acked.insert("api/x".into());
    let later = kinds(&h.step("api", None, T0 + 120_000));
    assert_eq!(later, ["repeat:sh/load"], "acknowledged api/x: no repeat; sh/load repeats");
}

#[test]
fn escalation_chain() {
    let mut h = H::new(config(|c| {
        c.channels
            .insert("sms".into(), ChannelConfig { kind: Some(ChannelKind::Internal), ..ChannelConfig::default() });
        c.channels
            .insert("oncall".into(), ChannelConfig { kind: Some(ChannelKind::Internal), ..ChannelConfig::default() });
        c.routes.push(Route {
            component: Some("api".into()),
            channels: vec!["webhook".into()],
            escalate: vec![
                Escalation { after: ConfigDuration::from_secs(900), channels: vec!["sms".into()] },
                Escalation { after: ConfigDuration::from_secs(1800), channels: vec!["oncall".into()] },
            ],
            ..Route::default()
        });
    }));
    let a = [alert("api/down", AlertLevel::Critical)];
    let chans = |m: &[Message]| m.iter().map(|m| m.channel.clone()).collect::<Vec<_>>();
    assert_eq!(chans(&h.step("api", Some(&a), T0)), ["webhook"]);
    assert!(h.step("api", Some(&a), T0 + 899_000).is_empty());
    assert_eq!(chans(&h.step("api", Some(&a), T0 + 900_000)), ["sms"]);
    assert_eq!(chans(&h.step("api", Some(&a), T0 + 1_800_000)), ["oncall"]);
    let mut resolved = chans(&h.step("api", Some(&[]), T0 + 1_900_000));
    resolved.sort();
    assert_eq!(resolved, ["oncall", "sms", "webhook"], "resolution goes to every channel that was told");
}

#[test]
fn rate_limit_summarises() {
    let mut h = H::new(config(|c| {
        c.grouping.group_by = GroupBy::Fingerprint;
        if let Some(w) = c.channels.get_mut("webhook") {
            w.rate_limit = Some(RateLimit { count: 2, per: ConfigDuration::from_secs(60) });
        }
    }));
    let many: Vec<Alert> = (0..10).map(|i| alert(&format!("sh/a{i}"), AlertLevel::Warning)).collect();
    assert_eq!(h.step("sh", Some(&many), T0).len(), 2);
    let sup: i64 = h.store.conn.query_row("SELECT count FROM suppressed", [], |r| r.get(0)).unwrap_or(0);
    assert_eq!(sup, 8);
    let later = h.step("sh", None, T0 + 30_000);
    assert_eq!(later.len(), 1);
    assert_eq!((later[0].suppressed, later[0].events.len()), (8, 0), "summary message");
}

#[test]
fn quiet_hours_defer_non_critical() {
    let mut h = H::new(config(|c| {
        c.inhibit = false;
        if let Some(w) = c.channels.get_mut("webhook") {
            w.quiet_hours = Some(QuietHours { start: "00:00".into(), end: "23:59".into(), utc: true });
        }
    }));
    // T0 is 14:13 UTC: inside the quiet hours.
    let m = h.step("sh", Some(&[alert("sh/w", AlertLevel::Warning), alert("sh/c", AlertLevel::Critical)]), T0);
    assert_eq!(kinds(&m), ["firing:sh/c"]);
    let queued: i64 = h.store.conn.query_row("SELECT COUNT(*) FROM queue", [], |r| r.get(0)).unwrap_or(0);
    assert_eq!(queued, 1, "the warning waits for the end of the quiet hours");
}

/// The gateway fails: one notification for it, none for the 30 endpoints behind it, even
/// when their report comes first; when it recovers, the endpoints still failing are
/// notified; an endpoint notified before its parent fired still gets its resolve.
#[test]
fn dependent_alerts_wait_for_and_are_held_back_by_their_parent() {
    let mut h = H::new(config(|c| {
        c.dependencies.push(crate::config::Dependency {
            name: "gateway".into(),
            parent: "^system_health/connectivity:gateway$".into(),
            children: "^api_endpoints/".into(),
            hold: ConfigDuration::from_secs(30),
        });
    }));
    let gateway = [alert("system_health/connectivity:gateway", AlertLevel::Critical)];
    let endpoints: Vec<Alert> =
        (0..30).map(|i| alert(&format!("api_endpoints/endpoint:e{i}"), AlertLevel::Critical)).collect();
    let events = |m: &[Message]| m.iter().map(|m| m.events.len()).sum::<usize>();
    // The endpoints' report first: held for their parent.
    assert!(h.step("api_endpoints", Some(&endpoints), T0).is_empty());
    assert_eq!(
        kinds(&h.step("system_health", Some(&gateway), T0 + 5_000)),
        ["firing:system_health/connectivity:gateway"]
    );
    // Past the hold, the parent still fires: still nothing for the children.
    assert!(h.step("api_endpoints", None, T0 + 60_000).is_empty());
    let held = h.engine.suppressed_by_parent(&h.store.conn, T0 + 60_000).unwrap();
    assert_eq!(held.len(), 30);
    assert_eq!(held[0].1, "gateway");
    // The gateway recovers: its resolve, and the children wait for their own reports.
    assert_eq!(
        kinds(&h.step("system_health", Some(&[]), T0 + 70_000)),
        ["resolved:system_health/connectivity:gateway"]
    );
    assert!(h.step("api_endpoints", Some(&endpoints[..10]), T0 + 71_000).is_empty());
    // Ten endpoints still fail a hold after the gateway was last seen: notified now.
    let m = h.step("api_endpoints", None, T0 + 100_000);
    assert_eq!(events(&m), 10, "{:?}", kinds(&m));
    // A child notified before its parent fired again still gets its resolve.
    h.step("system_health", Some(&gateway), T0 + 110_000);
    let m = h.step("api_endpoints", Some(&endpoints[..9]), T0 + 120_000);
    assert_eq!(kinds(&m), ["resolved:api_endpoints/endpoint:e9"]);
}
