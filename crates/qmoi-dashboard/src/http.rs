//! Routes, middleware and handlers. See docs/API.md for every route.

use crate::actions::SupervisorAction;
use crate::auth::{AuthOutcome, Authenticator, Identity};
use crate::hub::{Hub, unix_now};
use crate::ratelimit::RateLimiter;
use crate::store::Matcher;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use futures_util::StreamExt as _;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

/// What the dashboard asks of the supervisor.
pub trait Backend: Send + Sync + 'static {
    /// Restart one component (as `qmoi-supervisor restart-component`).
    fn restart(&self, component: &str) -> Result<String, String>;
    /// Restart every enabled component (`qmoi-supervisor restart-all`).
    fn restart_all(&self) -> Result<String, String>;
    /// Clear restart counters and failures (`qmoi-supervisor reset`).
    fn reset(&self) -> Result<String, String>;
    /// Restart the HTTP server (`qmoi-supervisor restart-dashboard`), after this answer.
    fn restart_dashboard(&self) -> Result<String, String>;
    /// The effective configuration of every component, secrets masked.
    fn config(&self) -> serde_json::Value;
}

/// The router's state, shared: axum clones it for every layer and handler of every
/// request, so a clone is one reference count (it was a dozen, and a path's allocation:
/// 1-2 % of a GraphQL request's CPU, in malloc and contended atomics).
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

