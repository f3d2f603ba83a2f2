//! Optional TLS (rustls) from PEM certificate and key files.
//!
//! The handshake runs on each connection's own task, bounded in time (`serve`): a client
//! that opens a socket and says nothing cannot stall the accept loop.

use qmoi_core::config::EnvString;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

/// `dashboard.tls`: serve HTTPS with these files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain (PEM), leaf first.
    pub cert: EnvString,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: EnvString,
}

/// Read the certificate chain and key for a server speaking `alpn` (`http/1.1` for the
/// dashboard, `h2` for gRPC); errors name the file and what is wrong.
pub fn load(cfg: &TlsConfig, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, String> {
    let cert_path = cfg.cert.as_str();
    let key_path = cfg.key.as_str();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| format!("cannot read TLS certificate {cert_path}: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("TLS certificate {cert_path} is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("TLS certificate {cert_path} holds no certificate"));
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| format!("cannot read a private key from {key_path}: {e}"))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS certificate {cert_path} and key {key_path} do not go together: {e}"))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}
