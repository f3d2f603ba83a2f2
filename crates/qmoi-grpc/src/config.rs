//! `[grpc]` in `master_monitor.toml`.

use qmoi_core::config::Problems;
use qmoi_dashboard::config::{DashboardConfig, TlsConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    /// Serve the gRPC API (docs/API.md, "gRPC").
    pub enabled: bool,
    /// A non-loopback address needs `[dashboard.auth]` and `[grpc.tls]`: tokens must not
    /// cross the network in clear text.
    pub host: String,
    /// 0: any free port (written to `run/grpc.addr`).
    pub port: u16,
    /// Serve gRPC over TLS with these PEM files (ALPN `h2`).
    pub tls: Option<TlsConfig>,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self { enabled: false, host: "127.0.0.1".into(), port: 8081, tls: None }
    }
}

impl GrpcConfig {
    /// `127.0.0.1:8081`, `[::1]:8081`.
    pub fn addr(&self) -> String {
        let host = if self.host == "localhost" { "127.0.0.1" } else { self.host.trim_matches(['[', ']']) };
        if host.contains(':') { format!("[{host}]:{}", self.port) } else { format!("{host}:{}", self.port) }
    }

    pub fn validate(&self, dashboard: &DashboardConfig, p: &mut Problems) {
        if !self.enabled {
            return;
        }
        if !qmoi_core::net::is_loopback_host(&self.host) {
            let mut missing = Vec::new();
            if !dashboard.auth.enabled() {
                missing.push("no [dashboard.auth] tokens or users are configured");
            }
            if self.tls.is_none() {
                missing.push("no [grpc.tls] certificate is configured (tokens would cross the network in clear text)");
            }
            if !missing.is_empty() {
                p.push(
                    "grpc.host",
                    format!(
                        "'{}' is not a loopback address, and {}: refusing to serve gRPC to the network. \
                         Use 127.0.0.1, or configure both",
                        self.host,
                        missing.join(", and ")
                    ),
                );
            }
        }
        if let Some(t) = &self.tls
            && let Err(e) = qmoi_dashboard::tls::load(t, &[b"h2"])
        {
            p.push("grpc.tls", e);
        }
        if !dashboard.enabled {
            p.push(
                "grpc.enabled",
                "gRPC serves the dashboard's data: enable [dashboard] too (it may stay on loopback)",
            );
        }
    }
}
