//! The storefront's and back-office's read API: GraphQL over the read
//! models, served at `/graphql` (GraphiQL in a browser, graphql-ws for
//! subscriptions). Queries can demand read-your-writes with `minPosition`:
//! the global position a command returned.

pub mod access;
mod audit;
mod graphiql;
mod http;
mod model;
mod schema;
mod selection_order;

use std::time::Duration;

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use identity::{Caller, Identity};
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
/// (graphql-ws / graphql-transport-ws), signed in by the upgrade request's
/// `Authorization` header or the `connection_init` payload's
/// `Authorization` (browsers cannot set headers on a WebSocket).
pub fn router(store: &Store, identity: Identity) -> Router {
    let schema = build_schema(store.clone());
    Router::new()
        .route("/graphql", get(http::get).post(http::post))
        .route("/graphiql/{file}", get(graphiql::asset))
        .route("/graphql/ws", get(ws))
        .with_state((schema, identity))
}

async fn ws(
    State((schema, identity)): State<(FreshledgerSchema, Identity)>,
    caller: Option<Extension<Caller>>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let from_header = match caller.map(|Extension(c)| c.0) {
        Some(Err(e)) => {
            let mut resp = (StatusCode::UNAUTHORIZED, e.to_string()).into_response();
            if let Ok(v) = axum::http::HeaderValue::from_str(&e.challenge()) {
                resp.headers_mut()
                    .insert(axum::http::header::WWW_AUTHENTICATE, v);
            }
            return resp;
        }
        Some(Ok(p)) => p,
        None => None,
    };
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| async move {
            GraphQLWebSocket::new(socket, schema, protocol)
                .on_connection_init(move |payload| async move {
                    let header = payload
                        .get("Authorization")
                        .or_else(|| payload.get("authorization"))
                        .and_then(|v| v.as_str())
                        .map(str::to_string);
                    let who = match header {
                        Some(h) => identity
                            .authenticate(Some(&h))
                            .await
                            .map_err(|e| async_graphql::Error::new(e.to_string()))?,
                        None => from_header,
                    };
                    let mut data = async_graphql::Data::default();
                    data.insert(access::Viewer(who));
                    Ok(data)
                })
                .serve()
                .await
        })
}
