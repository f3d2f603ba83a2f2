//! GraphQL over HTTP (`POST /graphql`) and over WebSocket (`GET /graphql/ws`,
//! `graphql-transport-ws`, and the older `graphql-ws` of subscriptions-transport-ws).
//!
//! The glue is ours rather than async-graphql-axum's for what a monitoring endpoint must
//! bound: its WebSocket upgrade keeps axum's default 128 KiB read and write buffers per
//! socket (1,000 subscribers would hold ~140 MiB idle), has no limit on the request body,
//! on subscriptions per connection or on the time to `connection_init`, and does not end
//! when the server stops. The protocol itself (messages, ids, completion, ping) is
//! async-graphql's.

use crate::schema::Caller;
use crate::{MAX_BODY_BYTES, MAX_SUBSCRIPTIONS_PER_SOCKET, QmoiSchema};
use async_graphql::http::{ClientMessage, WebSocketProtocols, WsMessage};
use async_graphql::parser::types::ExecutableDocument;
use axum::Extension;
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt as _, StreamExt as _};
use qmoi_dashboard::auth::Identity;
use qmoi_dashboard::http::Stopping;
use qmoi_dashboard::serve::ConnSlot;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A WebSocket must send `connection_init` within this (graphql-transport-ws: close 4408).
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Parsed queries kept, and the longest query text kept.
const PARSED_ENTRIES: usize = 64;
const PARSED_MAX_QUERY: usize = 8 << 10;

/// The router's state: the schema, and the documents of the queries clients send again
/// and again (a dashboard polls the same few). Parsing is pest's grammar walk: a third
/// of a small query's CPU before the cache; a cached document is cloned (its names are
/// shared). Bounded: at most [`PARSED_ENTRIES`] texts of at most [`PARSED_MAX_QUERY`]
/// bytes, emptied when full (a client sending ever-new queries only parses, as it would
/// without the cache).
#[derive(Clone)]
pub struct Api {
    pub schema: QmoiSchema,
    parsed: Arc<Mutex<HashMap<String, ExecutableDocument>>>,
}

impl Api {
    pub fn new(schema: QmoiSchema) -> Self {
        Self { schema, parsed: Arc::default() }
    }

    /// `request` with its document from the cache, or parsed now and kept. A text that
    /// does not parse is left to the engine, which reports the error with its place.
    fn with_document(&self, mut request: async_graphql::Request) -> async_graphql::Request {
        let lock = || self.parsed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(doc) = lock().get(&request.query) {
            request.set_parsed_query(doc.clone());
            return request;
        }
        if request.query.len() <= PARSED_MAX_QUERY
            && let Ok(doc) = async_graphql::parser::parse_query(&request.query)
        {
            let mut cache = lock();
            if cache.len() >= PARSED_ENTRIES {
                cache.clear();
            }
            cache.insert(request.query.clone(), doc.clone());
            request.set_parsed_query(doc);
        }
        request
    }
}

/// A GraphQL error answer outside execution (bad body): `{"errors": [{"message", "extensions": {"code"}}]}`.
fn refuse(status: StatusCode, code: &str, message: String) -> Response {
    let body = serde_json::json!({"errors": [{"message": message, "extensions": {"code": code}}]});
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// `POST /graphql`: one operation per request, `application/json` only (a form post from
/// another site cannot send that type without a CORS preflight, which this server does not
/// grant), at most [`MAX_BODY_BYTES`].
pub async fn post(
    State(api): State<Api>,
    Extension(id): Extension<Identity>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !json_type {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BAD_REQUEST",
            "send the operation as Content-Type: application/json".into(),
        );
    }
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BAD_REQUEST",
                format!("the body is over {} KiB or unreadable: {e}", MAX_BODY_BYTES / 1024),
            );
        }
    };
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return refuse(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "one operation per request: batches are not accepted".into(),
        );
    }
    let request: async_graphql::Request = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                format!("the body is not a GraphQL request ({{\"query\": …, \"variables\": …}}): {e}"),
            );
        }
    };
    let response = api.schema.execute(api.with_document(request).data(Caller { id, remote })).await;
    match serde_json::to_vec(&response) {
        Ok(b) => ([(header::CONTENT_TYPE, "application/json")], b).into_response(),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.to_string()),
    }
}

/// `GET /graphql/ws`: the WebSocket for subscriptions (and queries and mutations, if a
/// client sends them there). The handshake is authenticated like every route.
pub async fn ws(
    State(Api { schema, .. }): State<Api>,
    Extension(id): Extension<Identity>,
    Extension(Stopping(stopping)): Extension<Stopping>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    slot: Option<Extension<ConnSlot>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // graphql-transport-ws when the client offers it, whatever the order (clients offer
    // both and take the one the server picks).
    let offered: Vec<WebSocketProtocols> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|p| p.trim().parse::<WebSocketProtocols>().ok())
        .collect();
    let protocol = offered.iter().copied().find(|p| *p == WebSocketProtocols::GraphQLWS).or(offered.first().copied());
    let Some(protocol) = protocol else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "ask for the graphql-transport-ws subprotocol (Sec-WebSocket-Protocol)".into(),
        );
    };
    // Clients mostly listen: small buffers (as the dashboard's own WebSocket), a client
    // that stops reading is cut off at 1 MiB queued, messages at most the body limit.
    upgrade
        .protocols([protocol.sec_websocket_protocol()])
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20)
        .max_message_size(MAX_BODY_BYTES)
        .max_frame_size(MAX_BODY_BYTES)
        .on_upgrade(move |socket| async move {
            // Counted under the connection cap until the socket closes.
            let _slot = slot;
            run(socket, schema, protocol, Caller { id, remote }, stopping).await;
        })
}

