//! The accept loop: every connection bounded in number and in time.
//!
//! `axum::serve` holds a connection for as long as the client likes before its request
//! head is complete, and accepts connections without limit. An adversarial run took the
//! supervisor down through that, without auth: 1,100 connections sending a header byte now
//! and then exhausted the 1,024 descriptors of the systemd default, so `/healthz`, the
//! control socket, the master report and the spawning of monitors all failed. Here:
//!
//! - **A connection cap** ([`Limits::max_connections`], and never more than half of the
//!   process's descriptor limit): a connection beyond it is closed at once, so the other
//!   half of the descriptors stays with the supervisor's own work whatever clients do.
//! - **A header-read timeout** (hyper's, with a tokio timer): a request head must arrive
//!   whole within it. Hyper starts the same timer while a keep-alive connection waits for
//!   its next request, so an idle connection is closed after it too.
//! - **A TLS handshake timeout**, on the connection's own task (a slow handshake holds only
//!   its own slot, never the accept loop).
//! - **Accept errors** (EMFILE and friends) pause the loop briefly instead of spinning.
//!
//! Live streams (SSE, WebSocket) are not cut by the header timeout: it only runs while a
//! request head is awaited.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::rustls::ServerConfig;
use tower_service::Service as _;

/// How long a TLS client may take for its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
}

/// Counters of the accept loop, shown on `/metrics`.
#[derive(Debug, Default)]
pub struct ConnStats {
    pub open: AtomicU64,
    pub accepted: AtomicU64,
    /// Closed at once because the cap was reached.
    pub refused: AtomicU64,
    /// `accept` itself failed (descriptors exhausted, …).
    pub accept_errors: AtomicU64,
    /// The effective cap (the configured one, or less under a low descriptor limit).
    pub cap: AtomicU64,
}

impl ConnStats {
    /// Prometheus text lines.
    pub fn render(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "# HELP qmoi_dashboard_connections Dashboard connections open now.\n\
             # TYPE qmoi_dashboard_connections gauge\nqmoi_dashboard_connections {}\n\
             # HELP qmoi_dashboard_connections_max Dashboard connections served at most at once.\n\
             # TYPE qmoi_dashboard_connections_max gauge\nqmoi_dashboard_connections_max {}\n\
             # HELP qmoi_dashboard_connections_accepted_total Dashboard connections accepted.\n\
             # TYPE qmoi_dashboard_connections_accepted_total counter\nqmoi_dashboard_connections_accepted_total {}\n\
             # HELP qmoi_dashboard_connections_refused_total Connections closed at once because the cap was reached.\n\
             # TYPE qmoi_dashboard_connections_refused_total counter\nqmoi_dashboard_connections_refused_total {}\n\
             # HELP qmoi_dashboard_accept_errors_total Failed accepts (descriptors exhausted, ...).\n\
             # TYPE qmoi_dashboard_accept_errors_total counter\nqmoi_dashboard_accept_errors_total {}\n",
            g(&self.open),
            g(&self.cap),
            g(&self.accepted),
            g(&self.refused),
            g(&self.accept_errors)
        )
    }
}

/// The connection cap in force: the configured one, but at most half of the soft
/// descriptor limit (the rest is the supervisor's).
pub fn effective_cap(configured: usize) -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| usize::try_from(soft).unwrap_or(usize::MAX));
    configured.min(soft / 2).max(1)
}

/// Serve `app` on `listener` until `stop` turns true; then stop accepting, let requests in
/// flight finish and return once every connection has closed.
pub async fn run(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    app: Router,
    limits: Limits,
    stats: Arc<ConnStats>,
    mut stop: watch::Receiver<bool>,
) {
    let cap = effective_cap(limits.max_connections);
    stats.cap.store(cap as u64, Ordering::Relaxed);
    if cap < limits.max_connections {
        tracing::warn!(
            configured = limits.max_connections,
            cap,
            "The descriptor limit is low: serving fewer dashboard connections at once (raise LimitNOFILE)."
        );
    }
    let slots = Arc::new(Semaphore::new(cap));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut last_warning: Option<Instant> = None;
    let mut warn = |what: &str, error: Option<&std::io::Error>| {
        // One line every 10 s at most: an attack must not also flood the log.
        if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            last_warning = Some(Instant::now());
            match error {
                Some(e) => tracing::warn!(error = %e, "{what}"),
                None => tracing::warn!(cap, "{what}"),
            }
        }
    };
    loop {
        let (tcp, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                    warn("Cannot accept a dashboard connection; pausing the accept loop briefly.", Some(&e));
                    // EMFILE/ENFILE/ENOBUFS: the pending connection stays queued; retrying at
                    // once would spin on the same error.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            warn("Dashboard connection cap reached; closing new connections until some end.", None);
            drop(tcp);
            continue;
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        stats.open.fetch_add(1, Ordering::Relaxed);
        let _ = tcp.set_nodelay(true);
        let (app, stats, stop, acceptor) = (app.clone(), stats.clone(), stop.clone(), acceptor.clone());
        tokio::spawn(async move {
            match acceptor {
                Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => connection(tls, addr, app, limits, stop).await,
                    Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed."),
                    Err(_) => tracing::debug!(%addr, "TLS handshake timed out."),
                },
                None => connection(tcp, addr, app, limits, stop).await,
            }
            stats.open.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    drop(listener);
    // Every slot back means every connection has ended (the caller bounds this wait).
    let _ = slots.acquire_many(u32::try_from(cap).unwrap_or(u32::MAX)).await;
}

/// Serve one connection: HTTP/1.1 with upgrades (WebSocket), the client's address in
/// each request's extensions (`ConnectInfo`), closed gracefully when the server stops.
async fn connection<I>(io: I, addr: SocketAddr, app: Router, limits: Limits, mut stop: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(addr));
        let mut app = app.clone();
        async move { app.call(req).await }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let conn = builder.serve_connection(TokioIo::new(io), service).with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%addr, error = %e, "Dashboard connection ended with an error.");
            }
            return;
        }
        () = stopped(&mut stop) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// Resolves once the server is stopping (the watch's guard is not held across awaits).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|v| *v).await;
}
