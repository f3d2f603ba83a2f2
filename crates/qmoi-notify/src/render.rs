//! Message bodies: templates (minijinja; built in, overridable from a folder) for email,
//! chat and SMS text, and the JSON payloads of Slack, Discord, the generic webhook and
//! Alertmanager.

use crate::model::{Event, Message};
use chrono::{DateTime, SecondsFormat, Utc};
use minijinja::Environment;
use qmoi_core::human::clip;
use qmoi_core::status::AlertLevel;
use serde::Serialize;
use serde_json::{Value, json};
use std::path::Path;

const BUILT_IN: [(&str, &str); 5] = [
    ("email_subject.txt", include_str!("templates/email_subject.txt")),
    ("email.txt", include_str!("templates/email.txt")),
    ("email.html", include_str!("templates/email.html")),
    ("chat.txt", include_str!("templates/chat.txt")),
    ("sms.txt", include_str!("templates/sms.txt")),
];

/// The templates, parsed once.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
}

#[derive(Serialize)]
struct Context<'a> {
    id: &'a str,
    channel: &'a str,
    group: &'a str,
    host: &'a str,
    test: bool,
    suppressed: u64,
    events: Vec<EventView<'a>>,
    firing: Vec<EventView<'a>>,
    resolved: Vec<EventView<'a>>,
    top_level: &'static str,
    dashboard_url: &'a str,
    subject: String,
}

#[derive(Serialize, Clone)]
struct EventView<'a> {
    kind: &'static str,
    fingerprint: &'a str,
    component: &'a str,
    host: &'a str,
    level: &'static str,
    title: &'a str,
    detail: &'a str,
    since: String,
    at: String,
}

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl<'a> EventView<'a> {
    fn of(e: &'a Event) -> Self {
        Self {
            kind: e.kind.as_str(),
            fingerprint: &e.fingerprint,
            component: &e.component,
            host: &e.host,
            level: e.level.as_str(),
            title: &e.title,
            detail: &e.detail,
            since: ts(&e.since),
            at: ts(&e.at),
        }
    }
}

/// The rendered texts of one message.
#[derive(Debug, Clone)]
pub struct Texts {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Templates {
    /// The built-in templates, with files of the same names in `dir` (when given) taking
    /// their place. A template with a syntax error is a configuration error.
    pub fn load(dir: Option<&Path>) -> Result<Self, String> {
        let mut env = Environment::new();
        env.set_keep_trailing_newline(false);
        for (name, source) in BUILT_IN {
            let text = match dir.map(|d| d.join(name)) {
                Some(p) if p.exists() => {
                    fs_err::read_to_string(&p).map_err(|e| format!("cannot read template: {e}"))?
                }
                _ => source.to_string(),
            };
            env.add_template_owned(name, text).map_err(|e| format!("template {name}: {e}"))?;
        }
        Ok(Self { env })
    }

    fn render(&self, name: &str, ctx: &Context) -> String {
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(s) => s,
            // A template that fails at render time (e.g. a filter on a missing value)
            // must not lose the notification: fall back to a plain description.
            Err(e) => {
                tracing::warn!(template = name, error = %e, "Template failed; sending a plain message instead.");
                format!("{} (template {name} failed: {e})", ctx.subject)
            }
        }
    }

    fn context<'a>(&self, msg: &'a Message, dashboard_url: &'a str) -> Context<'a> {
        let events: Vec<EventView> = msg.events.iter().map(EventView::of).collect();
        let mut ctx = Context {
            id: &msg.id,
            channel: &msg.channel,
            group: &msg.group,
            host: &msg.host,
            test: msg.test,
            suppressed: msg.suppressed,
            firing: msg.events.iter().filter(|e| e.kind.is_firing()).map(EventView::of).collect(),
            resolved: msg.events.iter().filter(|e| !e.kind.is_firing()).map(EventView::of).collect(),
            events,
            top_level: msg.top_level().as_str(),
            dashboard_url,
            subject: String::new(),
        };
        ctx.subject = self.render("email_subject.txt", &ctx).lines().next().unwrap_or_default().trim().to_string();
        ctx
    }

    pub fn email(&self, msg: &Message, dashboard_url: &str) -> Texts {
        let ctx = self.context(msg, dashboard_url);
        Texts { text: self.render("email.txt", &ctx), html: self.render("email.html", &ctx), subject: ctx.subject }
    }

    pub fn chat(&self, msg: &Message, dashboard_url: &str) -> String {
        let ctx = self.context(msg, dashboard_url);
        self.render("chat.txt", &ctx).trim_end().to_string()
    }

