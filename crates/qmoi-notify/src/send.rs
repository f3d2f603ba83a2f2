//! Delivery of one message to one target of a channel: SMTP (lettre), webhooks (Slack,
//! Discord, generic, with optional HMAC signature), Twilio SMS, Alertmanager.
//!
//! Errors say what the server said, with secrets masked (webhook URLs carry tokens).

use crate::config::{ChannelConfig, ChannelKind, NotifyConfig, SmtpSecurity, UrlEntry, WebhookFormat, mask_url};
use crate::model::Message;
use crate::render::{self, Templates};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;

/// A failed attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Worth trying again (network error, timeout, 5xx, 429), maybe after a given delay.
    Retry { error: String, after: Option<Duration> },
    /// Trying again will not help (4xx: bad URL, bad credentials, rejected recipient).
    Permanent(String),
}

impl Failure {
    pub fn message(&self) -> &str {
        match self {
            Self::Retry { error, .. } | Self::Permanent(error) => error,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

pub struct Sender {
    cfg: Arc<NotifyConfig>,
    templates: Arc<Templates>,
    http: reqwest::Client,
}

const USER_AGENT: &str = concat!("qmoi-notify/", env!("CARGO_PKG_VERSION"));
/// The longest a receiver's `Retry-After` may push a retry back.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

impl Sender {
    pub fn new(cfg: Arc<NotifyConfig>, templates: Arc<Templates>) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cannot create the HTTP client: {e}"))?;
        Ok(Self { cfg, templates, http })
    }

    fn timeout(&self, c: &ChannelConfig) -> Duration {
        c.timeout.map_or_else(|| self.cfg.timeout.get(), |t| t.get())
    }

    /// Deliver `msg` to target `target` of its channel. `Ok` carries what the server said.
    pub async fn send(&self, msg: &Message, target: usize) -> Result<String, Failure> {
        let Some(c) = self.cfg.channels.get(&msg.channel) else {
            return Err(Failure::Permanent(format!("channel '{}' is no longer configured", msg.channel)));
        };
        let Some(kind) = c.kind_for(&msg.channel) else {
            return Err(Failure::Permanent(format!("channel '{}' has no type", msg.channel)));
        };
        let timeout = self.timeout(c);
        let fut = async {
            match kind {
                ChannelKind::Email => self.email(c, msg, timeout).await,
                ChannelKind::Webhook => match c.urls.get(target) {
                    Some(u) => self.webhook(c, u, msg, timeout).await,
                    None => Err(Failure::Permanent(format!("webhook target {target} no longer configured"))),
                },
                ChannelKind::Sms => match c.to.get(target) {
                    Some(to) => self.sms(c, to.as_str(), msg, timeout).await,
                    None => Err(Failure::Permanent(format!("sms recipient {target} no longer configured"))),
                },
                ChannelKind::Alertmanager => match c.urls.get(target) {
                    Some(u) => self.alertmanager(c, u, msg, timeout).await,
                    None => Err(Failure::Permanent(format!("alertmanager target {target} no longer configured"))),
                },
                ChannelKind::Internal => Ok("recorded in the notification history".to_string()),
            }
        };
        // lettre's own timeout covers each SMTP command; this bounds the whole attempt.
        match tokio::time::timeout(timeout + Duration::from_secs(1), fut).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Retry { error: format!("no answer within {}", fmt_d(timeout)), after: None }),
        }
    }

