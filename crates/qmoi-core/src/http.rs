//! The outgoing HTTP client of the supervisor's own requests (remote write, the fleet's
//! query engine): one way to build it (timeout, extra CA, no redirects) and to
//! authenticate (bearer token or basic auth from config secrets). Feature `http`.

use crate::config::{EnvString, Problems, Secret};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// `basic_auth = { username = "…", password = "${ENV}" }`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: EnvString,
    pub password: Secret,
}

/// A client for `component` (its user agent) with a whole-request `timeout`, trusting
/// `ca_file` (PEM) beside the system's roots, never following redirects (credentials must
/// not travel to another host).
pub fn client(component: &str, timeout: Duration, ca_file: Option<&Path>) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .user_agent(format!("{component}/{}", env!("CARGO_PKG_VERSION")))
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(90));
    if let Some(ca) = ca_file {
        let pem = fs_err::read(ca).map_err(|e| e.to_string())?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| format!("{}: not a PEM certificate: {e}", ca.display()))?;
        b = b.add_root_certificate(cert);
    }
    b.build().map_err(|e| format!("cannot build the HTTP client: {}", describe(&e)))
}

/// Add the configured credentials to a request.
pub fn authorize(
    req: reqwest::RequestBuilder,
    bearer: Option<&Secret>,
    basic: Option<&BasicAuth>,
) -> reqwest::RequestBuilder {
    match (bearer, basic) {
        (Some(t), _) => req.bearer_auth(t.expose()),
        (None, Some(b)) => req.basic_auth(b.username.as_str(), Some(b.password.expose())),
        (None, None) => req,
    }
}

/// The checks every such endpoint's config shares: an http(s) URL (the value of key
/// `<key>.<url_key>`), one kind of credentials, a readable CA file.
pub fn validate_endpoint(
    p: &mut Problems,
    key: &str,
    (url_key, url): (&str, &str),
    bearer: Option<&Secret>,
    basic: Option<&BasicAuth>,
    ca_file: Option<&Path>,
) {
    if !reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host()) {
        p.push(format!("{key}.{url_key}"), format!("must be an http:// or https:// URL, got '{url}'"));
    }
    if bearer.is_some() && basic.is_some() {
        p.push(format!("{key}.bearer_token"), "set bearer_token or basic_auth, not both");
    }
    if let Some(ca) = ca_file
        && !ca.is_file()
    {
        p.push(format!("{key}.ca_file"), format!("'{}' is not a readable file", ca.display()));
    }
}

/// A transport error with its causes ("error sending request: … Connection refused").
pub fn describe(e: &dyn std::error::Error) -> String {
    crate::human::with_causes(e.to_string(), e.source())
}
