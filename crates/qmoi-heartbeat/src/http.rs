//! The ping listener. URL shapes as jobs already call them, so a script moves here by
//! changing the host:
//!
//! - Healthchecks: `/ping/<uuid>`, `/ping/<uuid>/start`, `/ping/<uuid>/fail`,
//!   `/ping/<uuid>/log`, `/ping/<uuid>/<exit status 0-255>`; the slug form
//!   `/ping/<ping_key>/<name>[/<same words>]`; `?rid=<id>` pairs a start with its end.
//!   GET, HEAD or POST; the body is kept (the first `max_body` bytes).
//! - Uptime Kuma push: `/api/push/<token>?status=up|down&msg=…&ping=…` (anything but
//!   `up` is a failure, `msg` its text).
//!
//! Answers: `OK` (200), 404 for an unknown key, 400 for a malformed path, 405 for another
//! method, 429 past the per-address rate limit. Served by the bounded accept loop of
//! `qmoi_core::serve` (connection cap, header timeout).

use crate::Shared;
use crate::state::{Kind, Ping};
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// The body read at most (the first `max_body` bytes of it kept); a longer upload is cut.
const MAX_READ: usize = 1 << 20;

pub fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new().fallback(ping).with_state(shared)
}

fn answer(code: StatusCode, text: &'static str) -> Response {
    (code, [("content-type", "text/plain; charset=utf-8")], text).into_response()
}

async fn ping(
    State(s): State<Arc<Shared>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
    body: Body,
) -> Response {
    if !matches!(method, Method::GET | Method::HEAD | Method::POST) {
        return answer(StatusCode::METHOD_NOT_ALLOWED, "use GET, HEAD or POST\n");
    }
    if !s.allow(remote.ip()) {
        return answer(StatusCode::TOO_MANY_REQUESTS, "rate limited\n");
    }
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let found = match segments.as_slice() {
        ["ping", key, rest @ ..] if rest.len() <= 2 => s.find_ping(key, rest),
        ["api", "push", token] => match s.by_token.find(&s.checks, token) {
            Some(i) => {
                let up = q.get("status").is_some_and(|v| v == "up");
                Ok((i, if up { Kind::Success } else { Kind::Fail }))
            }
            None => Err(StatusCode::NOT_FOUND),
        },
        _ => Err(StatusCode::BAD_REQUEST),
    };
    let (i, kind) = match found {
        Ok(x) => x,
        Err(StatusCode::NOT_FOUND) => return answer(StatusCode::NOT_FOUND, "not found\n"),
        Err(_) => return answer(StatusCode::BAD_REQUEST, "invalid url format\n"),
    };
    let mut text = read_capped(body, s.max_body).await;
    if let Some(msg) = q.get("msg").filter(|_| segments.first() == Some(&"api")) {
        text = msg.chars().take(s.max_body).collect();
    }
    let rid = q.get("rid").map(|r| r.chars().take(64).collect::<String>().into_boxed_str());
    s.take(i, Ping { kind, at: chrono::Utc::now(), body: text.into_boxed_str(), rid, from: remote.ip() });
    answer(StatusCode::OK, "OK")
}

/// The first `cap` bytes of the body as text (lossy), reading at most [`MAX_READ`].
async fn read_capped(body: Body, cap: usize) -> String {
    let mut kept = Vec::new();
    let mut read = 0usize;
    let mut body = body;
    while read < MAX_READ {
        match body.frame().await {
            Some(Ok(f)) => {
                if let Some(d) = f.data_ref() {
                    read += d.len();
                    let room = cap.saturating_sub(kept.len());
                    kept.extend_from_slice(&d[..d.len().min(room)]);
                }
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}