impl AppState {
    pub fn new(inner: AppStateInner) -> Self {
        Self(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppStateInner;
    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

pub struct AppStateInner {
    pub hub: Arc<Hub>,
    pub auth: Arc<Authenticator>,
    pub limiter: Arc<RateLimiter>,
    pub auth_failures: Arc<crate::ratelimit::AuthFailures>,
    pub backend: Arc<dyn Backend>,
    pub audit_log: PathBuf,
    /// Becomes true when this server is stopping: live streams end so shutdown is quick.
    pub stopping: watch::Receiver<bool>,
    pub conn_stats: Arc<crate::serve::ConnStats>,
    pub hosts: Arc<HostCheck>,
    /// `[fleet]`: the engine `GET /api/fleet` asks; `None`: no Fleet page.
    pub fleet: Option<Arc<crate::fleet::Fleet>>,
    /// Live streams (SSE, WebSocket) open now, and at most how many: half the
    /// connection cap. Streams are never evicted for a newcomer, so without this bound
    /// clients that open streams and never read them could hold every connection.
    pub streams: Arc<std::sync::atomic::AtomicUsize>,
    pub max_streams: usize,
}

/// One live stream, counted until dropped.
pub struct StreamSlot(Arc<std::sync::atomic::AtomicUsize>);

impl StreamSlot {
    /// A slot, or the answer that there is none (503, with when to try again).
    fn take(s: &AppState) -> Result<Self, Box<Response>> {
        use std::sync::atomic::Ordering;
        let n = s.streams.fetch_add(1, Ordering::AcqRel);
        if n >= s.max_streams {
            s.streams.fetch_sub(1, Ordering::AcqRel);
            let mut r = err(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{} live streams are open, the most this dashboard keeps; try again later", s.max_streams),
            )
            .into_response();
            r.headers_mut().insert("retry-after", HeaderValue::from_static("10"));
            return Err(Box::new(r));
        }
        Ok(Self(s.streams.clone()))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Which `Host` and `Origin` a request may carry.
///
/// DNS rebinding: a page on `evil.example` whose name is made to resolve to 127.0.0.1
/// reaches a loopback dashboard as same-origin and reads everything (the default
/// dashboard has no auth). Its requests carry `Host: evil.example`, so a loopback
/// dashboard answers only to its own names. Cross-site reads: a WebSocket handshake (or
/// a fetch) from another site carries that site's `Origin`, which must name this
/// dashboard too. A dashboard bound to a non-loopback address has auth; it checks `Host`
/// only when `allowed_hosts` lists its names, and `Origin` always (it must equal the
/// `Host`, or be an allowed name).
#[derive(Debug, Clone)]
pub struct HostCheck {
    /// Lower-case host names and addresses without port (IPv6 without brackets).
    names: Vec<String>,
    check_host: bool,
}

impl HostCheck {
    pub fn new(cfg: &crate::config::DashboardConfig) -> Self {
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"].iter().map(|s| (*s).to_string()).collect();
        names.push(cfg.host.trim_matches(['[', ']']).to_ascii_lowercase());
        names.extend(cfg.allowed_hosts.iter().map(|h| split_host(h).0));
        Self { names, check_host: crate::config::is_loopback(&cfg.host) || !cfg.allowed_hosts.is_empty() }
    }

    /// The same, knowing the address actually bound.
    pub fn with_bound(&self, addr: SocketAddr) -> Arc<Self> {
        let mut c = self.clone();
        c.names.push(addr.ip().to_string());
        Arc::new(c)
    }

    fn known(&self, host: &str) -> bool {
        let (h, _) = split_host(host);
        self.names.contains(&h)
    }

    /// `Err(message)` when the request must be refused.
    fn check(&self, host: Option<&str>, origin: Option<&str>) -> Result<(), String> {
        if self.check_host {
            match host {
                Some(h) if self.known(h) => {}
                Some(h) => {
                    return Err(format!(
                        "Host '{}' is not a name of this dashboard (add it to dashboard.allowed_hosts)",
                        qmoi_core::human::escape_control(h)
                    ));
                }
                None => return Err("a Host header is required".into()),
            }
        }
        if let Some(o) = origin {
            // Same origin (Origin's authority is the Host), or a name of this dashboard on
            // the same port: another web app on another local port is another origin.
            let authority = o.strip_prefix("http://").or_else(|| o.strip_prefix("https://"));
            let ok = authority.is_some_and(|a| {
                host.is_some_and(|h| a.eq_ignore_ascii_case(h))
                    || (self.known(a) && split_host(a).1 == host.and_then(|h| split_host(h).1))
            });
            if !ok {
                return Err(format!(
                    "Origin '{}' is not this dashboard: cross-site requests are refused",
                    qmoi_core::human::escape_control(o)
                ));
            }
        }
        Ok(())
    }
}

/// `Host`/`Origin` authority to (lower-case name, port).
fn split_host(h: &str) -> (String, Option<&str>) {
    let h = h.trim();
    if let Some(rest) = h.strip_prefix('[') {
        let (name, after) = rest.split_once(']').unwrap_or((rest, ""));
        return (name.to_ascii_lowercase(), after.strip_prefix(':'));
    }
    match h.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => (name.to_ascii_lowercase(), Some(port)),
        _ => (h.to_ascii_lowercase(), None),
    }
}

/// An error as JSON: `{"error": "..."}`.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({"error": self.1}))).into_response()
    }
}

fn err(code: StatusCode, msg: impl Into<String>) -> ApiError {
    ApiError(code, msg.into())
}

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");
/// The OpenAPI 3.1 document of these routes, served as it is checked in (public: it is
/// documentation). Tests keep it true: every route of [`router`] is in it, and
/// schemathesis checks every answer against it.
pub const OPENAPI_JSON: &str = include_str!("../../../docs/openapi.json");

/// Content Security Policy: only our own scripts, styles and connections; never framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Becomes true when the server stops: a long-lived answer (a socket, a stream) ends then.
/// In the extensions of the requests of [`crate::Dashboard::mount`]ed routes.
#[derive(Clone)]
pub struct Stopping(pub watch::Receiver<bool>);

pub fn router(state: AppState, mounted: Option<Router>) -> Router {
    let mounted = mounted.map(|r| {
        let stopping = Stopping(state.stopping.clone());
        r.layer(axum::Extension(stopping)).with_state::<AppState>(())
    });
    let api = Router::new()
        .route("/api/monitor/status", get(status))
        .route("/api/monitor/performance", get(|s| component_named(s, "performance")))
        .route("/api/monitor/security", get(|s| component_named(s, "security")))
        .route("/api/monitor/backup", get(|s| component_named(s, "backup")))
        .route("/api/monitor/components/{id}", get(component))
        .route("/api/alerts", get(alerts))
        .route("/api/alerts/{*rest}", post(ack))
        .route("/api/silences", get(silences).post(add_silence))
        .route("/api/silences/{id}", delete(delete_silence))
        .route("/api/maintenance", get(maintenance).post(add_maintenance))
        .route("/api/maintenance/{id}", delete(end_maintenance))
        .route("/api/history", get(history))
        .route("/api/history/series", get(series))
        .route("/api/config", get(config))
        .route("/api/fleet", get(fleet))
        .route("/api/slo", get(slo))
        .route("/api/components/{id}/restart", post(restart))
        .route("/api/components/restart", post(|s, r, i| supervisor_action(s, r, i, SupervisorAction::RestartAll)))
        .route("/api/reset", post(|s, r, i| supervisor_action(s, r, i, SupervisorAction::Reset)))
        .route("/api/dashboard/restart", post(|s, r, i| supervisor_action(s, r, i, SupervisorAction::RestartDashboard)))
        .route("/api/events", get(events))
        .route("/ws", get(ws))
        .route("/metrics", get(metrics))
        .merge(mounted.unwrap_or_default())
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/", get(|| async { page(INDEX_HTML, "text/html; charset=utf-8") }))
        .route("/assets/app.js", get(|| async { page(APP_JS, "text/javascript; charset=utf-8") }))
        .route("/assets/style.css", get(|| async { page(STYLE_CSS, "text/css; charset=utf-8") }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/openapi.json", get(|| async { page(OPENAPI_JSON, "application/json") }))
        .merge(api)
        .fallback(|| async { err(StatusCode::NOT_FOUND, "no such route (see docs/API.md)") })
        .layer(middleware::from_fn_with_state(state.clone(), rate_limit))
        .layer(middleware::from_fn_with_state(state.clone(), host_check))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

fn page(body: &'static str, kind: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    resp
}

async fn host_check(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let h = req.headers();
    let host = h.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin = h.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    match s.hosts.check(host, origin) {
        Ok(()) => next.run(req).await,
        Err(msg) => err(StatusCode::FORBIDDEN, msg).into_response(),
    }
}

async fn rate_limit(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    match s.limiter.allow(addr.ip()) {
        Ok(()) => next.run(req).await,
        Err(wait) => {
            let mut r =
                err(StatusCode::TOO_MANY_REQUESTS, "too many requests from this address; slow down").into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("{}", wait.ceil().max(1.0) as u64)) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
    }
}

async fn authenticate(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let h = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    let outcome = s.auth.check(h.as_deref(), &s.auth_failures, addr.ip()).await;
    let too_many = |msg: &str, wait: u64| {
        let mut r = err(StatusCode::TOO_MANY_REQUESTS, msg).into_response();
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    };
    match outcome {
        AuthOutcome::Authenticated(id) => {
            req.extensions_mut().insert(id);
            next.run(req).await
        }
        AuthOutcome::LockedOut(wait) => {
            too_many("too many failed authentications from this address; wait (valid tokens still work)", wait)
        }
        AuthOutcome::Busy => too_many("too many password checks at once; try again shortly", 1),
        AuthOutcome::Missing | AuthOutcome::Invalid => {
            if outcome == AuthOutcome::Invalid {
                tracing::warn!(remote = %addr.ip(), "Failed dashboard authentication.");
            }
            let mut r =
                err(StatusCode::UNAUTHORIZED, "authentication required: a bearer token or basic auth").into_response();
            // A Bearer challenge, not Basic: a browser answers a Basic challenge on the page's
            // own fetch() with a native login dialog that blocks the page. Basic auth still
            // works for clients that send it up front (curl -u, Prometheus basic_auth).
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"qmoi\""));
            r
        }
    }
}

/// The shared admin actions (crate::actions) for this request.
fn ctx<'a>(s: &'a AppState, id: &'a Identity, remote: SocketAddr) -> crate::actions::Ctx<'a> {
    crate::actions::Ctx {
        hub: &s.hub,
        backend: s.backend.as_ref(),
        audit_log: &s.audit_log,
        auth_enabled: s.auth.enabled(),
        id,
        remote,
    }
}

impl From<crate::actions::ActionError> for ApiError {
    fn from(e: crate::actions::ActionError) -> Self {
        use crate::actions::ActionError as E;
        let code = match &e {
            E::Forbidden(_) => StatusCode::FORBIDDEN,
            E::NotFound(_) => StatusCode::NOT_FOUND,
            E::Invalid(_) => StatusCode::BAD_REQUEST,
            E::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            E::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        err(code, e.to_string())
    }
}

/// Admin actions: only with auth configured, and only for the admin role.
fn require_admin(s: &AppState, id: &Identity) -> Result<(), ApiError> {
    Ok(crate::actions::require_admin(s.auth.enabled(), id)?)
}

/// A store call on a blocking thread: SQLite, and the store's mutex shared with ingest
/// and pruning, must not hold an async worker.
async fn on_store<T: Send + 'static>(
    s: &AppState,
    f: impl FnOnce(&crate::store::Store) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = s.hub.store.clone();
    tokio::task::spawn_blocking(move || f(&store)).await.map_err(store_err)?.map_err(store_err)
}

fn json_bytes(b: bytes::Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], b).into_response()
}

async fn status(State(s): State<AppState>) -> Response {
    let b = s.hub.status_json();
    if b.is_empty() {
        return err(StatusCode::SERVICE_UNAVAILABLE, "the supervisor has not produced a status yet").into_response();
    }
    json_bytes(b)
}

/// One component: its supervisor state and its latest report. The report goes out as the
/// bytes the monitor wrote (shared with the cache, not copied): a report of tens of
/// megabytes costs no memory per request.
fn component_view(s: &AppState, id: &str) -> Result<Response, ApiError> {
    let overview = s.hub.overview().ok_or_else(|| err(StatusCode::SERVICE_UNAVAILABLE, "no status yet"))?;
    let state = overview.components.iter().find(|c| c.id == id);
    if state.is_none() && qmoi_core::component::find(id).is_none() {
        return Err(err(StatusCode::NOT_FOUND, format!("unknown component '{id}'")));
    }
    let mut head = serde_json::to_vec(&serde_json::json!({
        "component": id,
        "configured": state.is_some(),
        "supervisor": state,
    }))
    .map_err(store_err)?;
    head.pop(); // the closing brace: the report follows
    head.extend_from_slice(b",\"report\":");
    let report = s.hub.report(id).map_or(bytes::Bytes::from_static(b"null"), |r| r.json);
    let parts = [bytes::Bytes::from(head), report, bytes::Bytes::from_static(b"}")];
    let body = axum::body::Body::from_stream(futures_util::stream::iter(parts.map(Ok::<_, std::convert::Infallible>)));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The components whose reports carry service level objectives (`details.slo`).
const SLO_COMPONENTS: [&str; 2] = ["api_endpoints", "heartbeats"];

/// `GET /api/slo`: every objective, as its monitor last reported it.
async fn slo(State(s): State<AppState>) -> Json<serde_json::Value> {
    /// Only `slo` is decoded; the rest of the details (megabytes for thousands of
    /// endpoints) is skipped.
    #[derive(serde::Deserialize)]
    struct Only {
        #[serde(default)]
        slo: Vec<serde_json::Map<String, serde_json::Value>>,
    }
    let mut slos = Vec::new();
    for id in SLO_COMPONENTS {
        let Some(r) = s.hub.report(id) else { continue };
        let Ok(only) = serde_json::from_str::<Only>(r.report.details.get()) else { continue };
        for mut row in only.slo {
            row.insert("component".into(), id.into());
            slos.push(serde_json::Value::Object(row));
        }
    }
    Json(serde_json::json!({ "slos": slos }))
}

async fn component_named(State(s): State<AppState>, id: &'static str) -> Result<Response, ApiError> {
    component_view(&s, id)
}

async fn component(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    component_view(&s, &id)
}

fn store_err(e: impl std::fmt::Display) -> ApiError {
    err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

async fn alerts(State(s): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let now = unix_now();
    let (marks, recent) = on_store(&s, move |st| Ok((st.marks(now)?, st.recent_alerts(100)?))).await?;
    let active: Vec<serde_json::Value> = s
        .hub
        .firing()
        .iter()
        .map(|f| {
            let a = &f.alert;
            let mut v = serde_json::to_value(f).unwrap_or_default();
            v["acknowledged"] = serde_json::to_value(marks.ack(&a.fingerprint)).unwrap_or_default();
            v["silenced_by"] = serde_json::to_value(marks.silenced_by(&f.component, &a.fingerprint, a.level.as_str()))
                .unwrap_or_default();
            v
        })
        .collect();
    Ok(Json(serde_json::json!({"active": active, "recent": recent, "silences": marks.silences})))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AckBody {
    #[serde(default)]
    comment: String,
}

/// `POST /api/alerts/{fingerprint}/ack`: fingerprints contain `/`, so this is a catch-all.
async fn ack(
    State(s): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(id): axum::Extension<Identity>,
    Path(rest): Path<String>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(fp) = rest.strip_suffix("/ack") else {
        return Err(err(StatusCode::NOT_FOUND, "use POST /api/alerts/{fingerprint}/ack"));
    };
    require_admin(&s, &id)?;
    // The body is optional: none, or `{"comment": "…"}`; anything else is a JSON 400
    // (not the framework's plain-text 422).
    let body = body.map_err(|e| err(e.status(), format!("bad acknowledgement: {e}")))?;
    let body: AckBody = if body.iter().all(u8::is_ascii_whitespace) {
        AckBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| err(StatusCode::BAD_REQUEST, format!("bad acknowledgement: {e}")))?
    };
    let a = ctx(&s, &id, remote).acknowledge(fp, body.comment).await?;
    Ok(Json(serde_json::json!({"fingerprint": fp, "acknowledged": a})))
}

async fn silences(State(s): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let now = unix_now();
    Ok(Json(serde_json::json!({"silences": on_store(&s, move |st| st.active_silences(now)).await?})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceBody {
    #[serde(default)]
    component: Option<String>,
    #[serde(default)]
    fingerprint: Option<String>,
    #[serde(default)]
    level: Option<String>,
    /// `"2h"`, `"30m"`, or seconds.
    #[serde(default)]
    duration: Option<qmoi_core::config::ConfigDuration>,
    /// Unix seconds; alternative to `duration`.
    #[serde(default)]
    expires_at: Option<i64>,
    #[serde(default)]
    comment: String,
}

async fn add_silence(
    State(s): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(id): axum::Extension<Identity>,
    body: Result<Json<SilenceBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    require_admin(&s, &id)?;
    // 413 for a body over the limit (2 MiB), 400 for anything else wrong with it.
    let Json(b) = body.map_err(|e| {
        let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE { e.status() } else { StatusCode::BAD_REQUEST };
        err(code, format!("bad silence: {e}"))
    })?;
    let now = unix_now();
    let expires_at = match (b.duration, b.expires_at) {
        (Some(d), None) => now + i64::try_from(d.get().as_secs()).unwrap_or(i64::MAX / 2),
        (None, Some(t)) => t,
        _ => {
            return Err(err(
                StatusCode::BAD_REQUEST,
                "give exactly one of duration (e.g. \"2h\") or expires_at (unix seconds)",
            ));
        }
    };
    let m = Matcher { component: b.component, fingerprint: b.fingerprint, level: b.level };
    let sid = ctx(&s, &id, remote).silence(m, expires_at, b.comment).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({"id": sid, "expires_at": expires_at}))))
}

async fn delete_silence(
    State(s): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(id): axum::Extension<Identity>,
    sid: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&s, &id)?;
    let Path(sid) = sid.map_err(|e| err(StatusCode::BAD_REQUEST, format!("bad silence id: {e}")))?;
    ctx(&s, &id, remote).unsilence(sid).await?;
    Ok(Json(serde_json::json!({"deleted": sid})))
}

async fn maintenance(State(s): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let now = unix_now();
    let windows = on_store(&s, move |st| st.maintenance(now)).await?;
    let windows: Vec<serde_json::Value> = windows
        .into_iter()
        .map(|w| {
            let active = w.starts_at <= now;
            let mut v = serde_json::to_value(w).unwrap_or_default();
            v["active"] = active.into();
            v
        })
        .collect();
    Ok(Json(serde_json::json!({"windows": windows})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaintenanceBody {
    /// Absent with `labels`: every component.
    #[serde(default)]
    component: String,
    /// One endpoint, check or target of the component (absent: all of it).
    #[serde(default)]
    subject: Option<String>,
    /// Only the checks and alerts carrying all of these labels.
    #[serde(default)]
    labels: qmoi_core::report::Labels,
    reason: String,
    /// `"2h"`, `"30m"`, or seconds, from `starts_at` (default now).
    #[serde(default)]
    duration: Option<qmoi_core::config::ConfigDuration>,
    /// Unix seconds; alternative to `duration`.
    #[serde(default)]
    ends_at: Option<i64>,
    #[serde(default)]
    starts_at: Option<i64>,
}

async fn add_maintenance(
    State(s): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(id): axum::Extension<Identity>,
    body: Result<Json<MaintenanceBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    require_admin(&s, &id)?;
    let Json(b) = body.map_err(|e| {
        let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE { e.status() } else { StatusCode::BAD_REQUEST };
        err(code, format!("bad maintenance window: {e}"))
    })?;
    let starts_at = b.starts_at.unwrap_or_else(unix_now);
    let ends_at = match (b.duration, b.ends_at) {
        (Some(d), None) => starts_at.saturating_add(i64::try_from(d.get().as_secs()).unwrap_or(i64::MAX / 2)),
        (None, Some(t)) => t,
        _ => {
            return Err(err(
                StatusCode::BAD_REQUEST,
                "give exactly one of duration (e.g. \"2h\") or ends_at (unix seconds)",
            ));
        }
    };
    let window = crate::actions::NewWindow {
        component: &b.component,
        subject: b.subject.as_deref(),
        labels: &b.labels,
        starts_at,
        ends_at,
        reason: &b.reason,
    };
    let w = ctx(&s, &id, remote).add_maintenance(window).await?;
    Ok((StatusCode::CREATED, Json(serde_json::to_value(w).unwrap_or_default())))
}

async fn end_maintenance(
    State(s): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(id): axum::Extension<Identity>,
    wid: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&s, &id)?;
    let Path(wid) = wid.map_err(|e| err(StatusCode::BAD_REQUEST, format!("bad maintenance id: {e}")))?;
    ctx(&s, &id, remote).end_maintenance(wid).await?;
    Ok(Json(serde_json::json!({"ended": wid})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    component: Option<String>,
    metric: String,
    /// Unix seconds or RFC 3339; default one hour ago.
    from: Option<String>,
    to: Option<String>,
    /// Seconds per point.
    step: Option<i64>,
    format: Option<String>,
}

async fn history(
    State(s): State<AppState>,
    q: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| err(StatusCode::BAD_REQUEST, format!("{e} (needs metric=…)")))?;
    let now = unix_now();
    let range = crate::store::Range::parse(q.from.as_deref(), q.to.as_deref(), q.step, now)
        .map_err(|e| err(StatusCode::BAD_REQUEST, e))?;
    let (from, to) = (range.from, range.to);
    let (comp, metric) = (q.component.clone(), q.metric.clone());
    let series = on_store(&s, move |st| st.query(comp.as_deref(), &metric, &range, now)).await?;
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(serde_json::json!({"from": from, "to": to, "series": series})).into_response()),
        "csv" => {
            let mut out = String::from("timestamp,component,metric,value\n");
            for se in &series {
                let metric = format!("\"{}\"", se.metric.replace('"', "\"\""));
                for (t, v) in &se.points {
                    out.push_str(&format!("{t},{},{metric},{v}\n", se.component));
                }
            }
            Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response())
        }
        other => Err(err(StatusCode::BAD_REQUEST, format!("format must be json or csv, got '{other}'"))),
    }
}

async fn series(State(s): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let store = s.hub.store.clone();
    let list = tokio::task::spawn_blocking(move || store.list_series()).await.map_err(store_err)?.map_err(store_err)?;
    let list: Vec<serde_json::Value> =
        list.into_iter().map(|(c, m)| serde_json::json!({"component": c, "metric": m})).collect();
    Ok(Json(serde_json::json!({"series": list})))
}

async fn fleet(State(s): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(f) = &s.fleet else {
        return Err(err(StatusCode::NOT_FOUND, "no fleet configured: set [fleet] query_url in master_monitor.toml"));
    };
    f.overview().await.map(Json).map_err(|e| err(StatusCode::BAD_GATEWAY, e))
}

async fn config(State(s): State<AppState>) -> Json<serde_json::Value> {
    Json(s.backend.config())
}

async fn restart(
    State(s): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(id): axum::Extension<Identity>,
    Path(comp): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(serde_json::json!({"message": ctx(&s, &id, remote).restart(&comp).await?})))
}

/// The supervisor-wide admin actions, as the CLI verbs of the same names.
async fn supervisor_action(
    State(s): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(id): axum::Extension<Identity>,
    action: SupervisorAction,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(serde_json::json!({"message": ctx(&s, &id, remote).supervisor(action).await?})))
}

