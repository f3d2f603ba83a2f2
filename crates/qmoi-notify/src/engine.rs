//! The policy engine: alert state from reports → events → groups → messages in the outbox.
//!
//! Pure decisions over the database and a clock passed in (unix milliseconds), so every
//! rule (grouping, repeat, escalation, inhibition, silences, acknowledgements, quiet hours,
//! rate limits) is tested without waiting.

use crate::config::{ChannelKind, Escalation, GroupBy, NotifyConfig, mask_url};
use crate::model::{Event, EventKind, Message};
use crate::store::{Cached, bump};
use chrono::{DateTime, Timelike, Utc};
use qmoi_core::report::Alert;
use qmoi_core::status::AlertLevel;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

type Res<T> = rusqlite::Result<T>;

fn level_of(s: &str) -> AlertLevel {
    match s {
        "critical" => AlertLevel::Critical,
        "warning" => AlertLevel::Warning,
        _ => AlertLevel::Info,
    }
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Acknowledgements and silences made in the dashboard (`data/history.db`).
#[derive(Debug, Default, Clone)]
pub struct Policy {
    pub acked: HashSet<String>,
    pub silences: Vec<Silence>,
}

#[derive(Debug, Clone, Default)]
pub struct Silence {
    pub component: Option<String>,
    pub fingerprint: Option<String>,
    pub level: Option<String>,
}

impl Policy {
    /// Read the dashboard's tables once (see [`PolicyReader`] for the daemon).
    pub fn load(path: &Path, now_s: i64) -> Result<Self, String> {
        PolicyReader::new(path).read(now_s)
    }

    pub fn silenced(&self, component: &str, fingerprint: &str, level: AlertLevel) -> bool {
        self.silences.iter().any(|s| {
            s.component.as_deref().is_none_or(|c| c == component)
                && s.fingerprint.as_deref().is_none_or(|f| f == fingerprint)
                && s.level.as_deref().is_none_or(|l| l == level.as_str())
        })
    }
}

/// Reads acknowledgements and silences from the dashboard's database, keeping one
/// read-only connection open between reads (reopened after an error, or once the file
/// appears).
pub struct PolicyReader {
    path: std::path::PathBuf,
    conn: Option<Connection>,
}

impl PolicyReader {
    pub fn new(path: &Path) -> Self {
        Self { path: path.to_path_buf(), conn: None }
    }

    /// A missing database means "no acknowledgements, no silences"; an unreadable one is
    /// an error the caller reports (and keeps the previous policy).
    pub fn read(&mut self, now_s: i64) -> Result<Policy, String> {
        if self.conn.is_none() {
            if !self.path.exists() {
                return Ok(Policy::default());
            }
            let conn = Connection::open_with_flags(&self.path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(|e| format!("{}: {e}", self.path.display()))?;
            let _ = conn.busy_timeout(std::time::Duration::from_secs(2));
            self.conn = Some(conn);
        }
        let Some(conn) = &self.conn else { return Ok(Policy::default()) };
        let read = || -> Res<Policy> {
            let mut p = Policy::default();
            if table_exists(conn, "acks")? {
                let mut st = conn.prepare_cached("SELECT fingerprint FROM acks")?;
                p.acked = st.query_map([], |r| r.get(0))?.collect::<Res<_>>()?;
            }
            if table_exists(conn, "silences")? {
                let mut st = conn.prepare_cached(
                    "SELECT component, fingerprint, level FROM silences WHERE deleted_at IS NULL AND expires_at > ?1",
                )?;
                p.silences = st
                    .query_map([now_s], |r| {
                        Ok(Silence { component: r.get(0)?, fingerprint: r.get(1)?, level: r.get(2)? })
                    })?
                    .collect::<Res<_>>()?;
            }
            Ok(p)
        };
        let r = read().map_err(|e| format!("{}: {e}", self.path.display()));
        if r.is_err() {
            self.conn = None;
        }
        r
    }
}

fn table_exists(conn: &Connection, name: &str) -> Res<bool> {
    conn.row("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1", [name], |_| Ok(()))
        .optional()
        .map(|o| o.is_some())
}

/// Token bucket per channel.
#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    capacity: f64,
    per_ms: f64,
    last: i64,
}

impl Bucket {
    fn take(&mut self, now: i64) -> bool {
        let elapsed = (now - self.last).max(0) as f64;
        self.tokens = (self.tokens + elapsed * self.capacity / self.per_ms).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Clone)]
struct StoredAlert {
    fingerprint: String,
    component: String,
    host: String,
    level: AlertLevel,
    title: String,
    detail: String,
    since: i64,
    notified_at: Option<i64>,
    first_notified_at: Option<i64>,
    notified_channels: BTreeSet<String>,
    escalation_step: usize,
    am_sent_at: Option<i64>,
}

impl StoredAlert {
    fn event(&self, kind: EventKind, now: i64) -> Event {
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
        }
    }

    fn labels(&self) -> BTreeMap<&'static str, &str> {
        let alertname = self.fingerprint.split_once('/').map_or(self.fingerprint.as_str(), |(_, s)| s);
        BTreeMap::from([
            ("component", self.component.as_str()),
            ("severity", self.level.as_str()),
            ("host", self.host.as_str()),
            ("fingerprint", self.fingerprint.as_str()),
            ("alertname", alertname),
        ])
    }
}

