//! HTTP(S) probes with reqwest: method, headers, body, redirects, HTTP/1.1 or 2, CA bundle,
//! client certificate, `insecure` only when stated. The body is read up to
//! `max_body_bytes` and no further, so a huge or endless response costs nothing more.

use super::{ProbeResult, days_until_expiry};
use crate::conditions::{Condition, Observation};
use crate::config::{Endpoint, HttpVersion};
use std::time::{Duration, Instant};

/// What makes two endpoints need different clients (the timeout is set per request).
pub fn client_key(e: &Endpoint) -> String {
    format!(
        "{}|{:?}|{}|{:?}|{:?}",
        e.follow_redirects,
        e.http_version,
        e.insecure,
        e.ca_file.as_ref().map(|c| c.as_str()),
        e.client_identity.as_ref().map(|c| c.as_str())
    )
}

/// Build a client for endpoints with `e`'s settings (once, at start; shared by every
/// endpoint with the same [`client_key`]: loading the system's roots is not free).
pub fn client(e: &Endpoint, reuse: bool) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .tls_info(true)
        .user_agent(concat!("qmoi-api-endpoints/", env!("CARGO_PKG_VERSION")))
        .redirect(if e.follow_redirects {
            reqwest::redirect::Policy::limited(10)
        } else {
            reqwest::redirect::Policy::none()
        });
    if !reuse {
        // No idle connections kept: every probe pays (and so measures) a real connect.
        b = b.pool_max_idle_per_host(0);
    }
    b = match e.http_version {
        HttpVersion::Auto => b,
        HttpVersion::Http1 => b.http1_only(),
        HttpVersion::Http2 => b.http2_prior_knowledge(),
    };
    if e.insecure {
        b = b.tls_danger_accept_invalid_certs(true);
    }
    if let Some(ca) = &e.ca_file {
        let pem = std::fs::read(ca.as_str()).map_err(|err| format!("cannot read ca_file {ca}: {err}"))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|err| format!("ca_file {ca}: {err}"))?;
        b = b.tls_certs_only(certs);
    }
    if let Some(id) = &e.client_identity {
        let pem = std::fs::read(id.as_str()).map_err(|err| format!("cannot read client_identity {id}: {err}"))?;
        b = b.identity(reqwest::Identity::from_pem(&pem).map_err(|err| format!("client_identity {id}: {err}"))?);
    }
    b.build().map_err(|err| format!("cannot build the HTTP client: {err}"))
}

pub async fn probe(
    client: &reqwest::Client,
    e: &Endpoint,
    conditions: &[Condition],
    timeout: Duration,
    max_body: usize,
) -> ProbeResult {
    let url = e.url.as_ref().map(|u| u.as_str().to_string()).unwrap_or_default();
    let method = reqwest::Method::from_bytes(e.method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut req = client.request(method, &url).timeout(timeout);
    for (k, v) in &e.headers {
        req = req.header(k, v.expose());
    }
    if let Some(b) = &e.body {
        req = req.body(b.as_str().to_string());
    }
    let started = Instant::now();
    let mut resp = match req.send().await {
        Ok(r) => r,
        Err(err) => return ProbeResult::failed(started.elapsed(), describe(&err)),
    };
    let status = resp.status().as_u16();
    let headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let cert_expiry_days =
        resp.extensions().get::<reqwest::tls::TlsInfo>().and_then(|t| t.peer_certificate()).and_then(days_until_expiry);
    let mut body: Vec<u8> = Vec::new();
    let mut truncated = false;
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                let room = max_body.saturating_sub(body.len());
                body.extend_from_slice(&c[..c.len().min(room)]);
                if c.len() > room {
                    truncated = true;
                    break;
                }
            }
            Ok(None) => break,
            Err(err) => {
                return ProbeResult {
                    status_code: Some(status),
                    ..ProbeResult::failed(started.elapsed(), format!("reading the body: {}", describe(&err)))
                };
            }
        }
    }
    let latency = started.elapsed();
    drop(resp);
    let text = String::from_utf8_lossy(&body);
    let o = Observation { status: Some(status), latency, body: Some(&text), headers, cert_expiry_days };
    let mut json = None;
    let mut failures: Vec<String> = conditions.iter().filter_map(|c| c.check(&o, &mut json).err()).collect();
    if conditions.is_empty() && status >= 400 {
        failures.push(format!("HTTP {status} (no conditions configured: any status below 400 counts as up)"));
    }
    if truncated && !failures.is_empty() {
        failures.push(format!("(body cut at max_body_bytes = {max_body})"));
    }
    ProbeResult {
        ok: failures.is_empty(),
        latency,
        status_code: Some(status),
        failures,
        cert_expiry_days,
        cert_invalid: None,
    }
}

/// reqwest's errors, with their causes, in one line.
fn describe(err: &reqwest::Error) -> String {
    let first = if err.is_timeout() { "timed out".to_string() } else { err.to_string() };
    qmoi_core::human::with_causes(first, std::error::Error::source(err))
}
