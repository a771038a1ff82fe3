//! The storefront's and back-office's read API: GraphQL over the read
//! models, served at `/graphql` (GraphiQL in a browser, graphql-ws for
//! subscriptions). Queries can demand read-your-writes with `minPosition`:
//! the global position a command returned.

mod model;
mod schema;

use std::time::Duration;

use async_graphql::http::GraphiQLSource;
use async_graphql_axum::{GraphQL, GraphQLSubscription};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use store::Store;

pub use schema::{build_schema, sdl, FreshledgerSchema};

/// Query limits: deep or expensive queries are refused before they run.
pub const MAX_DEPTH: usize = 10;
pub const MAX_COMPLEXITY: usize = 1_000;
/// Largest page any connection returns.
pub const MAX_PAGE: usize = 100;
/// Longest a query waits for read models to reach its `minPosition`.
pub const READ_YOUR_WRITES_TIMEOUT: Duration = Duration::from_secs(5);

/// `/graphql`: GET serves GraphiQL, POST runs queries; `/graphql/ws`
/// carries subscriptions (graphql-ws / graphql-transport-ws).
pub fn router(store: &Store) -> Router {
    let schema = build_schema(store.clone());
    Router::new()
        .route(
            "/graphql",
            get(graphiql).post_service(GraphQL::new(schema.clone())),
        )
        .route_service("/graphql/ws", GraphQLSubscription::new(schema))
}

async fn graphiql() -> impl IntoResponse {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .finish(),
    )
}