fn load_alerts(conn: &Connection, component: Option<&str>) -> Res<Vec<StoredAlert>> {
    let sql = "SELECT fingerprint, component, host, level, title, detail, since, notified_at, first_notified_at,
                      notified_channels, escalation_step, am_sent_at FROM alerts";
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

fn save_notify_state(tx: &Transaction, a: &StoredAlert) -> Res<()> {
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

/// Where an alert goes.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    pub channels: Vec<String>,
    pub retries: u32,
    pub escalate: Vec<Escalation>,
}

/// What one step did, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StepStats {
    pub transitions: usize,
    pub events: usize,
    pub messages: usize,
    pub suppressed: usize,
}

pub struct Engine {
    cfg: Arc<NotifyConfig>,
    routes: Vec<Option<regex::Regex>>,
    usable: BTreeMap<String, ChannelKind>,
    buckets: HashMap<String, Bucket>,
    host: String,
    /// Events of this step for channels with nothing to wait for (no group_wait, no
    /// group_interval, no rate limit, no quiet hours): they become messages in `flush`
    /// of the same transaction without a round trip through the `queue` table — the
    /// alert-to-notification path is a handful of statements.
    direct: BTreeMap<(String, String), (Vec<Event>, u32)>,
    /// The `queue` / `suppressed` tables may have rows (false only after a flush saw none).
    queue_maybe: bool,
    suppressed_maybe: bool,
    /// Outbox rows written by this step (id, channel, target, message): sent as soon as
    /// the transaction commits, without reading them back.
    pub created: Vec<(i64, String, i64, Message)>,
}

impl Engine {
    pub fn new(cfg: Arc<NotifyConfig>, host: String) -> Self {
        let routes =
            cfg.routes.iter().map(|r| r.fingerprint.as_deref().and_then(|re| regex::Regex::new(re).ok())).collect();
        let usable = cfg
            .channels
            .iter()
            .filter(|(_, c)| c.enabled)
            .filter_map(|(n, c)| c.kind_for(n).map(|k| (n.clone(), k)))
            .collect();
        Self {
            cfg,
            routes,
            usable,
            buckets: HashMap::new(),
            host,
            direct: BTreeMap::new(),
            queue_maybe: true,
            suppressed_maybe: true,
            created: Vec::new(),
        }
    }

    /// Forget what a previous step left half-done (a step whose transaction failed):
    /// its events and outbox rows were rolled back with it.
    pub fn begin_step(&mut self) {
        self.direct.clear();
        self.created.clear();
    }

    pub fn config(&self) -> &NotifyConfig {
        &self.cfg
    }

    pub fn kind(&self, channel: &str) -> Option<ChannelKind> {
        self.usable.get(channel).copied()
    }

    /// How many delivery targets a channel has (URLs, phone numbers; 1 for email).
    pub fn targets(&self, channel: &str) -> usize {
        let Some(c) = self.cfg.channels.get(channel) else { return 0 };
        match c.kind_for(channel) {
            Some(ChannelKind::Webhook | ChannelKind::Alertmanager) => c.urls.len(),
            Some(ChannelKind::Sms) => c.to.len(),
            Some(ChannelKind::Email | ChannelKind::Internal) => 1,
            None => 0,
        }
    }

