//! `[grpc]` in `master_monitor.toml`.

use qmoi_core::config::Problems;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    /// Serve the gRPC API (docs/API.md, "gRPC").
    pub enabled: bool,
    /// Loopback only in this version: the API has no TLS yet, and tokens must not cross
    /// the network in clear text.
    pub host: String,
    /// 0: any free port (written to `run/grpc.addr`).
    pub port: u16,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self { enabled: false, host: "127.0.0.1".into(), port: 8081 }
    }
}

impl GrpcConfig {
    /// `127.0.0.1:8081`, `[::1]:8081`.
    pub fn addr(&self) -> String {
        let host = if self.host == "localhost" { "127.0.0.1" } else { self.host.trim_matches(['[', ']']) };
        if host.contains(':') { format!("[{host}]:{}", self.port) } else { format!("{host}:{}", self.port) }
    }

    pub fn validate(&self, dashboard_enabled: bool, p: &mut Problems) {
        if !self.enabled {
            return;
        }
        if !qmoi_core::net::is_loopback_host(&self.host) {
            p.push(
                "grpc.host",
                format!(
                    "'{}' is not a loopback address: the gRPC API serves loopback only until it has TLS \
                     (reach it through an SSH tunnel or a TLS-terminating proxy)",
                    self.host
                ),
            );
        }
        if !dashboard_enabled {
            p.push(
                "grpc.enabled",
                "gRPC serves the dashboard's data: enable [dashboard] too (it may stay on loopback)",
            );
        }
    }
}
