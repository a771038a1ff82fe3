//! The storefront's and back-office's read API: GraphQL over the read
//! models, served at `/graphql` (GraphiQL in a browser, graphql-ws for
//! subscriptions). Queries can demand read-your-writes with `minPosition`:
//! the global position a command returned.

mod graphiql;
mod http;
mod model;
mod schema;
mod selection_order;

use std::time::Duration;

use async_graphql_axum::GraphQLSubscription;
use axum::routing::get;
use axum::Router;
use store::Store;

pub use http::{MAX_BATCH, MAX_BODY_BYTES};
pub use schema::{build_schema, sdl, FreshledgerSchema};

/// Query limits: deep or expensive queries are refused before they run.
pub const MAX_DEPTH: usize = 10;
pub const MAX_COMPLEXITY: usize = 1_000;
/// Largest page any connection returns.
pub const MAX_PAGE: usize = 100;
/// Longest a query waits for read models to reach its `minPosition`.
pub const READ_YOUR_WRITES_TIMEOUT: Duration = Duration::from_secs(5);

/// `/graphql`: GraphQL over HTTP ([`http`]: POST, or GET with a query;
/// GraphiQL for a browser's GET); `/graphql/ws` carries subscriptions
/// (graphql-ws / graphql-transport-ws).
pub fn router(store: &Store) -> Router {
    let schema = build_schema(store.clone());
    Router::new()
        .route("/graphql", get(http::get).post(http::post))
        .route("/graphiql/{file}", get(graphiql::asset))
        .route_service("/graphql/ws", GraphQLSubscription::new(schema.clone()))
        .with_state(schema)
}