    /// A target as shown in history and status: masked URL, number, server.
    pub fn target_label(&self, channel: &str, target: usize) -> String {
        let Some(c) = self.cfg.channels.get(channel) else { return "?".into() };
        match c.kind_for(channel) {
            Some(ChannelKind::Webhook) => c.urls.get(target).map_or("?".into(), |u| mask_url(u.url.expose())),
            Some(ChannelKind::Alertmanager) => c.urls.get(target).map_or("?".into(), |u| u.url.expose().to_string()),
            Some(ChannelKind::Sms) => c.to.get(target).map_or("?".into(), |n| n.to_string()),
            Some(ChannelKind::Email) => {
                let server = c.smtp_server.as_ref().map_or("?", |s| s.as_str());
                let to: Vec<&str> = if c.to.is_empty() {
                    c.username.iter().map(|u| u.as_str()).collect()
                } else {
                    c.to.iter().map(|t| t.as_str()).collect()
                };
                format!("{server} → {}", to.join(", "))
            }
            Some(ChannelKind::Internal) => "history".into(),
            None => "?".into(),
        }
    }

    fn group_key(&self, a: &StoredAlert) -> String {
        match self.cfg.grouping.group_by {
            GroupBy::Component => a.component.clone(),
            GroupBy::Fingerprint => a.fingerprint.clone(),
            GroupBy::All => "all".into(),
        }
    }

    fn level_retries(&self, level: AlertLevel) -> u32 {
        self.cfg.priorities.get(level.as_str()).map_or(3, |p| p.retry_attempts)
    }

    fn route(&self, a: &StoredAlert) -> Routing {
        let mut out = Routing { retries: self.level_retries(a.level), ..Routing::default() };
        let mut matched = false;
        let labels = a.labels();
        for (r, re) in self.cfg.routes.iter().zip(&self.routes) {
            let ok = r.component.as_deref().is_none_or(|c| c == a.component)
                && re.as_ref().is_none_or(|re| re.is_match(&a.fingerprint))
                && (r.level.is_empty() || r.level.contains(&a.level))
                && r.labels.iter().all(|(k, v)| labels.get(k.as_str()).is_some_and(|l| l == v));
            if !ok {
                continue;
            }
            if !matched {
                out.retries = r.retry_attempts.unwrap_or(out.retries);
                out.escalate = r.escalate.clone();
            }
            matched = true;
            out.channels.extend(r.channels.iter().cloned());
            if !r.continue_matching {
                break;
            }
        }
        if !matched && let Some(p) = self.cfg.priorities.get(a.level.as_str()) {
            out.channels = p.channels.clone();
        }
        // The notifier's own "channel X is failing" alert goes to the other channels.
        let failing = a.fingerprint.strip_prefix("notification/channel:");
        let mut seen = HashSet::new();
        out.channels.retain(|c| self.usable.contains_key(c) && failing != Some(c.as_str()) && seen.insert(c.clone()));
        for e in &mut out.escalate {
            e.channels.retain(|c| self.usable.contains_key(c));
        }
        out
    }