    pub fn sms(&self, msg: &Message, dashboard_url: &str) -> String {
        let ctx = self.context(msg, dashboard_url);
        clip(self.render("sms.txt", &ctx).trim(), 320)
    }
}

fn color(e: &Event) -> u32 {
    if !e.kind.is_firing() {
        return 0x2E7D32;
    }
    match e.level {
        AlertLevel::Critical => 0xB00020,
        AlertLevel::Warning => 0xE0A000,
        AlertLevel::Info => 0x2F6FD6,
    }
}

fn headline(e: &Event) -> String {
    let state = if e.kind.is_firing() { e.level.as_str().to_uppercase() } else { "RESOLVED".into() };
    format!("[{state}] {}", e.title)
}

/// Slack incoming-webhook payload: `text` (shown in notifications) plus one attachment per
/// alert (at most 20), coloured by level.
pub fn slack(msg: &Message, text: &str) -> Value {
    let attachments: Vec<Value> = msg
        .events
        .iter()
        .take(20)
        .map(|e| {
            json!({
                "color": format!("#{:06X}", color(e)),
                "title": clip(&headline(e), 150),
                "text": clip(&e.detail, 3000),
                "footer": format!("{} · {} · {}", e.component, e.host, e.fingerprint),
                "ts": e.at.timestamp(),
            })
        })
        .collect();
    json!({ "text": clip(text, 3000), "attachments": attachments })
}

/// Discord webhook payload: `content` plus one embed per alert (Discord allows 10).
pub fn discord(msg: &Message, text: &str) -> Value {
    let mut embeds: Vec<Value> = msg
        .events
        .iter()
        .take(10)
        .map(|e| {
            json!({
                "title": clip(&headline(e), 256),
                "description": clip(&e.detail, 4096),
                "color": color(e),
                "timestamp": ts(&e.at),
                "fields": [
                    {"name": "Component", "value": clip(&e.component, 1024), "inline": true},
                    {"name": "Host", "value": clip(&e.host, 1024), "inline": true},
                    {"name": "Since", "value": ts(&e.since), "inline": true},
                ],
                "footer": {"text": clip(&e.fingerprint, 2048)},
            })
        })
        .collect();
    if msg.events.len() > 10
        && let Some(Value::Object(last)) = embeds.last_mut()
    {
        last.insert("description".into(), json!(format!("… and {} more alerts", msg.events.len() - 9)));
    }
    json!({ "content": clip(text, 2000), "embeds": embeds })
}

/// The generic webhook payload (schema in docs/CONFIG.md, "Generic webhook payload").
pub fn generic(msg: &Message, dashboard_url: &str) -> Value {
    let alerts: Vec<Value> = msg
        .events
        .iter()
        .map(|e| {
            json!({
                "status": e.status(),
                "kind": e.kind.as_str(),
                "fingerprint": e.fingerprint,
                "component": e.component,
                "host": e.host,
                "level": e.level.as_str(),
                "title": e.title,
                "detail": e.detail,
                "since": ts(&e.since),
                "at": ts(&e.at),
            })
        })
        .collect();
    let firing = msg.events.iter().any(|e| e.kind.is_firing());
    let resolved = msg.events.iter().any(|e| !e.kind.is_firing());
    let status = match (msg.test, firing, resolved) {
        (true, _, _) => "test",
        (_, true, true) => "mixed",
        (_, true, false) => "firing",
        (_, false, true) => "resolved",
        _ => "summary",
    };
    json!({
        "version": "1",
        "id": msg.id,
        "status": status,
        "channel": msg.channel,
        "group": msg.group,
        "host": msg.host,
        "created_at": ts(&msg.created_at),
        "alerts": alerts,
        "suppressed": msg.suppressed,
        "test": msg.test,
        "dashboard_url": dashboard_url,
    })
}

