//! The accept loop of QMOI's HTTP servers (the dashboard, the heartbeat listener): every
//! connection bounded in number and in time. Feature `server`.
//!
//! `axum::serve` holds a connection for as long as the client likes before its request
//! head is complete, and accepts connections without limit. An adversarial run took the
//! supervisor down through that, without auth: 1,100 connections sending a header byte now
//! and then exhausted the 1,024 descriptors of the systemd default, so `/healthz`, the
//! control socket, the master report and the spawning of monitors all failed. Here:
//!
//! - **A connection cap** ([`Limits::max_connections`], and never more than half of the
//!   process's descriptor limit), so the other half of the descriptors stays with the
//!   supervisor's own work whatever clients do.
//! - **At the cap, the longest-idle connection makes room**: one with no request in
//!   flight (still awaiting its first request head, or idle between requests) is closed
//!   for the newcomer. Slow clients can then only delay each other: a real client's
//!   connection is the newest and is busy with its request at once, so it is never the
//!   one evicted, and `/healthz` answers during a flood instead of waiting for a slot
//!   to time out. A request in flight or a live stream (SSE) is never evicted; when every
//!   connection is busy, the newcomer is closed.
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
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::rustls::ServerConfig;
use tower_service::Service as _;

/// The largest request head (request line and headers) read.
pub const MAX_HEAD: usize = 64 * 1024;

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
    /// Closed at once because the cap was reached and every connection was busy.
    pub refused: AtomicU64,
    /// Idle connections closed to make room for a new one at the cap.
    pub evicted: AtomicU64,
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
             # HELP qmoi_dashboard_connections_refused_total Connections closed at once: the cap was reached and every connection was busy.\n\
             # TYPE qmoi_dashboard_connections_refused_total counter\nqmoi_dashboard_connections_refused_total {}\n\
             # HELP qmoi_dashboard_connections_evicted_total Idle connections closed to make room at the cap.\n\
             # TYPE qmoi_dashboard_connections_evicted_total counter\nqmoi_dashboard_connections_evicted_total {}\n\
             # HELP qmoi_dashboard_accept_errors_total Failed accepts (descriptors exhausted, ...).\n\
             # TYPE qmoi_dashboard_accept_errors_total counter\nqmoi_dashboard_accept_errors_total {}\n",
            g(&self.open),
            g(&self.cap),
            g(&self.accepted),
            g(&self.refused),
            g(&self.evicted),
            g(&self.accept_errors)
        )
    }
}

