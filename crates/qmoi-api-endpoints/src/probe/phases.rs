//! `--probe URL`: one ad-hoc HTTP(S) GET, timing each phase separately (DNS, connect, TLS,
//! first byte, total), done step by step on a raw connection so every phase is measured.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

#[derive(Debug, Default)]
pub struct Phases {
    pub address: Option<String>,
    pub dns: Option<Duration>,
    pub connect: Option<Duration>,
    pub tls: Option<Duration>,
    pub first_byte: Option<Duration>,
    pub total: Option<Duration>,
    pub status: Option<u16>,
    pub bytes: usize,
    pub cert_expiry_days: Option<f64>,
}

impl Phases {
    /// The report printed by `--probe`.
    pub fn render(&self, url: &str, error: Option<&str>) -> String {
        let f =
            |d: Option<Duration>| d.map_or_else(|| "-".to_string(), |d| format!("{:.1} ms", d.as_secs_f64() * 1000.0));
        let mut s = format!("GET {url}\n");
        s.push_str(&format!("  DNS         {:>10}  {}\n", f(self.dns), self.address.as_deref().unwrap_or("")));
        s.push_str(&format!("  connect     {:>10}\n", f(self.connect)));
        if self.tls.is_some() || url.starts_with("https") {
            let exp = self.cert_expiry_days.map(|d| format!("certificate valid {d:.0} more days")).unwrap_or_default();
            s.push_str(&format!("  TLS         {:>10}  {exp}\n", f(self.tls)));
        }
        s.push_str(&format!("  first byte  {:>10}\n", f(self.first_byte)));
        s.push_str(&format!("  total       {:>10}\n", f(self.total)));
        match (self.status, error) {
            (_, Some(e)) => s.push_str(&format!("  FAILED: {e}\n")),
            (Some(st), None) => s.push_str(&format!("  HTTP {st}, {} bytes\n", self.bytes)),
            (None, None) => {}
        }
        s
    }
}

/// Run the probe; `Err` carries the phases measured before the failure.
pub async fn probe(url: &str, timeout: Duration, max_body: usize) -> Result<Phases, (Phases, String)> {
    let mut p = Phases::default();
    match tokio::time::timeout(timeout, run(url, max_body, &mut p)).await {
        Ok(Ok(())) => Ok(p),
        Ok(Err(e)) => Err((p, e)),
        Err(_) => Err((p, format!("no complete answer within {}", qmoi_core::config::ConfigDuration(timeout)))),
    }
}

async fn run(url: &str, max_body: usize, p: &mut Phases) -> Result<(), String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("'{url}' is not a URL: {e}"))?;
    let https = match u.scheme() {
        "http" => false,
        "https" => true,
        other => return Err(format!("scheme must be http or https, got '{other}'")),
    };
    let host = u.host_str().ok_or_else(|| format!("'{url}' has no host"))?.trim_matches(['[', ']']).to_string();
    let port = u.port_or_known_default().unwrap_or(if https { 443 } else { 80 });
    let started = Instant::now();
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} resolved to no address"))?;
    p.dns = Some(started.elapsed());
    p.address = Some(addr.to_string());
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    p.connect = Some(started.elapsed() - p.dns.unwrap_or_default());
    let path = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: qmoi-api-endpoints/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        u.host_str().unwrap_or(&host),
        env!("CARGO_PKG_VERSION")
    );
    if https {
        let t0 = Instant::now();
        let roots = super::tls::native_roots();
        let cfg = tokio_rustls::rustls::ClientConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| format!("'{host}': {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        p.tls = Some(t0.elapsed());
        p.cert_expiry_days =
            tls.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| super::days_until_expiry(c));
        exchange(tls, &request, started, max_body, p).await
    } else {
        exchange(tcp, &request, started, max_body, p).await
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    request: &str,
    started: Instant,
    max_body: usize,
    p: &mut Phases,
) -> Result<(), String> {
    s.write_all(request.as_bytes()).await.map_err(|e| format!("cannot send the request: {e}"))?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut head = Vec::new();
    let n = s.read(&mut buf).await.map_err(|e| format!("reading the answer: {e}"))?;
    if n == 0 {
        return Err("the server closed the connection without answering".into());
    }
    p.first_byte = Some(started.elapsed());
    head.extend_from_slice(&buf[..n]);
    let mut total = n;
    while total < max_body {
        match s.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                total += n;
                if head.len() < 4096 {
                    head.extend_from_slice(&buf[..n]);
                }
            }
            // A TLS peer that closes without close_notify ends the body the same way.
            Err(_) => break,
        }
    }
    p.total = Some(started.elapsed());
    let text = String::from_utf8_lossy(&head);
    let status = text.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse::<u16>().ok());
    p.status = status;
    p.bytes = total;
    match status {
        Some(st) if st < 400 => Ok(()),
        Some(st) => Err(format!("HTTP {st}")),
        None => Err(format!("not an HTTP answer: '{}'", qmoi_core::human::clip(text.lines().next().unwrap_or(""), 60))),
    }
}
