//! # qmoi-dashboard
//!
//! The dashboard page, REST API, live updates (SSE and WebSocket), metric history and
//! Prometheus `/metrics`, served by the supervisor (docs/API.md). The supervisor owns a
//! [`Dashboard`], feeds its [`Hub`] with each new overview, and starts, stops and restarts
//! the HTTP [`Server`] (the monitors are never touched by a dashboard restart).
//!
//! - [`config`]: `[dashboard]` keys and their validation (non-loopback needs auth).
//! - [`auth`], [`ratelimit`]: bearer tokens / argon2 basic auth, roles; per-client buckets.
//! - [`store`]: `data/history.db` (history at three resolutions, acks, silences, audit).
//! - [`hub`]: cached live state and the event broadcast.
//! - [`http`]: routes and handlers; [`metrics`]: the text exposition.
//! - [`fleet`]: `GET /api/fleet`, the fleet as a Prometheus-compatible engine sees it.

pub mod actions;
pub mod auth;
pub mod config;
pub mod fleet;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod ratelimit;
pub mod store;
pub mod tls;

/// The bounded accept loop (in qmoi-core: the heartbeat listener uses it too).
pub use qmoi_core::serve;

pub use http::Backend;
pub use hub::Hub;

use config::DashboardConfig;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Everything the HTTP server needs, kept across dashboard restarts.
pub struct Dashboard {
    hub: Arc<Hub>,
    auth: Arc<auth::Authenticator>,
    limiter: Arc<ratelimit::RateLimiter>,
    auth_failures: Arc<ratelimit::AuthFailures>,
    backend: Arc<dyn Backend>,
    audit_log: std::path::PathBuf,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    limits: serve::Limits,
    conn_stats: Arc<serve::ConnStats>,
    hosts: Arc<http::HostCheck>,
    fleet: Option<Arc<fleet::Fleet>>,
    mounted: Option<axum::Router>,
}

impl Dashboard {
    /// Open `data_dir/history.db` and prepare the server's state.
    pub fn open(
        cfg: &DashboardConfig,
        data_dir: &Path,
        report_dir: &Path,
        log_dir: &Path,
        fleet: &fleet::FleetConfig,
        backend: Arc<dyn Backend>,
    ) -> Result<Self, String> {
        let store = store::Store::open(&data_dir.join("history.db"), cfg.history.clone()).map_err(|e| e.to_string())?;
        Ok(Self {
            hub: Arc::new(Hub::new(Arc::new(store), report_dir.to_path_buf())),
            auth: Arc::new(auth::Authenticator::new(&cfg.auth)),
            limiter: Arc::new(ratelimit::RateLimiter::new(cfg.rate_limit)),
            auth_failures: Arc::default(),
            backend,
            audit_log: log_dir.join("audit.log"),
            tls: cfg.tls.as_ref().map(|t| tls::load(t, &[b"http/1.1"])).transpose()?,
            limits: serve::Limits {
                max_connections: cfg.max_connections,
                header_read_timeout: cfg.header_read_timeout.get(),
            },
            conn_stats: Arc::default(),
            hosts: Arc::new(http::HostCheck::new(cfg)),
            fleet: fleet::Fleet::new(fleet)?.map(Arc::new),
            mounted: None,
        })
    }

    /// Serve `routes` (the GraphQL API) beside the REST API from the next [`serve`] on,
    /// behind the same host check, rate limit and authentication. Their requests carry
    /// in their extensions the caller's [`auth::Identity`], `ConnectInfo<SocketAddr>`,
    /// the connection's [`serve::ConnSlot`] (keep it while an upgraded socket lives) and
    /// [`http::Stopping`].
    ///
    /// [`serve`]: Dashboard::serve
    pub fn mount(&mut self, routes: axum::Router) {
        self.mounted = Some(routes);
    }

    pub fn hub(&self) -> Arc<Hub> {
        self.hub.clone()
    }

    /// What the other APIs (gRPC) share with the HTTP server: one cache and store, the
    /// same authentication, rate limits, supervisor actions and audit log.
    pub fn shared(&self) -> Shared {
        Shared {
            hub: self.hub.clone(),
            auth: self.auth.clone(),
            auth_failures: self.auth_failures.clone(),
            limiter: self.limiter.clone(),
            backend: self.backend.clone(),
            audit_log: self.audit_log.clone(),
        }
    }

    /// The body of `/metrics` as it would be served now, in parts (the reports' metrics,
    /// then the server's own counters).
    pub fn metrics_parts(&self) -> [bytes::Bytes; 2] {
        http::metrics_parts(&self.hub, &self.conn_stats)
    }

