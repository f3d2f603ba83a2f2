//! The HTTP side of the Azure and GCP clients: bearer tokens, bounded concurrency,
//! retries with backoff (honouring `Retry-After`), one token refresh on 401, bounded
//! answers, and the providers' error bodies turned into one-line messages.

use crate::model::{ApiError, ErrorKind};
use crate::token::TokenSource;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Answers larger than this are refused (a hostile or broken endpoint cannot make the
/// monitor buffer without bound). One page of 1,000 VMs is a few MB.
const MAX_BODY: usize = 64 << 20;
/// Attempts after the first for throttling and server errors.
const RETRIES: u32 = 3;
/// Longest wait for one `Retry-After`.
const MAX_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Rest {
    client: reqwest::Client,
    limit: Arc<Semaphore>,
    requests: AtomicU64,
    /// Base delay of the exponential backoff (tests shorten it).
    backoff: Duration,
}

/// One request: what to call and how to name it in errors.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    pub method: Method,
    pub url: String,
    pub api: &'a str,
    pub scope: &'a str,
    pub json: Option<&'a serde_json::Value>,
    pub form: Option<&'a [(&'a str, &'a str)]>,
    pub headers: &'a [(&'a str, &'a str)],
}

impl<'a> Call<'a> {
    pub fn get(url: impl Into<String>, api: &'a str, scope: &'a str) -> Self {
        Self { method: Method::GET, url: url.into(), api, scope, json: None, form: None, headers: &[] }
    }

    pub fn post_json(url: impl Into<String>, body: &'a serde_json::Value, api: &'a str, scope: &'a str) -> Self {
        Self { json: Some(body), method: Method::POST, ..Self::get(url, api, scope) }
    }
}

impl Rest {
    pub fn new(request_timeout: Duration, concurrency: usize) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(request_timeout)
            .connect_timeout(request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("qmoi-cloud/", env!("CARGO_PKG_VERSION")))
            // Tokens must never follow a redirect to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let backoff = std::env::var("QMOI_CLOUD_BACKOFF_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(Duration::from_millis(500), Duration::from_millis);
        Ok(Self { client, limit: Arc::new(Semaphore::new(concurrency.max(1))), requests: AtomicU64::new(0), backoff })
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Send `call` with a bearer token from `token` (none for token endpoints) and parse
    /// the JSON answer.
    pub async fn json<T: DeserializeOwned>(&self, call: &Call<'_>, token: Option<&TokenSource>) -> Result<T, ApiError> {
        let body = self.send(call, token).await?;
        serde_json::from_slice(&body).map_err(|e| err(call, ErrorKind::Failed, format!("unreadable answer: {e}")))
    }

    pub async fn send(&self, call: &Call<'_>, token: Option<&TokenSource>) -> Result<Vec<u8>, ApiError> {
        let mut attempt = 0u32;
        let mut refreshed = false;
        let mut rejected: Option<String> = None;
        loop {
            let bearer = match token {
                // Boxed: the token endpoint is itself called through `send` (without a token).
                Some(t) => Some(Box::pin(t.get(self, rejected.as_deref())).await.map_err(|mut e| {
                    e.api = format!("{} (token for {})", e.api, call.api);
                    e.scope = call.scope.to_string();
                    e
                })?),
                None => None,
            };
            let mut req = self.client.request(call.method.clone(), &call.url);
            if let Some(b) = &bearer {
                req = req.bearer_auth(b);
            }
            for (k, v) in call.headers {
                req = req.header(*k, *v);
            }
            if let Some(j) = call.json {
                req = req.json(j);
            }
            if let Some(f) = call.form {
                req = req.form(f);
            }
            let permit = self.limit.acquire().await;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let result = match req.send().await {
                Ok(resp) => read(resp).await,
                Err(e) => Err(e),
            };
            drop(permit);
            let (status, headers, body) = match result {
                Ok(r) => r,
                Err(e) => {
                    if attempt < RETRIES && (e.is_connect() || e.is_timeout()) && !is_refused(&e) {
                        attempt += 1;
                        tokio::time::sleep(self.delay(attempt, None)).await;
                        continue;
                    }
                    return Err(err(call, ErrorKind::Unreachable, describe(&e)));
                }
            };
            if status.is_success() {
                return Ok(body);
            }
            let message = provider_message(status, &body);
            match status {
                StatusCode::UNAUTHORIZED if token.is_some() && !refreshed => {
                    // An expired or revoked token: get a new one once.
                    refreshed = true;
                    rejected = bearer.clone();
                    tracing::debug!("{} {}: 401 ({message}); refreshing the token", call.api, call.scope);
                }
                StatusCode::UNAUTHORIZED => return Err(err(call, ErrorKind::Credentials, message)),
                StatusCode::FORBIDDEN => return Err(err(call, ErrorKind::Denied, message)),
                StatusCode::BAD_REQUEST if is_oauth_credential_error(&body) => {
                    return Err(err(call, ErrorKind::Credentials, message));
                }
                StatusCode::TOO_MANY_REQUESTS
                | StatusCode::BAD_GATEWAY
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::GATEWAY_TIMEOUT
                | StatusCode::INTERNAL_SERVER_ERROR
                    if attempt < RETRIES =>
                {
                    attempt += 1;
                    let wait = self.delay(attempt, retry_after(&headers));
                    tracing::info!(
                        "{} {}: {status}, retry {attempt}/{RETRIES} in {:.1}s",
                        call.api,
                        call.scope,
                        wait.as_secs_f64()
                    );
                    tokio::time::sleep(wait).await;
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    return Err(err(call, ErrorKind::Throttled, format!("{message} (after {RETRIES} retries)")));
                }
                _ => return Err(err(call, ErrorKind::Failed, message)),
            }
        }
    }

