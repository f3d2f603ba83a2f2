//! HTTP/2 with prior knowledge against a real h2c server (axum), and client certificates
//! against a real TLS server that requires one (rustls, with a CA and certificates made by
//! `openssl` for this test).

mod common;

use axum::Router;
use axum::routing::get;
use qmoi_testkit::check;
use qmoi_testkit::read_json;
use std::path::Path;
use std::process::Command;

fn run_once(dir: &Path, config: &str) -> serde_json::Value {
    std::fs::write(dir.join("c.toml"), config).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_qmoi-api-endpoints"))
        .current_dir(dir)
        .args(["--once", "--config", "c.toml"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    read_json(&dir.join("logs/api_endpoints_latest.json")).unwrap_or_else(|| panic!("no report"))
}

#[test]
fn http2_prior_knowledge_is_spoken() {
    let addr = common::serve_on_thread(|l| async move {
        // The body is the HTTP version the server saw.
        let app = Router::new().route("/v", get(|v: axum::http::Version| async move { format!("{v:?}") }));
        let _ = axum::serve(l, app).await;
    });
    let dir = tempfile::tempdir().unwrap();
    let r = run_once(
        dir.path(),
        &format!(
            r#"
[[endpoints]]
name = "h2"
kind = "http"
url = "http://{addr}/v"
http_version = "http2"
conditions = ["status == 200", "body contains \"HTTP/2.0\""]

[[endpoints]]
name = "h1"
kind = "http"
url = "http://{addr}/v"
http_version = "http1"
conditions = ["body contains \"HTTP/2.0\""]
"#
        ),
    );
    assert_eq!(check(&r, "endpoint:h2")["status"], "ok", "{}", check(&r, "endpoint:h2"));
    let h1 = check(&r, "endpoint:h1");
    assert!(h1["message"].as_str().is_some_and(|m| m.contains("body was 'HTTP/1.1'")), "{h1}");
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().unwrap_or_else(|e| panic!("openssl: {e}"));
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A TLS server that requires a client certificate issued by `ca.pem`, then answers any
/// request with `200 ok`.
fn mtls_server(dir: &Path) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let acceptor = common::tls_acceptor(&dir.join("cert.pem"), &dir.join("key.pem"), Some(&dir.join("ca.pem")));
    common::serve_on_thread(|l| async move {
        while let Ok((s, _)) = l.accept().await {
            let a = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = a.accept(s).await else { return };
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
                let _ = tls.shutdown().await;
            });
        }
    })
}

#[test]
fn client_certificates_are_presented() {
    if !qmoi_testkit::require_tool(&["openssl"], "apt-get install openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The server's certificate (trusted through ca_file), and a CA that signs the client's.
    qmoi_testkit::self_signed_cert(d, 2);
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        d,
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=qmoi-test-ca"],
        ]
        .concat(),
    );
    openssl(
        d,
        &[&["req"][..], &ec, &["-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=qmoi-client"]].concat(),
    );
    std::fs::write(
        d.join("client.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "client.crt",
            "-days",
            "2",
            "-extfile",
            "client.ext",
        ],
    );
    let identity = [std::fs::read(d.join("client.crt")), std::fs::read(d.join("client.key"))]
        .into_iter()
        .flat_map(|r| r.unwrap())
        .collect::<Vec<u8>>();
    std::fs::write(d.join("client-identity.pem"), identity).unwrap();
    let addr = mtls_server(d);
    let r = run_once(
        d,
        &format!(
            r#"
[[endpoints]]
name = "with-cert"
kind = "http"
url = "https://127.0.0.1:{port}/"
ca_file = "cert.pem"
client_identity = "client-identity.pem"
conditions = ["status == 200", "body contains \"ok\""]

[[endpoints]]
name = "without-cert"
kind = "http"
url = "https://127.0.0.1:{port}/"
ca_file = "cert.pem"
"#,
            port = addr.port()
        ),
    );
    assert_eq!(check(&r, "endpoint:with-cert")["status"], "ok", "{}", check(&r, "endpoint:with-cert"));
    let without = check(&r, "endpoint:without-cert");
    assert_ne!(without["status"], "ok", "the server refuses a client without a certificate: {without}");
}