    /// Compare one component's current alerts with the stored ones and record the
    /// transitions: new / changed level (to notify), gone (resolved: queued now).
    pub fn observe(
        &mut self,
        tx: &Transaction,
        component: &str,
        host: &str,
        alerts: &[Alert],
        now: i64,
    ) -> Res<StepStats> {
        let mut stats = StepStats::default();
        let stored: HashMap<String, StoredAlert> =
            load_alerts(tx, Some(component))?.into_iter().map(|a| (a.fingerprint.clone(), a)).collect();
        let mut current = HashSet::with_capacity(alerts.len());
        for a in alerts {
            if !current.insert(a.fingerprint.as_str()) {
                continue;
            }
            match stored.get(&a.fingerprint) {
                None => {
                    tx.exec(
                        "INSERT INTO alerts (fingerprint, component, host, level, title, detail, since, first_seen)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        params![a.fingerprint, component, host, a.level.as_str(), a.title, a.detail, ms(a.since), now],
                    )?;
                    stats.transitions += 1;
                }
                Some(s) if s.level != a.level => {
                    tx.exec(
                        "UPDATE alerts SET level = ?2, title = ?3, detail = ?4, since = ?5, notified_at = NULL,
                                first_notified_at = NULL, escalation_step = 0 WHERE fingerprint = ?1",
                        params![a.fingerprint, a.level.as_str(), a.title, a.detail, ms(a.since)],
                    )?;
                    stats.transitions += 1;
                }
                Some(s) if s.title != a.title || s.detail != a.detail => {
                    tx.exec(
                        "UPDATE alerts SET title = ?2, detail = ?3 WHERE fingerprint = ?1",
                        params![a.fingerprint, a.title, a.detail],
                    )?;
                }
                Some(_) => {}
            }
        }
        for (fp, s) in &stored {
            if current.contains(fp.as_str()) {
                continue;
            }
            stats.transitions += 1;
            let routing = self.route(s);
            for ch in &s.notified_channels {
                let am = self.kind(ch) == Some(ChannelKind::Alertmanager);
                if (self.cfg.send_resolved || am) && self.usable.contains_key(ch) {
                    self.enqueue(tx, ch, s, s.event(EventKind::Resolved, now), routing.retries, now)?;
                    stats.events += 1;
                }
            }
            tx.exec("DELETE FROM alerts WHERE fingerprint = ?1", [fp])?;
        }
        Ok(stats)
    }

    /// Nothing makes this channel's messages wait: no grouping delays, no rate limit, no
    /// quiet hours.
    fn immediate(&self, channel: &str) -> bool {
        self.cfg.grouping.group_wait.get().is_zero()
            && self.cfg.grouping.group_interval.get().is_zero()
            && self.cfg.channels.get(channel).is_some_and(|c| c.rate_limit.is_none() && c.quiet_hours.is_none())
    }

    fn enqueue(
        &mut self,
        tx: &Transaction,
        channel: &str,
        a: &StoredAlert,
        event: Event,
        retries: u32,
        now: i64,
    ) -> Res<()> {
        let group = self.group_key(a);
        if self.immediate(channel) {
            let e = self.direct.entry((channel.to_string(), group)).or_insert_with(|| (Vec::new(), 0));
            e.0.push(event);
            e.1 = e.1.max(retries);
            return Ok(());
        }
        self.queue_maybe = true;
        let last: Option<i64> = tx
            .query_row(
                "SELECT last_sent FROM groups WHERE channel = ?1 AND group_key = ?2",
                params![channel, group],
                |r| r.get(0),
            )
            .optional()?;
        let gi = self.cfg.grouping.group_interval.get().as_millis() as i64;
        let gw = self.cfg.grouping.group_wait.get().as_millis() as i64;
        let not_before = last.map(|l| l + gi).filter(|t| *t > now).unwrap_or(now + gw);
        let json = serde_json::to_string(&event).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        tx.exec(
            "INSERT INTO queue (channel, group_key, not_before, level, retries, event) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![channel, group, not_before, event.level.as_str(), retries, json],
        )?;
        Ok(())
    }