    async fn email(&self, c: &ChannelConfig, msg: &Message, timeout: Duration) -> Result<String, Failure> {
        use lettre::message::{Mailbox, MultiPart};
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::transport::smtp::client::{Tls, TlsParameters};
        use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

        let server = c.smtp_server.as_ref().map(|s| s.as_str().to_string()).unwrap_or_default();
        let security =
            c.security.unwrap_or(if c.smtp_port == Some(465) { SmtpSecurity::Tls } else { SmtpSecurity::Starttls });
        let port = c.smtp_port.unwrap_or(match security {
            SmtpSecurity::Tls => 465,
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Plain => 25,
        });
        let from_s = c.from.as_ref().or(c.username.as_ref()).map(|s| s.as_str().to_string()).unwrap_or_default();
        let from: Mailbox =
            from_s.parse().map_err(|e| Failure::Permanent(format!("sender address '{from_s}' is not valid: {e}")))?;
        let texts = self.templates.email(msg, self.cfg.dashboard_url.as_str());
        let mut b = lettre::Message::builder().from(from).subject(texts.subject);
        let recipients: Vec<&str> = if c.to.is_empty() {
            c.username.iter().map(|u| u.as_str()).collect()
        } else {
            c.to.iter().map(|t| t.as_str()).collect()
        };
        for r in recipients {
            let mb: Mailbox =
                r.parse().map_err(|e| Failure::Permanent(format!("recipient '{r}' is not valid: {e}")))?;
            b = b.to(mb);
        }
        let email = b
            .multipart(MultiPart::alternative_plain_html(texts.text, texts.html))
            .map_err(|e| Failure::Permanent(format!("cannot build the email: {e}")))?;
        let ca = match &c.ca_file {
            Some(path) => {
                let pem = std::fs::read(path.as_str())
                    .map_err(|e| Failure::Permanent(format!("cannot read ca_file {path}: {e}")))?;
                Some(
                    lettre::transport::smtp::client::Certificate::from_pem(&pem)
                        .map_err(|e| Failure::Permanent(format!("ca_file {path}: {e}")))?,
                )
            }
            None => None,
        };
        let tls = |host: &str| {
            let mut b = TlsParameters::builder(host.to_string());
            if let Some(ca) = ca.clone() {
                b = b.add_root_certificate(ca);
            }
            b.build_rustls().map_err(|e| Failure::Permanent(format!("TLS setup: {e}")))
        };
        let tls = match security {
            SmtpSecurity::Plain => Tls::None,
            SmtpSecurity::Starttls => Tls::Required(tls(&server)?),
            SmtpSecurity::Tls => Tls::Wrapper(tls(&server)?),
        };
        let mut t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server.as_str())
            .port(port)
            .tls(tls)
            .timeout(Some(timeout));
        if let (Some(u), Some(p)) = (&c.username, &c.password) {
            t = t.credentials(Credentials::new(u.as_str().to_string(), p.expose().to_string()));
        }
        let transport = t.build();
        match transport.send(email).await {
            Ok(resp) => Ok(format!(
                "{server}:{port} accepted: {} {}",
                resp.code(),
                resp.message().collect::<Vec<_>>().join(" ")
            )),
            Err(e) => {
                let text = format!("SMTP {server}:{port}: {e}");
                if e.is_permanent() {
                    Err(Failure::Permanent(text))
                } else {
                    Err(Failure::Retry { error: text, after: None })
                }
            }
        }
    }

    async fn webhook(
        &self,
        c: &ChannelConfig,
        u: &UrlEntry,
        msg: &Message,
        timeout: Duration,
    ) -> Result<String, Failure> {
        let url = u.url.expose();
        let format = match u.format.unwrap_or(c.format) {
            WebhookFormat::Auto => detect_format(url),
            f => f,
        };
        let dash = self.cfg.dashboard_url.as_str();
        let body = match format {
            WebhookFormat::Slack => render::slack(msg, &self.templates.chat(msg, dash)),
            WebhookFormat::Discord => render::discord(msg, &self.templates.chat(msg, dash)),
            _ => render::generic(msg, dash),
        };
        let body =
            serde_json::to_vec(&body).map_err(|e| Failure::Permanent(format!("cannot encode the payload: {e}")))?;
        let mut req = self
            .http
            .post(url)
            .timeout(timeout)
            .header("content-type", "application/json")
            .header("x-qmoi-notification-id", &msg.id);
        for (k, v) in c.headers.iter().chain(&u.headers) {
            req = req.header(k.as_str(), v.expose());
        }
        if let Some(key) = u.secret.as_ref().or(c.secret.as_ref()) {
            req = req.header("x-qmoi-signature", signature(key.expose().as_bytes(), &body));
        }
        self.post(req.body(body), &mask_url(url)).await
    }

    async fn sms(&self, c: &ChannelConfig, to: &str, msg: &Message, timeout: Duration) -> Result<String, Failure> {
        let base = c.base_url.as_ref().map_or("https://api.twilio.com", |b| b.as_str()).trim_end_matches('/');
        let sid = c.account_sid.as_ref().map_or("", |s| s.as_str());
        let token = c.auth_token.as_ref().map_or("", |t| t.expose());
        let from = c.from.as_ref().map_or("", |f| f.as_str());
        let text = self.templates.sms(msg, self.cfg.dashboard_url.as_str());
        let form = format!("To={}&From={}&Body={}", urlencode(to), urlencode(from), urlencode(&text));
        let url = format!("{base}/2010-04-01/Accounts/{}/Messages.json", urlencode(sid));
        let req = self
            .http
            .post(&url)
            .timeout(timeout)
            .basic_auth(sid, Some(token))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form);
        let shown = format!("{}/… to {to}", mask_url(base).trim_end_matches("/***"));
        let resp = req.send().await.map_err(|e| net_error(&shown, &e))?;
        let status = resp.status();
        let text = read_limited(resp).await;
        if status.is_success() {
            let sid = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("sid").and_then(|s| s.as_str()).map(str::to_string))
                .unwrap_or_default();
            return Ok(format!("Twilio accepted ({status}) message {sid}"));
        }
        // Twilio errors: {"code": 21211, "message": "The 'To' number … is not valid.", …}
        let detail = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| {
                let m = v.get("message")?.as_str()?.to_string();
                Some(match v.get("code").and_then(serde_json::Value::as_i64) {
                    Some(code) => format!("Twilio error {code}: {m}"),
                    None => m,
                })
            })
            .unwrap_or_else(|| qmoi_core::human::clip(text.trim(), 300));
        Err(classify(status, &format!("{shown}: HTTP {status}: {detail}"), None))
    }

    async fn alertmanager(
        &self,
        c: &ChannelConfig,
        u: &UrlEntry,
        msg: &Message,
        timeout: Duration,
    ) -> Result<String, Failure> {
        let base = u.url.expose().trim_end_matches('/');
        let url = format!("{base}/api/v2/alerts");
        let body = render::alertmanager(msg, chrono::Utc::now(), c.resend_interval(), self.cfg.dashboard_url.as_str());
        let body =
            serde_json::to_vec(&body).map_err(|e| Failure::Permanent(format!("cannot encode the alerts: {e}")))?;
        let mut req = self.http.post(&url).timeout(timeout).header("content-type", "application/json").body(body);
        for (k, v) in c.headers.iter().chain(&u.headers) {
            req = req.header(k.as_str(), v.expose());
        }
        self.post(req, &url).await
    }

    async fn post(&self, req: reqwest::RequestBuilder, shown: &str) -> Result<String, Failure> {
        let resp = req.send().await.map_err(|e| net_error(shown, &e))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| qmoi_core::retry::retry_after(v, MAX_RETRY_AFTER));
        let text = read_limited(resp).await;
        if status.is_success() {
            return Ok(format!("{shown}: HTTP {status}"));
        }
        let body = qmoi_core::human::clip(text.trim(), 300);
        Err(classify(status, &format!("{shown}: HTTP {status}: {body}"), retry_after))
    }
}

