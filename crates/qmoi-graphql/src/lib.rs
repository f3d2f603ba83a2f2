//! # qmoi-graphql
//!
//! The GraphQL API (docs/API.md, "GraphQL"), served by the supervisor on the dashboard's
//! listener: `POST /graphql` for queries and mutations, `GET /graphql/ws` for
//! subscriptions. Over the same things as the REST and gRPC APIs — the dashboard's
//! [`Hub`](qmoi_dashboard::hub::Hub) (cached overview, reports, firing alerts, the event
//! broadcast), its history store, the shared admin actions — and behind the same host
//! check, rate limit and authentication (the routes are mounted into the dashboard's
//! router). The schema is checked in at `docs/schema.graphql`.
//!
//! - [`schema`]: the query, mutation and subscription roots; [`types`]: the objects.
//! - [`transport`]: HTTP and WebSocket, with their bounds.
//!
//! Bounds: a query at most [`MAX_DEPTH`] fields deep and [`MAX_COMPLEXITY`] fields in all
//! (the full introspection query fits), a body of at most [`MAX_BODY_BYTES`], one
//! operation per request, [`MAX_SUBSCRIPTIONS_PER_SOCKET`] operations at once per socket.

pub mod schema;
pub mod transport;
pub mod types;

use async_graphql::Schema;
use axum::routing::{get, post};
use qmoi_dashboard::Shared;
use schema::{MutationRoot, QueryRoot, SubscriptionRoot};

pub type QmoiSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Fields nested at most this deep (introspection's type references included).
pub const MAX_DEPTH: usize = 16;
/// Fields in one operation at most.
pub const MAX_COMPLEXITY: usize = 1000;
/// A request body or WebSocket message at most this large.
pub const MAX_BODY_BYTES: usize = 64 << 10;
/// Subscriptions (operations) running at once on one WebSocket.
pub const MAX_SUBSCRIPTIONS_PER_SOCKET: usize = 100;

fn builder() -> async_graphql::SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_recursive_depth(MAX_DEPTH * 2)
        .limit_directives(32)
}

/// The schema over `shared`.
pub fn schema(shared: Shared) -> QmoiSchema {
    builder().data(shared).finish()
}

/// The schema in SDL, as `docs/schema.graphql` holds it.
pub fn sdl() -> String {
    builder().finish().sdl()
}

/// The routes to mount into the dashboard ([`qmoi_dashboard::Dashboard::mount`]).
pub fn routes(shared: Shared) -> axum::Router {
    axum::Router::new()
        .route("/graphql", post(transport::post))
        .route("/graphql/ws", get(transport::ws))
        .with_state(transport::Api::new(schema(shared)))
}

#[cfg(test)]
mod tests {
    /// The schema served is the one checked in. After a change of the schema:
    /// `QMOI_UPDATE_SCHEMA=1 cargo test -p qmoi-graphql` rewrites docs/schema.graphql.
    #[test]
    fn the_checked_in_schema_is_the_served_one() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/schema.graphql");
        let served = super::sdl();
        if std::env::var_os("QMOI_UPDATE_SCHEMA").is_some() {
            std::fs::write(&path, &served).unwrap();
        }
        let file = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            file == served,
            "docs/schema.graphql differs from the served schema; if the change is meant, run \
             QMOI_UPDATE_SCHEMA=1 cargo test -p qmoi-graphql and commit the file"
        );
    }
}