    /// Decide what every firing alert needs now: first notification (unless silenced or
    /// inhibited), repeats and escalations (unless acknowledged), Alertmanager re-sends.
    /// `only`: just these components' alerts (the event path: a report changed); `None`:
    /// every alert (the periodic tick: repeats, escalations, silences that ended).
    pub fn tick(&mut self, tx: &Transaction, policy: &Policy, now: i64, only: Option<&[&str]>) -> Res<StepStats> {
        let mut stats = StepStats::default();
        let all = match only {
            None => load_alerts(tx, None)?,
            Some(components) => {
                let mut v = Vec::new();
                for c in components {
                    v.extend(load_alerts(tx, Some(c))?);
                }
                v
            }
        };
        let critical: HashSet<&str> =
            all.iter().filter(|a| a.level == AlertLevel::Critical).map(|a| a.component.as_str()).collect();
        let repeat = self.cfg.grouping.repeat_interval.get().as_millis() as i64;
        for a in &all {
            if policy.silenced(&a.component, &a.fingerprint, a.level) {
                continue;
            }
            if self.cfg.inhibit && a.level < AlertLevel::Critical && critical.contains(a.component.as_str()) {
                continue;
            }
            let mut a = a.clone();
            let routing = self.route(&a);
            let mut changed = false;
            match a.notified_at {
                None => {
                    for ch in &routing.channels {
                        self.enqueue(tx, ch, &a, a.event(EventKind::Firing, now), routing.retries, now)?;
                        stats.events += 1;
                        a.notified_channels.insert(ch.clone());
                        if self.kind(ch) == Some(ChannelKind::Alertmanager) {
                            a.am_sent_at = Some(now);
                        }
                    }
                    a.notified_at = Some(now);
                    a.first_notified_at = Some(now);
                    a.escalation_step = 0;
                    changed = true;
                }
                Some(last) if !policy.acked.contains(&a.fingerprint) => {
                    if now - last >= repeat {
                        let chans: Vec<String> = routing
                            .channels
                            .iter()
                            .filter(|c| self.kind(c) != Some(ChannelKind::Alertmanager))
                            .cloned()
                            .collect();
                        for ch in &chans {
                            self.enqueue(tx, ch, &a, a.event(EventKind::Repeat, now), routing.retries, now)?;
                            stats.events += 1;
                        }
                        a.notified_at = Some(now);
                        changed = true;
                    }
                    let first = a.first_notified_at.unwrap_or(last);
                    while let Some(step) = routing.escalate.get(a.escalation_step) {
                        if now - first < step.after.get().as_millis() as i64 {
                            break;
                        }
                        for ch in &step.channels {
                            self.enqueue(tx, ch, &a, a.event(EventKind::Escalation, now), routing.retries, now)?;
                            stats.events += 1;
                            a.notified_channels.insert(ch.clone());
                        }
                        a.escalation_step += 1;
                        changed = true;
                    }
                }
                Some(_) => {}
            }
            // Alertmanager forgets alerts that are not re-sent: re-post firing ones, outside
            // grouping and rate limits (they are refreshes, not new notifications).
            let ams: Vec<String> = a
                .notified_channels
                .iter()
                .filter(|c| self.kind(c) == Some(ChannelKind::Alertmanager))
                .cloned()
                .collect();
            for ch in ams {
                let resend = self.cfg.channels.get(&ch).map_or(60_000, |c| c.resend_interval().as_millis() as i64);
                if a.am_sent_at.is_none_or(|t| now - t >= resend) {
                    let mut msg = self.message(&ch, &self.group_key(&a), vec![a.event(EventKind::Repeat, now)], now);
                    msg.best_effort = true;
                    self.insert_outbox(tx, &msg, 1, now)?;
                    a.am_sent_at = Some(now);
                    changed = true;
                }
            }
            if changed {
                save_notify_state(tx, &a)?;
            }
        }
        Ok(stats)
    }

    fn message(&self, channel: &str, group: &str, events: Vec<Event>, now: i64) -> Message {
        Message {
            id: Message::new_id(at(now)),
            channel: channel.to_string(),
            group: group.to_string(),
            host: self.host.clone(),
            created_at: at(now),
            events,
            suppressed: 0,
            test: false,
            best_effort: false,
        }
    }

    /// Put a message into the outbox, one row per target of its channel.
    pub fn insert_outbox(&mut self, tx: &Transaction, msg: &Message, max_attempts: u32, now: i64) -> Res<usize> {
        let json = serde_json::to_string(msg).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        let n = self.targets(&msg.channel);
        for target in 0..n {
            tx.exec(
                "INSERT INTO outbox (msg_id, channel, target, created_at, max_attempts, next_attempt_at, message)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![msg.id, msg.channel, target as i64, now, max_attempts.max(1), now, json],
            )?;
            self.created.push((tx.last_insert_rowid(), msg.channel.clone(), target as i64, msg.clone()));
        }
        Ok(n)
    }

    fn in_quiet_hours(&self, channel: &str, now: i64) -> Option<i64> {
        let q = self.cfg.channels.get(channel)?.quiet_hours.as_ref()?;
        let (start, end) = q.minutes().ok()?;
        let t = at(now);
        let minute = if q.utc {
            t.hour() * 60 + t.minute()
        } else {
            let l = t.with_timezone(&chrono::Local);
            l.hour() * 60 + l.minute()
        };
        let inside = if start <= end { minute >= start && minute < end } else { minute >= start || minute < end };
        if !inside {
            return None;
        }
        let until_end = (i64::from(end) - i64::from(minute)).rem_euclid(24 * 60);
        Some(now + until_end * 60_000 - i64::from(t.second()) * 1000)
    }

