//! The HTTP side of every provider's client: bearer tokens (Azure, GCP) or AWS
//! signatures, bounded concurrency, retries with backoff (honouring `Retry-After`) on
//! throttling and server errors, one credential refresh when they are rejected, bounded
//! answers, and the providers' error bodies turned into one-line messages.

use crate::model::{ApiError, ErrorKind};
use crate::sigv4::{Scope, Signer};
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

/// Where bearer tokens come from ([`crate::token::TokenSource`]). `rejected` is a token
/// the service just refused: get another. The source may itself call through `rest`
/// (a token endpoint), without a token.
pub trait Bearer: Send + Sync + std::fmt::Debug {
    fn token<'a>(
        &'a self,
        rest: &'a Rest,
        rejected: Option<&'a str>,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<String, ApiError>> + Send + 'a>>;
}

/// How a request proves who sends it.
#[derive(Debug, Clone, Copy)]
pub enum RequestAuth<'a> {
    /// Token endpoints and instance metadata.
    None,
    /// `Authorization: Bearer` with a token from the source (Azure, GCP).
    Bearer(&'a dyn Bearer),
    /// AWS Signature Version 4 for the scope.
    Aws(&'a Signer, Scope<'a>),
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

    /// Send `call` with `auth` and parse the JSON answer.
    pub async fn json<T: DeserializeOwned>(&self, call: &Call<'_>, auth: RequestAuth<'_>) -> Result<T, ApiError> {
        let body = self.send(call, auth).await?;
        serde_json::from_slice(&body).map_err(|e| err(call, ErrorKind::Failed, format!("unreadable answer: {e}")))
    }

    pub async fn send(&self, call: &Call<'_>, auth: RequestAuth<'_>) -> Result<Vec<u8>, ApiError> {
        let mut attempt = 0u32;
        let mut refreshed = false;
        let mut rejected: Option<String> = None;
        loop {
            let bearer = match auth {
                // Boxed: the token endpoint is itself called through `send` (without a token).
                RequestAuth::Bearer(t) => Some(t.token(self, rejected.as_deref()).await.map_err(|mut e| {
                    e.api = format!("{} (token for {})", e.api, call.api);
                    e.scope = call.scope.to_string();
                    e
                })?),
                _ => None,
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
            let mut req = req.build().map_err(|e| err(call, ErrorKind::Failed, describe(&e)))?;
            if let RequestAuth::Aws(signer, scope) = auth {
                signer.sign(&mut req, scope, refreshed).await.map_err(|m| err(call, ErrorKind::Credentials, m))?;
            }
            let permit = self.limit.acquire().await;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let result = match self.client.execute(req).await {
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
            let answer = provider_error(status, &body);
            let kind = answer.kind(status, &body);
            let retryable = kind == ErrorKind::Throttled
                || matches!(
                    status,
                    StatusCode::BAD_GATEWAY
                        | StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::GATEWAY_TIMEOUT
                        | StatusCode::INTERNAL_SERVER_ERROR
                );
            let message = answer.message;
            match auth {
                RequestAuth::Bearer(_) | RequestAuth::Aws(..) if kind == ErrorKind::Credentials && !refreshed => {
                    // Expired or revoked credentials: get new ones once.
                    refreshed = true;
                    rejected = bearer.clone();
                    tracing::debug!("{} {}: {message}; refreshing the credentials", call.api, call.scope);
                }
                _ if retryable && attempt < RETRIES => {
                    attempt += 1;
                    let wait = self.delay(attempt, retry_after(&headers));
                    tracing::info!(
                        "{} {}: {message}, retry {attempt}/{RETRIES} in {:.1}s",
                        call.api,
                        call.scope,
                        wait.as_secs_f64()
                    );
                    tokio::time::sleep(wait).await;
                }
                _ if retryable => {
                    return Err(err(call, kind, format!("{message} (after {RETRIES} retries)")));
                }
                _ => return Err(err(call, kind, message)),
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

/// A provider's error answer: its code when it names one, and the error in one line.
#[derive(Debug, PartialEq, Eq)]
pub struct ProviderError {
    pub code: Option<String>,
    pub message: String,
}

/// AWS error codes, by what they mean for the operator.
const AWS_CREDENTIAL_CODES: &[&str] = &[
    "AuthFailure",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "MissingAuthenticationToken",
];
const AWS_DENIED_CODES: &[&str] = &["UnauthorizedOperation", "AccessDenied", "AccessDeniedException", "OptInRequired"];
const AWS_THROTTLE_CODES: &[&str] = &[
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "LimitExceededException",
    "TooManyRequestsException",
];

impl ProviderError {
    /// What the failure means: the AWS code when there is one, else the HTTP status.
    fn kind(&self, status: StatusCode, body: &[u8]) -> ErrorKind {
        let code = self.code.as_deref().unwrap_or("");
        if AWS_CREDENTIAL_CODES.contains(&code) {
            ErrorKind::Credentials
        } else if AWS_DENIED_CODES.contains(&code) {
            ErrorKind::Denied
        } else if AWS_THROTTLE_CODES.contains(&code) || status == StatusCode::TOO_MANY_REQUESTS {
            ErrorKind::Throttled
        } else if status == StatusCode::UNAUTHORIZED
            || (status == StatusCode::BAD_REQUEST && is_oauth_credential_error(body))
        {
            ErrorKind::Credentials
        } else if status == StatusCode::FORBIDDEN {
            ErrorKind::Denied
        } else {
            ErrorKind::Failed
        }
    }
}

/// The provider's error: Azure `{"error":{"code","message"}}`, Google
/// `{"error":{"code","status","message"}}`, OAuth `{"error","error_description"}`, AWS
/// JSON `{"__type","message"}`, AWS XML `<Error><Code/><Message/></Error>`, or the start
/// of the body.
pub fn provider_error(status: StatusCode, body: &[u8]) -> ProviderError {
    let (code, text) = json_error(body).or_else(|| aws_xml_error(body)).map_or((None, None), |(c, t)| (c, Some(t)));
    let text = text.unwrap_or_else(|| {
        let s = String::from_utf8_lossy(&body[..body.len().min(300)]).trim().replace(['\n', '\r'], " ");
        if s.is_empty() { status.canonical_reason().unwrap_or("").to_string() } else { s }
    });
    ProviderError { code, message: format!("HTTP {}: {}", status.as_u16(), qmoi_core::human::clip(&text, 400)) }
}

fn json_error(body: &[u8]) -> Option<(Option<String>, String)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    if let Some(t) = v.get("__type").and_then(|t| t.as_str()) {
        // "com.amazon.coral.service#ThrottlingException" or "ThrottlingException:http://…"
        let code = t.rsplit('#').next().unwrap_or(t).split(':').next().unwrap_or(t).to_string();
        let msg = v.get("message").or_else(|| v.get("Message")).and_then(|m| m.as_str()).unwrap_or("");
        return Some((Some(code.clone()), if msg.is_empty() { code } else { format!("{code}: {msg}") }));
    }
    let e = v.get("error")?;
    if let Some(s) = e.as_str() {
        let d = v.get("error_description").and_then(|d| d.as_str()).unwrap_or("");
        return Some((Some(s.to_string()), format!("{s}: {}", d.lines().next().unwrap_or(""))));
    }
    let code = e.get("status").or_else(|| e.get("code")).map(|c| match c {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    let msg = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
    let text = match &code {
        Some(c) => format!("{c}: {msg}"),
        None => msg.to_string(),
    };
    Some((code, text))
}

fn aws_xml_error(body: &[u8]) -> Option<(Option<String>, String)> {
    let text = std::str::from_utf8(body).ok()?;
    let (mut code, mut message) = (None, String::new());
    crate::xml::walk(text, |path, t| match path {
        [.., "Error", "Code"] if code.is_none() => code = Some(t.to_string()),
        [.., "Error", "Message"] if message.is_empty() => message = t.to_string(),
        _ => {}
    })
    .ok()?;
    let c = code?;
    let line = if message.is_empty() { c.clone() } else { format!("{c}: {message}") };
    Some((Some(c), line))
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

    fn provider_message(status: StatusCode, body: &[u8]) -> String {
        provider_error(status, body).message
    }

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
    fn aws_errors_are_read_and_classified_by_code() {
        let ec2 = br#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>r-1</RequestID></Response>"#;
        let e = provider_error(StatusCode::SERVICE_UNAVAILABLE, ec2);
        assert_eq!(e.message, "HTTP 503: RequestLimitExceeded: Request limit exceeded.");
        assert_eq!(e.kind(StatusCode::SERVICE_UNAVAILABLE, ec2), ErrorKind::Throttled);
        let cw = br#"<ErrorResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:iam::1:user/x is not authorized</Message></Error></ErrorResponse>"#;
        let e = provider_error(StatusCode::FORBIDDEN, cw);
        assert_eq!(e.code.as_deref(), Some("AccessDenied"));
        assert_eq!(e.kind(StatusCode::FORBIDDEN, cw), ErrorKind::Denied);
        // CloudWatch throttles with 400, not 429.
        let throttled =
            b"<ErrorResponse><Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>";
        assert_eq!(
            provider_error(StatusCode::BAD_REQUEST, throttled).kind(StatusCode::BAD_REQUEST, throttled),
            ErrorKind::Throttled
        );
        let ce = br#"{"__type":"com.amazon.coral.service#ExpiredTokenException","message":"The security token included in the request is expired"}"#;
        let e = provider_error(StatusCode::BAD_REQUEST, ce);
        assert_eq!(e.message, "HTTP 400: ExpiredTokenException: The security token included in the request is expired");
        assert_eq!(e.kind(StatusCode::BAD_REQUEST, ce), ErrorKind::Credentials);
        let auth = b"<Response><Errors><Error><Code>AuthFailure</Code><Message>AWS was not able to validate the provided access credentials</Message></Error></Errors></Response>";
        assert_eq!(
            provider_error(StatusCode::UNAUTHORIZED, auth).kind(StatusCode::UNAUTHORIZED, auth),
            ErrorKind::Credentials
        );
        // A status without a known code still counts.
        assert_eq!(
            provider_error(StatusCode::TOO_MANY_REQUESTS, b"").kind(StatusCode::TOO_MANY_REQUESTS, b""),
            ErrorKind::Throttled
        );
        assert_eq!(
            provider_error(StatusCode::NOT_FOUND, b"<html>").kind(StatusCode::NOT_FOUND, b"<html>"),
            ErrorKind::Failed
        );
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
