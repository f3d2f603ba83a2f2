//! Shared by the api-endpoints integration tests: servers on their own thread, rustls
//! server configs from PEM files, and reading the report's checks.

#![allow(dead_code)]

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Bind a loopback port and run `serve` on it on its own thread and single-thread
/// runtime, for the rest of the test process; returns the address.
pub fn serve_on_thread<F, Fut>(serve: F) -> std::net::SocketAddr
where
    F: FnOnce(tokio::net::TcpListener) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
    l.set_nonblocking(true).unwrap_or_else(|e| panic!("{e}"));
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"));
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(l).unwrap_or_else(|e| panic!("{e}"));
            serve(l).await;
        });
    });
    addr
}

fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|c| c.unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

/// A TLS acceptor for `cert`/`key` (PEM); with `client_ca`, clients must present a
/// certificate issued by that CA.
pub fn tls_acceptor(cert: &Path, key: &Path, client_ca: Option<&Path>) -> tokio_rustls::TlsAcceptor {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let key = PrivateKeyDer::from_pem_file(key).unwrap_or_else(|e| panic!("{e}"));
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| panic!("{e}"));
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(ca) {
                roots.add(c).unwrap_or_else(|e| panic!("{e}"));
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap_or_else(|e| panic!("{e}"));
            builder.with_client_cert_verifier(verifier)
        }
    };
    let cfg = builder.with_single_cert(certs(cert), key).unwrap_or_else(|e| panic!("{e}"));
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}