    /// The wait before retry `attempt`: the server's `Retry-After` (capped), else
    /// exponential backoff (at most 32 × the first wait) ±20 %.
    fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(d) = retry_after {
            return d.min(MAX_WAIT);
        }
        qmoi_core::retry::backoff(self.backoff, self.backoff.saturating_mul(32), attempt, 0.2)
    }
}

fn err(call: &Call<'_>, kind: ErrorKind, message: String) -> ApiError {
    ApiError { api: call.api.to_string(), scope: call.scope.to_string(), kind, message }
}

async fn read(
    mut resp: reqwest::Response,
) -> Result<(StatusCode, reqwest::header::HeaderMap, Vec<u8>), reqwest::Error> {
    let status = resp.status();
    let headers = resp.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY {
            // Keep what fits; the JSON parse fails with a clear message below.
            body.extend_from_slice(&chunk[..MAX_BODY - body.len()]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, headers, body))
}

/// `Retry-After` in seconds (or an HTTP date), or Azure Cost Management's own header.
fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    for name in ["retry-after", "x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after"] {
        let Some(v) = h.get(name).and_then(|v| v.to_str().ok()) else { continue };
        if let Some(d) = qmoi_core::retry::retry_after(v, MAX_WAIT) {
            return Some(d);
        }
    }
    None
}

fn is_refused(e: &reqwest::Error) -> bool {
    let mut src: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        src = s.source();
    }
    false
}

/// A transport error with its causes ("error sending request: … Connection refused").
pub fn describe(e: &dyn std::error::Error) -> String {
    qmoi_core::human::with_causes(e.to_string(), e.source())
}

/// OAuth token endpoints answer bad client credentials with 400 `invalid_client` /
/// `invalid_grant` / `unauthorized_client`.
fn is_oauth_credential_error(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error")?.as_str().map(str::to_string))
        .is_some_and(|e| {
            matches!(e.as_str(), "invalid_client" | "invalid_grant" | "unauthorized_client" | "invalid_request")
        })
}

/// The provider's error in one line: Azure `{"error":{"code","message"}}`, Google
/// `{"error":{"code","status","message"}}`, OAuth `{"error","error_description"}`, or
/// the start of the body.
pub fn provider_message(status: StatusCode, body: &[u8]) -> String {
    let v: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let text = v.as_ref().and_then(|v| {
        let e = v.get("error")?;
        if let Some(s) = e.as_str() {
            let d = v.get("error_description").and_then(|d| d.as_str()).unwrap_or("");
            return Some(format!("{s}: {}", d.lines().next().unwrap_or("")));
        }
        let code = e.get("status").or_else(|| e.get("code")).map(|c| match c {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let msg = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
        Some(match code {
            Some(c) => format!("{c}: {msg}"),
            None => msg.to_string(),
        })
    });
    let text = text.unwrap_or_else(|| {
        let s = String::from_utf8_lossy(&body[..body.len().min(300)]).trim().replace(['\n', '\r'], " ");
        if s.is_empty() { status.canonical_reason().unwrap_or("").to_string() } else { s }
    });
    format!("HTTP {}: {}", status.as_u16(), qmoi_core::human::clip(&text, 400))
}

/// Follow a `nextLink` only when it points at the same origin as `base`: a token is
/// never sent to a host the configuration did not name.
pub fn same_origin(base: &str, link: &str) -> Result<(), String> {
    let (a, b) = (reqwest::Url::parse(base), reqwest::Url::parse(link));
    match (a, b) {
        (Ok(a), Ok(b)) if a.origin() == b.origin() => Ok(()),
        (_, Ok(b)) => {
            Err(format!("refusing to follow a nextLink to another host: {}", b.origin().ascii_serialization()))
        }
        (_, Err(e)) => Err(format!("unreadable nextLink: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_errors_read_as_one_line() {
        let az = br#"{"error":{"code":"AuthorizationFailed","message":"The client 'x' does not have authorization"}}"#;
        assert_eq!(
            provider_message(StatusCode::FORBIDDEN, az),
            "HTTP 403: AuthorizationFailed: The client 'x' does not have authorization"
        );
        let g = br#"{"error":{"code":403,"status":"PERMISSION_DENIED","message":"Required 'compute.disks.list'"}}"#;
        assert_eq!(
            provider_message(StatusCode::FORBIDDEN, g),
            "HTTP 403: PERMISSION_DENIED: Required 'compute.disks.list'"
        );
        let o = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret.\r\nTrace"}"#;
        assert_eq!(
            provider_message(StatusCode::UNAUTHORIZED, o),
            "HTTP 401: invalid_client: AADSTS7000215: Invalid client secret."
        );
        assert_eq!(provider_message(StatusCode::BAD_GATEWAY, b""), "HTTP 502: Bad Gateway");
    }

    #[test]
    fn next_links_stay_on_the_configured_host() {
        assert!(same_origin("https://management.azure.com", "https://management.azure.com/x?skiptoken=1").is_ok());
        assert!(same_origin("http://127.0.0.1:8080", "http://127.0.0.1:8080/a").is_ok());
        assert!(same_origin("https://management.azure.com", "https://evil.example/x").is_err());
        assert!(same_origin("http://127.0.0.1:8080", "http://127.0.0.1:9090/a").is_err());
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", reqwest::header::HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.clear();
        h.insert(
            "x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after",
            reqwest::header::HeaderValue::from_static("7"),
        );
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.clear();
        assert_eq!(retry_after(&h), None);
    }
}
