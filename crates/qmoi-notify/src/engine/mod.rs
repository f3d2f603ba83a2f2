//! The policy engine: alert state from reports → events → groups → messages in the outbox.
//!
//! Pure decisions over the database and a clock passed in (unix milliseconds), so every
//! rule (grouping, repeat, escalation, inhibition, silences, acknowledgements, quiet hours,
//! rate limits) is tested without waiting.
//!
//! - [`alert_state`]: the stored state of each alert (table `alerts`).
//! - `tests`: every rule against an in-memory clock.

mod alert_state;
#[cfg(test)]
mod tests;

use crate::config::{ChannelKind, Escalation, GroupBy, NotifyConfig, mask_url};
use crate::model::{Event, EventKind, Message};
use crate::policy::Policy;
use crate::store::{Cached, bump};
use alert_state::{StoredAlert, at, load_alerts, ms, save_notify_state};
use chrono::Timelike;
use qmoi_core::report::Alert;
use qmoi_core::status::AlertLevel;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

type Res<T> = rusqlite::Result<T>;

/// Where an alert goes.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    pub channels: Vec<String>,
    pub retries: u32,
    pub escalate: Vec<Escalation>,
}

/// Where an alert stands with its `[[dependencies]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DepState {
    Free,
    /// Young: its parent may still show up.
    Hold,
    /// (rule, the firing parent's fingerprint).
    Suppressed(String, String),
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
    /// `[[dependencies]]`: (name, parent, children, hold in ms).
    deps: Vec<(String, regex::Regex, regex::Regex, i64)>,
    /// When each dependency's parent was last seen firing (this process's memory): after a
    /// parent recovers its children wait `hold` again, for their own reports to catch up.
    parent_seen: Vec<Option<i64>>,
    usable: BTreeMap<String, ChannelKind>,
    /// A token bucket per rate-limited channel.
    buckets: HashMap<String, qmoi_core::ratelimit::TokenBucket>,
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
        let deps = cfg
            .dependencies
            .iter()
            .filter_map(|d| {
                let (p, c) = (regex::Regex::new(&d.parent).ok()?, regex::Regex::new(&d.children).ok()?);
                Some((d.name.clone(), p, c, d.hold.get().as_millis() as i64))
            })
            .collect();
        let usable = cfg
            .channels
            .iter()
            .filter(|(_, c)| c.enabled)
            .filter_map(|(n, c)| c.kind_for(n).map(|k| (n.clone(), k)))
            .collect();
        let parent_seen = vec![None; cfg.dependencies.len()];
        Self {
            cfg,
            routes,
            deps,
            parent_seen,
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
                        "INSERT INTO alerts (fingerprint, component, host, level, title, detail, since, first_seen, labels)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                        params![
                            a.fingerprint,
                            component,
                            host,
                            a.level.as_str(),
                            a.title,
                            a.detail,
                            ms(a.since),
                            now,
                            qmoi_core::maintenance::labels_to_column(&a.labels)
                        ],
                    )?;
                    stats.transitions += 1;
                }
                Some(s) if s.level != a.level => {
                    tx.exec(
                        "UPDATE alerts SET level = ?2, title = ?3, detail = ?4, since = ?5, notified_at = NULL,
                                first_notified_at = NULL, escalation_step = 0, labels = ?6 WHERE fingerprint = ?1",
                        params![
                            a.fingerprint,
                            a.level.as_str(),
                            a.title,
                            a.detail,
                            ms(a.since),
                            qmoi_core::maintenance::labels_to_column(&a.labels)
                        ],
                    )?;
                    stats.transitions += 1;
                }
                Some(s) if s.title != a.title || s.detail != a.detail || s.labels != a.labels => {
                    tx.exec(
                        "UPDATE alerts SET title = ?2, detail = ?3, labels = ?4 WHERE fingerprint = ?1",
                        params![a.fingerprint, a.title, a.detail, qmoi_core::maintenance::labels_to_column(&a.labels)],
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

    /// Which dependency holds `fp` back now, given the firing fingerprints: `Suppressed`
    /// while a parent of it fires; `Hold` while it is younger than the rule's hold (its
    /// parent may be about to show up) or its parent stopped firing less than the hold
    /// ago (its own report may be about to show it recovered); `Free` otherwise.
    fn dependency(&self, fp: &str, since: i64, firing: &[&str], now: i64) -> DepState {
        let mut hold = false;
        for ((name, parent, children, wait), seen) in self.deps.iter().zip(&self.parent_seen) {
            if parent.is_match(fp) || !children.is_match(fp) {
                continue;
            }
            if let Some(p) = firing.iter().find(|f| **f != fp && parent.is_match(f)) {
                return DepState::Suppressed(name.clone(), (*p).to_string());
            }
            hold |= now - since < *wait || seen.is_some_and(|t| now - t < *wait);
        }
        if hold { DepState::Hold } else { DepState::Free }
    }

    /// The firing alerts held back by a firing parent: (fingerprint, rule, parent).
    pub fn suppressed_by_parent(&self, conn: &Connection, now: i64) -> Res<Vec<(String, String, String)>> {
        if self.deps.is_empty() {
            return Ok(Vec::new());
        }
        let all = load_alerts(conn, None)?;
        let firing: Vec<&str> = all.iter().map(|a| a.fingerprint.as_str()).collect();
        Ok(all
            .iter()
            .filter_map(|a| match self.dependency(&a.fingerprint, a.since, &firing, now) {
                DepState::Suppressed(rule, parent) => Some((a.fingerprint.clone(), rule, parent)),
                _ => None,
            })
            .collect())
    }

    /// Decide what every firing alert needs now: first notification (unless silenced,
    /// inhibited or held back by a firing parent), repeats and escalations (unless
    /// acknowledged), Alertmanager re-sends.
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
        // Parents may belong to components this step does not look at: every firing
        // fingerprint, when there are dependencies.
        let firing_fps: Vec<String> = if self.deps.is_empty() {
            Vec::new()
        } else {
            let mut st = tx.prepare_cached("SELECT fingerprint FROM alerts")?;
            st.query_map([], |r| r.get(0))?.collect::<Res<_>>()?
        };
        let firing: Vec<&str> = firing_fps.iter().map(String::as_str).collect();
        for ((_, parent, _, _), seen) in self.deps.iter().zip(self.parent_seen.iter_mut()) {
            if firing.iter().any(|f| parent.is_match(f)) {
                *seen = Some(now);
            }
        }
        let repeat = self.cfg.grouping.repeat_interval.get().as_millis() as i64;
        for a in &all {
            if policy.silenced(&a.component, &a.fingerprint, a.level, &a.labels) {
                continue;
            }
            if self.cfg.inhibit && a.level < AlertLevel::Critical && critical.contains(a.component.as_str()) {
                continue;
            }
            if !self.deps.is_empty() && self.dependency(&a.fingerprint, a.since, &firing, now) != DepState::Free {
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
        // `count` messages per `per`, all of them at once if need be; the clock in seconds.
        let secs = now as f64 / 1000.0;
        let per = rl.per.get().as_secs_f64().max(0.001);
        let b = self.buckets.entry(channel.to_string()).or_insert_with(|| {
            qmoi_core::ratelimit::TokenBucket::full(f64::from(rl.count), f64::from(rl.count) / per, secs)
        });
        b.take(secs).is_ok()
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
