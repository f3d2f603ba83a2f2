//! TLS probes: the chain verifies against the system's roots (or `ca_file`), the name
//! matches, and how many days are left. When verification fails, a second handshake that
//! trusts anything reads the certificate anyway, so the report can say *when* it expired.

use super::{ProbeResult, days_until_expiry};
use crate::config::{Endpoint, split_host_port};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::crypto::{CryptoProvider, aws_lc_rs};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{self, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

/// The system's trusted roots.
pub fn native_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for c in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(c);
    }
    roots
}

/// The verifying client configuration for one endpoint (built once).
pub fn verifying_config(e: &Endpoint) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match &e.ca_file {
        Some(ca) => {
            for c in
                CertificateDer::pem_file_iter(ca.as_str()).map_err(|err| format!("cannot read ca_file {ca}: {err}"))?
            {
                let c = c.map_err(|err| format!("ca_file {ca}: {err}"))?;
                roots.add(c).map_err(|err| format!("ca_file {ca}: {err}"))?;
            }
        }
        None => roots = native_roots(),
    }
    let cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| err.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// Accepts any certificate: only used to read an invalid certificate's dates.
#[derive(Debug)]
struct ReadAnything(Arc<CryptoProvider>);

impl ServerCertVerifier for ReadAnything {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

async fn handshake(cfg: Arc<ClientConfig>, target: &str, name: ServerName<'static>) -> Result<Option<f64>, String> {
    let tcp =
        tokio::net::TcpStream::connect(target).await.map_err(|err| format!("cannot connect to {target}: {err}"))?;
    let tls = tokio_rustls::TlsConnector::from(cfg).connect(name, tcp).await.map_err(|err| err.to_string())?;
    let (_, conn) = tls.get_ref();
    Ok(conn.peer_certificates().and_then(|c| c.first()).and_then(|c| days_until_expiry(c)))
}

pub async fn probe(e: &Endpoint, cfg: &Arc<ClientConfig>, timeout: Duration) -> ProbeResult {
    let target = e.target.as_ref().map(|t| t.as_str().to_string()).unwrap_or_default();
    let host = e.server_name.clone().unwrap_or_else(|| split_host_port(&target).0.to_string());
    let started = Instant::now();
    let Ok(name) = ServerName::try_from(host.clone()) else {
        return ProbeResult::failed(started.elapsed(), format!("'{host}' is not a valid TLS server name"));
    };
    let verified = tokio::time::timeout(timeout, handshake(cfg.clone(), &target, name.clone())).await;
    let latency = started.elapsed();
    match verified {
        Err(_) => ProbeResult::failed(
            latency,
            format!("{target}: no TLS handshake within {}", qmoi_core::config::ConfigDuration(timeout)),
        ),
        Ok(Ok(days)) => ProbeResult { ok: true, latency, cert_expiry_days: days, ..ProbeResult::default() },
        Ok(Err(why)) if why.starts_with("cannot connect") => ProbeResult::failed(latency, why),
        Ok(Err(why)) => {
            // Read the certificate without trusting it, to report its dates.
            let lax = ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions().map(|b| {
                b.dangerous().with_custom_certificate_verifier(Arc::new(ReadAnything(provider()))).with_no_client_auth()
            });
            let days = match lax {
                Ok(c) => tokio::time::timeout(timeout, handshake(Arc::new(c), &target, name))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .flatten(),
                Err(_) => None,
            };
            let why = format!("certificate of {target} is not valid: {why}");
            ProbeResult { cert_expiry_days: days, cert_invalid: Some(why.clone()), ..ProbeResult::failed(latency, why) }
        }
    }
}