/// Alertmanager `POST /api/v2/alerts` body. Firing alerts get `endsAt` = now + 4 ×
/// `resend` (as Prometheus does), so that Alertmanager resolves them by itself if the
/// notifier stops re-sending; resolved ones get `endsAt` = when they resolved.
pub fn alertmanager(msg: &Message, now: DateTime<Utc>, resend: std::time::Duration, dashboard_url: &str) -> Value {
    let ends_firing = now + chrono::Duration::from_std(resend * 4).unwrap_or_else(|_| chrono::Duration::minutes(4));
    let alerts: Vec<Value> = msg
        .events
        .iter()
        .map(|e| {
            let subject = e.fingerprint.split_once('/').map_or(e.fingerprint.as_str(), |(_, s)| s);
            // The alert's own labels (`team`…) route it in Alertmanager too; QMOI's own
            // names win over them.
            let mut labels: serde_json::Map<String, Value> =
                e.labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            labels.extend([
                ("alertname".to_string(), json!(subject)),
                ("component".to_string(), json!(e.component)),
                ("severity".to_string(), json!(e.level.as_str())),
                ("instance".to_string(), json!(e.host)),
                // The fleet's label for the host (remote write, rules, dashboards).
                ("host".to_string(), json!(e.host)),
                ("fingerprint".to_string(), json!(e.fingerprint)),
                ("source".to_string(), json!("qmoi")),
            ]);
            let mut v = json!({
                "labels": labels,
                "annotations": {"summary": e.title, "description": e.detail},
                "startsAt": ts(&e.since),
                "endsAt": ts(if e.kind.is_firing() { &ends_firing } else { &e.at }),
            });
            if !dashboard_url.is_empty()
                && let Value::Object(m) = &mut v
            {
                m.insert("generatorURL".into(), json!(dashboard_url));
            }
            v
        })
        .collect();
    Value::Array(alerts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EventKind;

    fn event(kind: EventKind, level: AlertLevel, title: &str) -> Event {
        let t = DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default();
        Event {
            kind,
            fingerprint: format!("system_health/{title}"),
            component: "system_health".into(),
            host: "web-01".into(),
            level,
            title: title.into(),
            detail: "<b>86%</b> used".into(),
            since: t,
            at: t,
            labels: Default::default(),
        }
    }

    fn message(events: Vec<Event>) -> Message {
        Message {
            id: "abc".into(),
            channel: "email".into(),
            group: "system_health".into(),
            host: "web-01".into(),
            created_at: DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default(),
            events,
            suppressed: 0,
            test: false,
            best_effort: false,
        }
    }

    #[test]
    fn email_subjects_and_escaping() -> Result<(), String> {
        let t = Templates::load(None)?;
        let one = t.email(&message(vec![event(EventKind::Firing, AlertLevel::Critical, "Disk full")]), "");
        assert_eq!(one.subject, "[QMOI CRITICAL] web-01: Disk full");
        assert!(one.text.contains("[CRITICAL] Disk full") && one.text.contains("<b>86%</b> used"), "{}", one.text);
        assert!(one.html.contains("&lt;b&gt;86%&lt;&#x2f;b&gt;") || one.html.contains("&lt;b&gt;86%"), "{}", one.html);
        let two = t.email(
            &message(vec![
                event(EventKind::Firing, AlertLevel::Warning, "Load high"),
                event(EventKind::Resolved, AlertLevel::Critical, "Disk full"),
            ]),
            "",
        );
        assert_eq!(two.subject, "[QMOI WARNING] web-01: 1 firing, 1 resolved (system_health)");
        let mut summary = message(vec![]);
        summary.suppressed = 37;
        assert_eq!(t.email(&summary, "").subject, "[QMOI] web-01: 37 more notifications suppressed");
        assert_eq!(t.sms(&summary, ""), "QMOI web-01: 37 more notifications suppressed");
        Ok(())
    }

    #[test]
    fn payload_shapes() {
        let mut many = Vec::new();
        for i in 0..12 {
            many.push(event(EventKind::Firing, AlertLevel::Warning, &format!("a{i}")));
        }
        let m = message(many);
        let d = discord(&m, "x");
        assert_eq!(d["embeds"].as_array().map(Vec::len), Some(10));
        assert_eq!(d["embeds"][9]["description"], "… and 3 more alerts");
        let s = slack(&m, "x");
        assert_eq!(s["attachments"][0]["color"], "#E0A000");
        let g = generic(&m, "");
        assert_eq!(g["status"], "firing");
        assert_eq!(g["alerts"].as_array().map(Vec::len), Some(12));
        let now = DateTime::from_timestamp(1_790_000_100, 0).unwrap_or_default();
        let a = alertmanager(&m, now, std::time::Duration::from_secs(60), "");
        assert_eq!(a[0]["labels"]["alertname"], "a0");
        assert_eq!(a[0]["endsAt"], "2026-09-21T14:19:00Z");
        // An alert's own labels go along; QMOI's names win over labels of the same name.
        let mut e = event(EventKind::Firing, AlertLevel::Warning, "checkout");
        e.labels = qmoi_core::alerts::parse_labels("team=payments,severity=page").unwrap();
        let a = alertmanager(&message(vec![e]), now, std::time::Duration::from_secs(60), "");
        assert_eq!((&a[0]["labels"]["team"], &a[0]["labels"]["severity"]), (&json!("payments"), &json!("warning")));
    }
}