/// What a socket has going: the ids of its subscriptions.
#[derive(Default)]
struct Active(Mutex<HashSet<String>>);

impl Active {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn too_many() -> serde_json::Error {
    <serde_json::Error as serde::de::Error>::custom(format!(
        "at most {MAX_SUBSCRIPTIONS_PER_SOCKET} operations at once on one socket"
    ))
}

async fn run(
    socket: WebSocket,
    schema: QmoiSchema,
    protocol: WebSocketProtocols,
    caller: Caller,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let (mut sink, stream) = socket.split();
    let active = Arc::new(Active::default());
    let seen = active.clone();
    // The client's messages, counted: a socket holds at most so many operations (an
    // error closes it, naming the limit).
    let input = stream
        .take_while(|m| {
            std::future::ready(matches!(
                m,
                Ok(Message::Text(_) | Message::Binary(_) | Message::Ping(_) | Message::Pong(_))
            ))
        })
        .filter_map(move |m| {
            let msg = match m {
                Ok(Message::Text(t)) => Some(ClientMessage::from_bytes(t.as_bytes())),
                Ok(Message::Binary(b)) => Some(ClientMessage::from_bytes(b)),
                _ => None,
            };
            let msg = msg.map(|m| match m {
                Ok(ClientMessage::Start { id, payload }) => {
                    let mut a = seen.lock();
                    if a.len() >= MAX_SUBSCRIPTIONS_PER_SOCKET && !a.contains(&id) {
                        return Err(too_many());
                    }
                    a.insert(id.clone());
                    Ok(ClientMessage::Start { id, payload })
                }
                Ok(ClientMessage::Stop { id }) => {
                    seen.lock().remove(&id);
                    Ok(ClientMessage::Stop { id })
                }
                other => other,
            });
            std::future::ready(msg)
        });
    let mut data = async_graphql::Data::default();
    data.insert(caller);
    let mut gql = async_graphql::http::WebSocket::from_message_stream(schema, input, protocol).connection_data(data);
    let init_deadline = tokio::time::sleep(INIT_TIMEOUT);
    let stopped = async move {
        let _ = stopping.wait_for(|v| *v).await;
    };
    tokio::pin!(init_deadline, stopped);
    let mut acked = false;
    let close = |code: u16, reason: String| Message::Close(Some(CloseFrame { code, reason: reason.into() }));
    loop {
        let out = tokio::select! {
            m = gql.next() => match m {
                Some(WsMessage::Text(t)) => {
                    if !acked && t.starts_with(r#"{"type":"connection_ack""#) {
                        acked = true;
                    }
                    if t.starts_with(r#"{"type":"complete""#)
                        && let Ok(v) = serde_json::from_str::<serde_json::Value>(&t) {
                            active.lock().remove(v["id"].as_str().unwrap_or_default());
                        }
                    Message::Text(t.into())
                }
                Some(WsMessage::Close(code, reason)) => {
                    let _ = sink.send(close(code, reason)).await;
                    return;
                }
                None => return,
            },
            () = &mut init_deadline, if !acked => {
                let _ = sink.send(close(4408, "Connection initialisation timeout".into())).await;
                return;
            }
            () = &mut stopped => {
                let _ = sink.send(close(1001, "the server is stopping".into())).await;
                return;
            }
        };
        if sink.send(out).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(api: &Api) -> usize {
        api.parsed.lock().unwrap().len()
    }

    #[test]
    fn parsed_queries_are_kept_bounded_and_bad_ones_left_to_the_engine() {
        let api = Api::new(crate::builder().finish());
        let q = "{ overview { verdict } }";
        let _ = api.with_document(async_graphql::Request::new(q));
        assert_eq!(cached(&api), 1);
        let _ = api.with_document(async_graphql::Request::new(q));
        assert_eq!(cached(&api), 1);
        // Not parsable: not kept, not parsed here (the engine answers with the place).
        let _ = api.with_document(async_graphql::Request::new("{ overview {"));
        assert_eq!(cached(&api), 1);
        let long = format!("{{ overview {{ verdict }} }} #{}", "x".repeat(PARSED_MAX_QUERY));
        let _ = api.with_document(async_graphql::Request::new(long));
        assert_eq!(cached(&api), 1);
        for i in 0..PARSED_ENTRIES * 2 {
            let _ = api.with_document(async_graphql::Request::new(format!("{{ a{i}: overview {{ verdict }} }}")));
            assert!(cached(&api) <= PARSED_ENTRIES);
        }
    }
}
