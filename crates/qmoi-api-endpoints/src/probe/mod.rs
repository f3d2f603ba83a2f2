//! One module per kind of probe. A probe never panics and never hangs: every network wait
//! is bounded by the endpoint's timeout, and any failure becomes a [`ProbeResult`].

pub mod dns;
pub mod http;
pub mod icmp;
pub mod phases;
pub mod tcp;
pub mod tls;

use std::time::Duration;

/// What one probe found.
#[derive(Debug, Clone, Default)]
pub struct ProbeResult {
    /// Reached and every condition held.
    pub ok: bool,
    pub latency: Duration,
    pub status_code: Option<u16>,
    /// Why it failed: the error, or each failing condition.
    pub failures: Vec<String>,
    pub cert_expiry_days: Option<f64>,
    /// The certificate failed verification (expired, unknown issuer, wrong name).
    pub cert_invalid: Option<String>,
}

impl ProbeResult {
    pub fn failed(latency: Duration, why: impl Into<String>) -> Self {
        Self { ok: false, latency, failures: vec![why.into()], ..Self::default() }
    }

    /// One line for the report.
    pub fn reason(&self) -> String {
        if self.ok { "ok".into() } else { self.failures.join("; ") }
    }
}

/// Days from now until a DER certificate's `notAfter` (negative when expired).
pub fn days_until_expiry(der: &[u8]) -> Option<f64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let not_after = cert.validity().not_after.timestamp();
    let now = chrono::Utc::now().timestamp();
    Some((not_after - now) as f64 / 86_400.0)
}