/// The parts of the `/metrics` body: the reports' metrics, then the server's counters.
pub(crate) fn metrics_parts(hub: &Hub, conn_stats: &crate::serve::ConnStats) -> [bytes::Bytes; 2] {
    [hub.metrics_text(), bytes::Bytes::from(conn_stats.render())]
}

async fn metrics(State(s): State<AppState>) -> Response {
    let parts = metrics_parts(&s.hub, &s.conn_stats);
    let body = axum::body::Body::from_stream(futures_util::stream::iter(parts.map(Ok::<_, std::convert::Infallible>)));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

/// The first message of every live connection: the current overview.
fn hello(s: &AppState) -> Option<Arc<str>> {
    s.hub.overview().map(|o| crate::hub::LiveEvent::overview(&o).json)
}

async fn events(State(s): State<AppState>) -> Response {
    let slot = match StreamSlot::take(&s) {
        Ok(slot) => slot,
        Err(r) => return *r,
    };
    let first = futures_util::stream::iter(hello(&s));
    let live = tokio_stream::wrappers::BroadcastStream::new(s.hub.subscribe()).filter_map(|m| async move {
        // A client too slow to keep up misses events; the next overview repairs its view.
        m.ok().map(|e| e.json)
    });
    let mut stop = s.stopping.clone();
    let stream = first
        .chain(live)
        .map(move |json| {
            // The slot lives as long as the stream.
            let _ = &slot;
            Ok::<_, std::convert::Infallible>(Event::default().data(&*json))
        })
        .take_until(async move {
            let _ = stop.wait_for(|v| *v).await;
        });
    let mut headers = HeaderMap::new();
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    (headers, Sse::new(stream).keep_alive(KeepAlive::default())).into_response()
}

async fn ws(
    State(s): State<AppState>,
    slot: Option<axum::Extension<crate::serve::ConnSlot>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let stream = match StreamSlot::take(&s) {
        Ok(slot) => slot,
        Err(r) => return *r,
    };
    // The page only listens: small read buffers and messages, writes sent at once (each
    // send flushes anyway), and a client that stops reading is cut off at 1 MiB queued.
    // The defaults (128 KiB read and write buffers) cost 140 KiB per idle client.
    upgrade
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20)
        .max_message_size(64 << 10)
        .max_frame_size(64 << 10)
        .on_upgrade(move |socket| async move {
            // Counted under the connection cap until the socket closes.
            let _slot = slot;
            let _stream = stream;
            ws_loop(s, socket).await;
        })
}

async fn ws_loop(s: AppState, mut socket: WebSocket) {
    let mut rx = s.hub.subscribe();
    let mut stop = s.stopping.clone();
    if let Some(h) = hello(&s)
        && socket.send(Message::Text(h.to_string().into())).await.is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Ok(ev) => if socket.send(Message::Text(ev.json.to_string().into())).await.is_err() { return },
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            _ = stop.changed() => {
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
        }
    }
}
