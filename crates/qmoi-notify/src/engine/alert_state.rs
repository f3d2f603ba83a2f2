//! The notifier's record of each firing alert (table `alerts`): what it was told, when,
//! to which channels, and how far its escalation went.

use crate::model::{Event, EventKind};
use crate::store::Cached;
use chrono::{DateTime, Utc};
use qmoi_core::status::AlertLevel;
use rusqlite::{Connection, Transaction, params};
use std::collections::{BTreeMap, BTreeSet};

type Res<T> = rusqlite::Result<T>;

pub(super) fn level_of(s: &str) -> AlertLevel {
    match s {
        "critical" => AlertLevel::Critical,
        "warning" => AlertLevel::Warning,
        _ => AlertLevel::Info,
    }
}

pub(super) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[derive(Debug, Clone)]
pub(super) struct StoredAlert {
    pub(super) fingerprint: String,
    pub(super) component: String,
    pub(super) host: String,
    pub(super) level: AlertLevel,
    pub(super) title: String,
    pub(super) detail: String,
    pub(super) since: i64,
    pub(super) notified_at: Option<i64>,
    pub(super) first_notified_at: Option<i64>,
    pub(super) notified_channels: BTreeSet<String>,
    pub(super) escalation_step: usize,
    pub(super) am_sent_at: Option<i64>,
    pub(super) labels: qmoi_core::report::Labels,
}

impl StoredAlert {
    pub(super) fn event(&self, kind: EventKind, now: i64) -> Event {
        Event {
            kind,
            fingerprint: self.fingerprint.clone(),
            component: self.component.clone(),
            host: self.host.clone(),
            level: self.level,
            title: self.title.clone(),
            detail: self.detail.clone(),
            since: at(self.since),
            at: at(now),
            labels: self.labels.clone(),
        }
    }

    /// What routes match: the alert's own labels, then `component`, `severity`, `host`,
    /// `fingerprint` and `alertname` (which win over its own of the same name).
    pub(super) fn labels(&self) -> BTreeMap<&str, &str> {
        let alertname = self.fingerprint.split_once('/').map_or(self.fingerprint.as_str(), |(_, s)| s);
        let mut out: BTreeMap<&str, &str> = self.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        out.extend([
            ("component", self.component.as_str()),
            ("severity", self.level.as_str()),
            ("host", self.host.as_str()),
            ("fingerprint", self.fingerprint.as_str()),
            ("alertname", alertname),
        ]);
        out
    }
}

pub(super) fn load_alerts(conn: &Connection, component: Option<&str>) -> Res<Vec<StoredAlert>> {
    let sql = "SELECT fingerprint, component, host, level, title, detail, since, notified_at, first_notified_at,
                      notified_channels, escalation_step, am_sent_at, labels FROM alerts";
    let map = |r: &rusqlite::Row| -> Res<StoredAlert> {
        let channels: String = r.get(9)?;
        Ok(StoredAlert {
            fingerprint: r.get(0)?,
            component: r.get(1)?,
            host: r.get(2)?,
            level: level_of(&r.get::<_, String>(3)?),
            title: r.get(4)?,
            detail: r.get(5)?,
            since: r.get(6)?,
            notified_at: r.get(7)?,
            first_notified_at: r.get(8)?,
            notified_channels: serde_json::from_str(&channels).unwrap_or_default(),
            escalation_step: usize::try_from(r.get::<_, i64>(10)?).unwrap_or(0),
            am_sent_at: r.get(11)?,
            labels: qmoi_core::maintenance::labels_from_column(r.get::<_, Option<String>>(12)?.as_deref()),
        })
    };
    match component {
        Some(c) => {
            let mut st = conn.prepare_cached(&format!("{sql} WHERE component = ?1"))?;
            st.query_map([c], map)?.collect()
        }
        None => {
            let mut st = conn.prepare_cached(&format!("{sql} ORDER BY fingerprint"))?;
            st.query_map([], map)?.collect()
        }
    }
}

pub(super) fn save_notify_state(tx: &Transaction, a: &StoredAlert) -> Res<()> {
    tx.exec(
        "UPDATE alerts SET notified_at = ?2, first_notified_at = ?3, notified_channels = ?4, escalation_step = ?5,
                am_sent_at = ?6 WHERE fingerprint = ?1",
        params![
            a.fingerprint,
            a.notified_at,
            a.first_notified_at,
            serde_json::to_string(&a.notified_channels).unwrap_or_else(|_| "[]".into()),
            a.escalation_step as i64,
            a.am_sent_at
        ],
    )
    .map(|_| ())
}