/// A connection's place under the cap, in each request's extensions. An upgraded
/// connection (a WebSocket) outlives its HTTP connection task: its handler keeps a clone
/// until the socket closes, so WebSockets count against the cap like everything else.
#[derive(Debug, Clone)]
pub struct ConnSlot(#[allow(dead_code)] Arc<SlotInner>);

#[derive(Debug)]
struct SlotInner {
    _permit: OwnedSemaphorePermit,
    stats: Arc<ConnStats>,
}

impl Drop for SlotInner {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One open connection as the accept loop sees it.
#[derive(Debug)]
struct Conn {
    /// Requests whose response (body included) is not finished.
    in_flight: AtomicUsize,
    /// Milliseconds since the registry's epoch when it last became idle (or was accepted).
    idle_since_ms: AtomicU64,
    /// Notified to close the connection (it was idle at the cap).
    evict: Notify,
}

/// Every open connection, to find the longest-idle one when the cap is reached.
#[derive(Debug)]
struct Registry {
    epoch: Instant,
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Registry {
    fn new() -> Self {
        Self { epoch: Instant::now(), next_id: AtomicU64::new(0), conns: Mutex::new(HashMap::new()) }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn add(&self) -> (u64, Arc<Conn>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let c = Arc::new(Conn {
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(self.now_ms()),
            evict: Notify::new(),
        });
        if let Ok(mut m) = self.conns.lock() {
            m.insert(id, c.clone());
        }
        (id, c)
    }

    fn remove(&self, id: u64) {
        if let Ok(mut m) = self.conns.lock() {
            m.remove(&id);
        }
    }

    /// Tell the connection idle the longest to close; false when every one is busy.
    fn evict_longest_idle(&self) -> bool {
        let Ok(mut m) = self.conns.lock() else { return false };
        let victim = m
            .iter()
            .filter(|(_, c)| c.in_flight.load(Ordering::Acquire) == 0)
            .min_by_key(|(_, c)| c.idle_since_ms.load(Ordering::Relaxed))
            .map(|(id, _)| *id);
        match victim.and_then(|id| m.remove(&id)) {
            Some(c) => {
                // `notify_one` stores a permit: the connection closes even if it is not
                // waiting yet.
                c.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Marks a request in flight on its connection until dropped (when the response body,
/// a stream included, is finished or abandoned).
struct InFlight {
    conn: Arc<Conn>,
    registry: Arc<Registry>,
}

impl InFlight {
    fn start(conn: &Arc<Conn>, registry: &Arc<Registry>) -> Self {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        Self { conn: conn.clone(), registry: registry.clone() }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.conn.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.conn.idle_since_ms.store(self.registry.now_ms(), Ordering::Relaxed);
        }
    }
}

/// What a connection's requests need to mark it busy and to carry its slot.
struct Tracked {
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    slot: ConnSlot,
}

/// How long a newcomer waits for the slot of the connection evicted for it (that task
/// only has to wake and drop its socket: well under a millisecond unless the host is
/// starved).
const EVICTION_WAIT: Duration = Duration::from_secs(1);

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
            "The descriptor limit is low: serving fewer connections at once (raise LimitNOFILE)."
        );
    }
    let slots = Arc::new(Semaphore::new(cap));
    let registry = Arc::new(Registry::new());
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
                    warn("Cannot accept a connection; pausing the accept loop briefly.", Some(&e));
                    // EMFILE/ENFILE/ENOBUFS: the pending connection stays queued; retrying at
                    // once would spin on the same error.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) if registry.evict_longest_idle() => {
                stats.evicted.fetch_add(1, Ordering::Relaxed);
                warn("Connection cap reached; closing the longest-idle connections for new ones.", None);
                match tokio::time::timeout(EVICTION_WAIT, slots.clone().acquire_owned()).await {
                    Ok(Ok(slot)) => slot,
                    _ => {
                        stats.refused.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                }
            }
            Err(_) => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                warn("Connection cap reached and every connection busy; closing new connections.", None);
                drop(tcp);
                continue;
            }
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        stats.open.fetch_add(1, Ordering::Relaxed);
        let slot = ConnSlot(Arc::new(SlotInner { _permit: slot, stats: stats.clone() }));
        let _ = tcp.set_nodelay(true);
        let (app, stop, acceptor) = (app.clone(), stop.clone(), acceptor.clone());
        let registry = registry.clone();
        tokio::spawn(async move {
            let (id, conn) = registry.add();
            let evicted = conn.clone();
            let tracked = Tracked { conn, registry: registry.clone(), slot: slot.clone() };
            let serve = async {
                match acceptor {
                    Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => connection(tls, addr, app, limits, stop, tracked).await,
                        Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed."),
                        Err(_) => tracing::debug!(%addr, "TLS handshake timed out."),
                    },
                    None => connection(tcp, addr, app, limits, stop, tracked).await,
                }
            };
            tokio::select! {
                () = serve => {}
                () = evicted.evict.notified() => tracing::debug!(%addr, "Idle connection closed to make room."),
            }
            registry.remove(id);
            // The slot goes with the task, unless an upgraded socket still holds it.
            drop(slot);
        });
    }
    drop(listener);
    // Every slot back means every connection has ended (the caller bounds this wait).
    let _ = slots.acquire_many(u32::try_from(cap).unwrap_or(u32::MAX)).await;
}

/// Serve one connection: HTTP/1.1 with upgrades (WebSocket), the client's address in
/// each request's extensions (`ConnectInfo`), closed gracefully when the server stops.
async fn connection<I>(
    io: I,
    addr: SocketAddr,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    tracked: Tracked,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Tracked { conn, registry, slot } = tracked;
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(addr));
        req.extensions_mut().insert(slot.clone());
        let mut app = app.clone();
        // In flight from here until the response body ends (a stream stays busy).
        let busy = InFlight::start(&conn, &registry);
        async move {
            let resp = app.call(req).await?;
            Ok::<_, std::convert::Infallible>(resp.map(|body| {
                axum::body::Body::new(http_body_util::BodyExt::map_frame(body, move |f| {
                    let _ = &busy;
                    f
                }))
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // A request head of at most 64 KiB (hyper's default buffer takes ~400 KiB: 512
    // connections of 200 KiB headers were 100 MiB): larger heads are answered 431.
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).max_buf_size(MAX_HEAD);
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