    fn take_token(&mut self, channel: &str, now: i64) -> bool {
        let Some(rl) = self.cfg.channels.get(channel).and_then(|c| c.rate_limit) else { return true };
        let b = self.buckets.entry(channel.to_string()).or_insert_with(|| Bucket {
            tokens: f64::from(rl.count),
            capacity: f64::from(rl.count),
            per_ms: rl.per.get().as_millis().max(1) as f64,
            last: now,
        });
        b.take(now)
    }

    /// Turn due groups into messages (one per channel and group), honouring quiet hours
    /// and rate limits; a limited message is counted, recorded and summarised later, not
    /// silently lost. `ignore_wait` flushes everything now (`--once`).
    pub fn flush(&mut self, tx: &Transaction, now: i64, ignore_wait: bool) -> Res<StepStats> {
        let mut stats = StepStats::default();
        for ((channel, group), (mut events, retries)) in std::mem::take(&mut self.direct) {
            events.sort_by(|a, b| b.kind.is_firing().cmp(&a.kind.is_firing()).then(b.level.cmp(&a.level)));
            let msg = self.message(&channel, &group, events, now);
            self.insert_outbox(tx, &msg, retries.saturating_add(1), now)?;
            stats.messages += 1;
        }
        if !self.queue_maybe && !self.suppressed_maybe {
            return Ok(stats);
        }
        let groups: Vec<(String, String, i64)> = {
            let mut st = tx.prepare_cached(
                "SELECT channel, group_key, MIN(not_before) FROM queue GROUP BY channel, group_key ORDER BY MIN(id)",
            )?;
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Res<_>>()?
        };
        self.queue_maybe = !groups.is_empty();
        for (channel, group, not_before) in groups {
            if !ignore_wait && not_before > now {
                continue;
            }
            let rows: Vec<(i64, String, u32, String)> = {
                let mut st = tx.prepare_cached(
                    "SELECT id, level, retries, event FROM queue WHERE channel = ?1 AND group_key = ?2 ORDER BY id",
                )?;
                st.query_map(params![channel, group], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect::<Res<_>>()?
            };
            if self.kind(&channel).is_none() {
                // The channel was removed from the config since these were queued.
                for (id, _, _, _) in &rows {
                    tx.exec("DELETE FROM queue WHERE id = ?1", [id])?;
                }
                tracing::warn!(channel, n = rows.len(), "Dropping queued events of a channel no longer configured.");
                continue;
            }
            let mut take = Vec::with_capacity(rows.len());
            if let Some(end) = self.in_quiet_hours(&channel, now) {
                for r in rows {
                    if r.1 == "critical" {
                        take.push(r);
                    } else {
                        tx.exec("UPDATE queue SET not_before = ?2 WHERE id = ?1", params![r.0, end])?;
                    }
                }
            } else {
                take = rows;
            }
            if take.is_empty() {
                continue;
            }
            let mut events: Vec<Event> = take.iter().filter_map(|r| serde_json::from_str(&r.3).ok()).collect();
            events.sort_by(|a, b| b.kind.is_firing().cmp(&a.kind.is_firing()).then(b.level.cmp(&a.level)));
            let retries = take.iter().map(|r| r.2).max().unwrap_or(3);
            for (id, _, _, _) in &take {
                tx.exec("DELETE FROM queue WHERE id = ?1", [id])?;
            }
            self.summary_if_due(tx, &channel, now, &mut stats)?;
            if self.take_token(&channel, now) {
                let msg = self.message(&channel, &group, events, now);
                self.insert_outbox(tx, &msg, retries.saturating_add(1), now)?;
                tx.exec(
                    "INSERT INTO groups (channel, group_key, last_sent) VALUES (?1, ?2, ?3)
                     ON CONFLICT (channel, group_key) DO UPDATE SET last_sent = excluded.last_sent",
                    params![channel, group, now],
                )?;
                stats.messages += 1;
            } else {
                self.suppressed_maybe = true;
                let n = events.len() as u64;
                tx.exec(
                    "INSERT INTO suppressed (channel, count) VALUES (?1, ?2)
                     ON CONFLICT (channel) DO UPDATE SET count = count + excluded.count",
                    params![channel, n as i64],
                )?;
                let fps: Vec<&str> = events.iter().map(|e| e.fingerprint.as_str()).collect();
                tx.exec(
                    "INSERT INTO history (at, msg_id, channel, target, result, description, fingerprints, attempt, detail)
                     VALUES (?1, '', ?2, '', 'suppressed', ?3, ?4, 0, 'rate limit reached; counted for the summary message')",
                    params![now, channel, format!("{n} notification(s) for group {group}"), fps.join(" ")],
                )?;
                bump(tx, &channel, "suppressed", n)?;
                stats.suppressed += events.len();
            }
        }
        // Channels with suppressed notifications and no new message: summary when allowed.
        let pending: Vec<String> = {
            let mut st = tx.prepare_cached("SELECT channel FROM suppressed WHERE count > 0")?;
            st.query_map([], |r| r.get(0))?.collect::<Res<_>>()?
        };
        self.suppressed_maybe = !pending.is_empty();
        for channel in pending {
            self.summary_if_due(tx, &channel, now, &mut stats)?;
        }
        Ok(stats)
    }

    fn summary_if_due(&mut self, tx: &Transaction, channel: &str, now: i64, stats: &mut StepStats) -> Res<()> {
        let count: Option<i64> =
            tx.row("SELECT count FROM suppressed WHERE channel = ?1", [channel], |r| r.get(0)).optional()?;
        let Some(count) = count.filter(|c| *c > 0) else { return Ok(()) };
        if self.kind(channel).is_none() || !self.take_token(channel, now) {
            return Ok(());
        }
        let mut msg = self.message(channel, "summary", Vec::new(), now);
        msg.suppressed = count as u64;
        self.insert_outbox(tx, &msg, self.level_retries(AlertLevel::Warning).saturating_add(1), now)?;
        tx.exec("DELETE FROM suppressed WHERE channel = ?1", [channel])?;
        stats.messages += 1;
        Ok(())
    }

    /// Firing alerts known to the notifier, by level.
    pub fn firing_counts(conn: &Connection) -> Res<BTreeMap<String, u64>> {
        let mut st = conn.prepare_cached("SELECT level, COUNT(*) FROM alerts GROUP BY level")?;
        st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ChannelConfig, Priority, QuietHours, RateLimit, Route, UrlEntry};
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
        Alert { fingerprint: fp.into(), level, title: fp.into(), detail: "d".into(), since: at(T0) }
    }