/// Read at most 16 KiB of a response body (a hostile receiver cannot make us buffer more).
async fn read_limited(mut resp: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        buf.extend_from_slice(&chunk);
        if buf.len() >= 16 * 1024 {
            buf.truncate(16 * 1024);
            break;
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn classify(status: reqwest::StatusCode, text: &str, after: Option<Duration>) -> Failure {
    let code = status.as_u16();
    if code == 429 || code == 408 || status.is_server_error() {
        Failure::Retry { error: text.to_string(), after }
    } else {
        Failure::Permanent(text.to_string())
    }
}

fn net_error(shown: &str, e: &reqwest::Error) -> Failure {
    // `without_url`: reqwest puts the full URL (with its token) into errors.
    let text = qmoi_core::human::with_causes(format!("{shown}: {}", strip_url(e)), std::error::Error::source(e));
    let text = if e.is_timeout() { format!("{shown}: timed out") } else { text };
    Failure::Retry { error: text, after: None }
}

fn strip_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "");
        s = s.replace(" for url ()", "").replace(" ()", "");
    }
    s
}

/// Slack for hooks.slack.com, Discord for discord(app).com/api/webhooks, generic otherwise.
pub fn detect_format(url: &str) -> WebhookFormat {
    let Ok(u) = reqwest::Url::parse(url) else { return WebhookFormat::Generic };
    let host = u.host_str().unwrap_or_default();
    if host == "hooks.slack.com" {
        WebhookFormat::Slack
    } else if (host == "discord.com" || host == "discordapp.com" || host.ends_with(".discord.com"))
        && u.path().starts_with("/api/webhooks")
    {
        WebhookFormat::Discord
    } else {
        WebhookFormat::Generic
    }
}

/// `sha256=<hex of HMAC-SHA256(key, body)>` (the GitHub convention).
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut out = String::from("sha256=");
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(body);
            out.push_str(&qmoi_core::human::hex(&mac.finalize().into_bytes()));
        }
        Err(_) => out.push_str("invalid-key"),
    }
    out
}

pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn fmt_d(d: Duration) -> String {
    qmoi_core::config::ConfigDuration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_signature_and_encoding() {
        assert_eq!(detect_format("https://hooks.slack.com/services/T/B/X"), WebhookFormat::Slack);
        assert_eq!(detect_format("https://discord.com/api/webhooks/1/abc"), WebhookFormat::Discord);
        assert_eq!(detect_format("http://127.0.0.1:9000/hook"), WebhookFormat::Generic);
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(urlencode("+1 555/ü"), "%2B1+555%2F%C3%BC");
    }
}