    /// Start serving on `listener` (see [`serve`] for the bounds on every connection).
    pub fn serve(&self, listener: TcpListener) -> std::io::Result<Server> {
        let addr = listener.local_addr()?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let state = http::AppState::new(http::AppStateInner {
            hub: self.hub.clone(),
            auth: self.auth.clone(),
            limiter: self.limiter.clone(),
            auth_failures: self.auth_failures.clone(),
            backend: self.backend.clone(),
            audit_log: self.audit_log.clone(),
            stopping: stop_rx.clone(),
            conn_stats: self.conn_stats.clone(),
            hosts: self.hosts.with_bound(addr),
            fleet: self.fleet.clone(),
            streams: Arc::default(),
            max_streams: (self.limits.max_connections / 2).max(1),
        });
        let app = http::router(state, self.mounted.clone());
        let join =
            tokio::spawn(serve::run(listener, self.tls.clone(), app, self.limits, self.conn_stats.clone(), stop_rx));
        let tls = self.tls.is_some();
        tracing::info!(%addr, tls, "Dashboard listening.");
        Ok(Server { addr, tls, stop: stop_tx, join })
    }

    /// Apply a reloaded `[dashboard]` without dropping a client: its tokens, users and
    /// rate limit take effect from the next request. What the server was started with
    /// (address, TLS, connection bounds, allowed hosts, retention) cannot change under
    /// it: when any of that changed, nothing is applied (so that, say, auth is never
    /// removed from a server that still listens on a public address) and the `Err` says
    /// what waits for a restart of the supervisor. `Ok`: what was applied.
    pub fn reconfigure(&self, old: &DashboardConfig, new: &DashboardConfig) -> Result<Vec<String>, String> {
        let fixed = |c: &DashboardConfig| {
            let mut c = c.clone();
            c.auth = config::AuthConfig::default();
            c.rate_limit = qmoi_core::ratelimit::RateLimitConfig::default();
            serde_json::to_value(&c).unwrap_or(serde_json::Value::Null)
        };
        let (a, b) = (fixed(old), fixed(new));
        if a != b {
            let mut keys: Vec<String> = match (&a, &b) {
                (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                    a.keys().filter(|k| a.get(*k) != b.get(*k)).map(|k| format!("dashboard.{k}")).collect()
                }
                _ => vec!["[dashboard]".into()],
            };
            keys.sort();
            return Err(keys.join(", "));
        }
        let mut applied = Vec::new();
        if self.auth.replace(&new.auth) {
            applied.push("dashboard.auth applied (tokens and users)".to_string());
        }
        if self.limiter.set(new.rate_limit) {
            applied.push("dashboard.rate_limit applied".to_string());
        }
        Ok(applied)
    }

    /// Delete history past its retention every ten minutes, until the runtime stops.
    pub fn spawn_pruner(&self) {
        let store = self.hub.store.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(600));
            loop {
                tick.tick().await;
                let s = store.clone();
                match tokio::task::spawn_blocking(move || s.prune(hub::unix_now())).await {
                    Ok(Ok(n)) if n > 0 => tracing::info!(deleted = n, "History pruned."),
                    Ok(Err(e)) => tracing::warn!(error = %e, "Cannot prune history."),
                    _ => {}
                }
            }
        });
    }
}

/// See [`Dashboard::shared`].
#[derive(Clone)]
pub struct Shared {
    pub hub: Arc<Hub>,
    pub auth: Arc<auth::Authenticator>,
    pub auth_failures: Arc<ratelimit::AuthFailures>,
    pub limiter: Arc<ratelimit::RateLimiter>,
    pub backend: Arc<dyn Backend>,
    pub audit_log: std::path::PathBuf,
}

impl Shared {
    /// The admin actions for `id` calling from `remote`.
    pub fn actions<'a>(&'a self, id: &'a auth::Identity, remote: SocketAddr) -> actions::Ctx<'a> {
        actions::Ctx {
            hub: &self.hub,
            backend: self.backend.as_ref(),
            audit_log: &self.audit_log,
            auth_enabled: self.auth.enabled(),
            id,
            remote,
        }
    }
}

/// Bind the configured address; a clear message when it cannot be had.
pub async fn bind(cfg: &DashboardConfig) -> Result<TcpListener, String> {
    let host = if cfg.host == "localhost" { "127.0.0.1" } else { cfg.host.trim_matches(['[', ']']) };
    let addr = format!("{}:{}", if host.contains(':') { format!("[{host}]") } else { host.to_string() }, cfg.port);
    TcpListener::bind(&addr).await.map_err(|e| {
        format!("cannot listen on {addr} for the dashboard: {e} (another program on that port? change dashboard.port)")
    })
}

/// A running HTTP server.
pub struct Server {
    pub addr: SocketAddr,
    pub tls: bool,
    stop: watch::Sender<bool>,
    join: tokio::task::JoinHandle<()>,
}

impl Server {
    /// `http://127.0.0.1:8080/` or `https://…`.
    pub fn url(&self) -> String {
        format!("{}://{}/", if self.tls { "https" } else { "http" }, self.addr)
    }

    /// Stop accepting, end live streams, and wait (at most 3 s) for requests in flight.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let mut join = self.join;
        if tokio::time::timeout(Duration::from_secs(3), &mut join).await.is_err() {
            join.abort();
        }
    }
}