    struct H {
        store: Store,
        engine: Engine,
        policy: Policy,
        _dir: tempfile::TempDir,
    }

    impl H {
        fn new(cfg: Arc<NotifyConfig>) -> Self {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let store =
                Store::open(&dir.path().join("n.db"), crate::config::Sync::Normal).unwrap_or_else(|e| panic!("{e}"));
            Self { store, engine: Engine::new(cfg, "h".into()), policy: Policy::default(), _dir: dir }
        }

        /// One step like the daemon's; returns the messages that entered the outbox.
        fn step(&mut self, component: &str, alerts: Option<&[Alert]>, now: i64) -> Vec<Message> {
            let before: i64 = self.max_outbox();
            let tx = self.store.conn.transaction().unwrap_or_else(|e| panic!("{e}"));
            if let Some(a) = alerts {
                self.engine.observe(&tx, component, "h", a, now).unwrap_or_else(|e| panic!("{e}"));
            }
            self.engine.tick(&tx, &self.policy, now, None).unwrap_or_else(|e| panic!("{e}"));
            self.engine.flush(&tx, now, false).unwrap_or_else(|e| panic!("{e}"));
            tx.commit().unwrap_or_else(|e| panic!("{e}"));
            let mut st = self
                .store
                .conn
                .prepare("SELECT message FROM outbox WHERE id > ?1 AND target = 0 ORDER BY id")
                .unwrap_or_else(|e| panic!("{e}"));
            st.query_map([before], |r| r.get::<_, String>(0))
                .unwrap_or_else(|e| panic!("{e}"))
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
            c.channels.insert(
                "oncall".into(),
                ChannelConfig { kind: Some(ChannelKind::Internal), ..ChannelConfig::default() },
            );
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
}
