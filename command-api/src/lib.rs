//! Freshledger's command API for the back-office: one endpoint per command
//! of the four aggregates, JSON in and out, one error shape, idempotency
//! keys, correlation ids, and an OpenAPI 3.1 document generated from the
//! same route table that builds the router.

pub mod demo;
pub mod dto;
pub mod error;
pub mod extract;
mod handlers;
pub mod idempotency;
pub mod limit;
pub mod openapi;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use domain::clock::FixedClock;
use uuid::Uuid;
use write_side::WriteSide;

use crate::extract::{CorrelationId, CORRELATION_ID};

/// Largest request body accepted (413 beyond).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Longest an operator's or client's read of the log (`/readyz`,
/// `/api/v1/log`, `/api/v1/events`) waits for the database; past it they
/// answer with what is known to be safe.
pub const READ_BOUND: std::time::Duration = std::time::Duration::from_secs(1);

/// Everything a request handler reaches.
#[derive(Clone)]
pub struct AppState {
    /// The command handlers, the clock, the catalogue and the store.
    pub write: WriteSide,
    /// Set when the server runs on a manual clock (`serve --clock manual`):
    /// `POST /api/v1/clock` moves it. Tests and demos only.
    pub manual_clock: Option<Arc<FixedClock>>,
    /// How far back `X-Occurred-At` may date a command.
    pub backdate_window: chrono::Duration,
}

/// How far back `X-Occurred-At` may date a command unless configured.
pub const DEFAULT_BACKDATE_WINDOW_HOURS: u32 = 72;

impl AppState {
    pub fn new(write: WriteSide, manual_clock: Option<Arc<FixedClock>>) -> Self {
        AppState {
            write,
            manual_clock,
            backdate_window: chrono::Duration::hours(DEFAULT_BACKDATE_WINDOW_HOURS.into()),
        }
    }

    pub fn with_backdate_window(mut self, window: chrono::Duration) -> Self {
        self.backdate_window = window;
        self
    }
}

/// Declares every route once: the router and the OpenAPI document are both
/// built from this table, so neither can miss one.
macro_rules! api {
    ($( $method:ident $path:literal => $handler:path, body: $body:ty, resp: $resp:ty, errors: $errors:ty, codes: [$($status:literal $code:literal),*], ok: $ok:literal, tag: $tag:literal, $summary:literal; )*) => {
        fn api_routes() -> Router<AppState> {
            Router::new() $( .route($path, $method($handler)) )*
        }

        /// The status a route answers when its command ran.
        pub(crate) fn ok_status(method: &axum::http::Method, path: &str) -> Option<u16> {
            $( if method.as_str().eq_ignore_ascii_case(stringify!($method)) && path == $path {
                return Some($ok);
            } )*
            None
        }

        /// Every route of the API, for the OpenAPI document.
        pub fn route_docs() -> Vec<openapi::RouteDoc> {
            vec![ $( openapi::RouteDoc {
                method: stringify!($method),
                path: $path,
                summary: $summary,
                tag: $tag,
                ok: $ok,
                body: openapi::body_schema::<$body>(),
                body_name: openapi::short_name::<$body>(),
                response: openapi::response_of::<$resp>(),
                errors: {
                    #[allow(unused_mut)]
                    let mut codes = openapi::domain_codes::<$errors>();
                    let own: &[(u16, &'static str)] = &[$( ($status, $code) ),*];
                    codes.extend_from_slice(own);
                    codes
                },
            }, )* ]
        }
    };
}

use domain::delivery::DeliveryError;
use domain::inventory::InventoryError;
use domain::order::OrderError;
use domain::payment::PaymentError;
use domain::{Product, Supplier, Warehouse};
use dto::*;
use event_schemas::RecordedEvent;
use handlers as h;

api! {
    post "/api/v1/batches" => h::receive_batch, body: ReceiveBatch, resp: CommandResponse, errors: InventoryError, codes: [], ok: 201, tag: "inventory", "Receive a batch of stock";
    post "/api/v1/batches/{batch_id}/reservations" => h::reserve, body: Reserve, resp: CommandResponse, errors: InventoryError, codes: [], ok: 200, tag: "inventory", "Reserve stock for an order (idempotent per order)";
    post "/api/v1/batches/{batch_id}/releases" => h::release, body: Release, resp: CommandResponse, errors: InventoryError, codes: [], ok: 200, tag: "inventory", "Release an order's reservation (idempotent)";
    post "/api/v1/batches/{batch_id}/picks" => h::pick, body: Pick, resp: CommandResponse, errors: InventoryError, codes: [], ok: 200, tag: "inventory", "Pick reserved stock; any rest is released";
    post "/api/v1/batches/{batch_id}/adjustments" => h::adjust, body: AdjustStock, resp: CommandResponse, errors: InventoryError, codes: [], ok: 200, tag: "inventory", "Record a stock count";
    post "/api/v1/batches/{batch_id}/write-offs" => h::write_off, body: WriteOff, resp: CommandResponse, errors: InventoryError, codes: [], ok: 200, tag: "inventory", "Write stock off (spoiled, damaged, expired, quality)";
    post "/api/v1/batches/{batch_id}/expiry-warning" => h::expiry_warning, body: Empty, resp: CommandResponse, errors: InventoryError, codes: [], ok: 200, tag: "inventory", "Raise the batch's expiry warning (idempotent)";
    post "/api/v1/batches/{batch_id}/expiry" => h::expire, body: Empty, resp: CommandResponse, errors: InventoryError, codes: [], ok: 200, tag: "inventory", "Mark the batch expired (refused before its expiry)";
    post "/api/v1/orders" => h::place_order, body: PlaceOrder, resp: CommandResponse, errors: OrderError, codes: [], ok: 201, tag: "orders", "Place an order, priced from the catalogue";
    post "/api/v1/orders/{order_id}/allocation" => h::confirm_allocation, body: ConfirmAllocation, resp: CommandResponse, errors: OrderError, codes: [], ok: 200, tag: "orders", "Confirm the batches each line is reserved on";
    post "/api/v1/orders/{order_id}/payment" => h::mark_paid, body: MarkPaid, resp: CommandResponse, errors: OrderError, codes: [], ok: 200, tag: "orders", "Mark a card order paid";
    post "/api/v1/orders/{order_id}/pack" => h::pack, body: Pack, resp: CommandResponse, errors: OrderError, codes: [], ok: 200, tag: "orders", "Record what was packed (actual weights)";
    post "/api/v1/orders/{order_id}/ship" => h::ship, body: WithDelivery, resp: CommandResponse, errors: OrderError, codes: [], ok: 200, tag: "orders", "Ship a packed order";
    post "/api/v1/orders/{order_id}/deliver" => h::deliver, body: WithDelivery, resp: CommandResponse, errors: OrderError, codes: [], ok: 200, tag: "orders", "Mark a shipped order delivered";
    post "/api/v1/orders/{order_id}/cancel" => h::cancel, body: CancelOrder, resp: CommandResponse, errors: OrderError, codes: [], ok: 200, tag: "orders", "Cancel an order before it ships";
    post "/api/v1/orders/{order_id}/lines/{sku}/cancel" => h::cancel_line, body: CancelOrder, resp: CommandResponse, errors: OrderError, codes: [], ok: 200, tag: "orders", "Cancel one line before packing (never the last; a paid line is refunded)";
    post "/api/v1/orders/{order_id}/refunds" => h::request_refund, body: RequestRefund, resp: CommandResponse, errors: OrderError, codes: [], ok: 200, tag: "orders", "Ask for a refund of what was paid";
    post "/api/v1/payments" => h::initiate_payment, body: InitiatePayment, resp: CommandResponse, errors: PaymentError, codes: [], ok: 201, tag: "payments", "Start a payment for an order";
    post "/api/v1/payments/{payment_id}/gateway-events" => h::gateway_event, body: GatewayEvent, resp: CommandResponse, errors: PaymentError, codes: [], ok: 200, tag: "payments", "Payment gateway callback: authorized, captured, failed or voided";
    post "/api/v1/payments/{payment_id}/refunds" => h::refund_payment, body: RefundPayment, resp: CommandResponse, errors: PaymentError, codes: [], ok: 200, tag: "payments", "Refund captured or collected money";
    post "/api/v1/payments/{payment_id}/cash-collections" => h::collect_cash, body: CollectCash, resp: CommandResponse, errors: PaymentError, codes: [], ok: 200, tag: "payments", "Record cash collected at the door";
    post "/api/v1/deliveries" => h::create_delivery, body: CreateDelivery, resp: CommandResponse, errors: DeliveryError, codes: [], ok: 201, tag: "deliveries", "Create a delivery for a packed order";
    post "/api/v1/deliveries/{delivery_id}/rider" => h::assign_rider, body: WithRider, resp: CommandResponse, errors: DeliveryError, codes: [], ok: 200, tag: "deliveries", "Assign (or reassign) a rider";
    post "/api/v1/deliveries/{delivery_id}/pickup" => h::pick_up, body: WithRider, resp: CommandResponse, errors: DeliveryError, codes: [], ok: 200, tag: "deliveries", "The rider collected the parcel";
    post "/api/v1/deliveries/{delivery_id}/locations" => h::report_location, body: ReportLocation, resp: CommandResponse, errors: DeliveryError, codes: [], ok: 200, tag: "deliveries", "Report the rider's position";
    post "/api/v1/deliveries/{delivery_id}/complete" => h::complete_delivery, body: CompleteDelivery, resp: CommandResponse, errors: DeliveryError, codes: [], ok: 200, tag: "deliveries", "Hand-over with proof";
    post "/api/v1/deliveries/{delivery_id}/failed-attempts" => h::fail_attempt, body: FailAttempt, resp: CommandResponse, errors: DeliveryError, codes: [], ok: 200, tag: "deliveries", "The hand-over failed";
    put "/api/v1/products/{sku}" => h::put_product, body: ProductBody, resp: Product, errors: (), codes: [422 "invalid_product"], ok: 200, tag: "catalogue", "Create or replace a product";
    put "/api/v1/warehouses/{warehouse_id}" => h::put_warehouse, body: WarehouseBody, resp: Warehouse, errors: (), codes: [422 "invalid_warehouse"], ok: 200, tag: "catalogue", "Register (or replace) a warehouse: address and storage zones";
    get "/api/v1/warehouses" => h::list_warehouses, body: (), resp: Vec<Warehouse>, errors: (), codes: [], ok: 200, tag: "catalogue", "List the registered warehouses";
    put "/api/v1/suppliers/{supplier_id}" => h::put_supplier, body: SupplierBody, resp: Supplier, errors: (), codes: [422 "invalid_supplier"], ok: 200, tag: "catalogue", "Register (or replace) a supplier";
    get "/api/v1/suppliers" => h::list_suppliers, body: (), resp: Vec<Supplier>, errors: (), codes: [], ok: 200, tag: "catalogue", "List the registered suppliers";
    get "/api/v1/products" => h::list_products, body: (), resp: Vec<Product>, errors: (), codes: [], ok: 200, tag: "catalogue", "List the catalogue";
    get "/api/v1/log" => h::log_status, body: (), resp: LogStatus, errors: (), codes: [], ok: 200, tag: "audit", "Head position and size of the event log, and every subscriber's checkpoint";
    get "/api/v1/events" => h::events, body: (), resp: Vec<RecordedEvent>, errors: (), codes: [422 "invalid_limit"], ok: 200, tag: "audit", "The global log, in position order (?after=&limit=)";
    get "/api/v1/streams/{stream_type}/{stream_id}/events" => h::stream_events, body: (), resp: Vec<RecordedEvent>, errors: (), codes: [404 "unknown_stream_type", 404 "stream_not_found"], ok: 200, tag: "audit", "One stream's events";
    get "/api/v1/correlations/{correlation_id}/events" => h::correlation_events, body: (), resp: Vec<RecordedEvent>, errors: (), codes: [], ok: 200, tag: "audit", "Every event of one business flow";
    post "/api/v1/clock" => h::move_clock, body: ClockChange, resp: ClockNow, errors: (), codes: [404 "clock_not_controllable", 422 "clock_backwards"], ok: 200, tag: "operations", "Move the manual clock (only with serve --clock manual)";
    get "/healthz" => h::healthz, body: (), resp: openapi::PlainText, errors: (), codes: [], ok: 200, tag: "operations", "The process is alive";
    get "/readyz" => h::readyz, body: (), resp: Readiness, errors: (), codes: [503 "not_ready"], ok: 200, tag: "operations", "The process can serve: the database answered within 1 s (a stalled log is reported)";
    get "/openapi.json" => h::openapi_json, body: (), resp: openapi::Document, errors: (), codes: [], ok: 200, tag: "operations", "This document";
}

/// The whole command API (wrap the server's app in [`edge`]).
pub fn router(state: AppState) -> Router {
    api_routes()
        .fallback(|| async {
            error::ApiError::not_found("route_not_found", "no such route").into_response()
        })
        .method_not_allowed_fallback(|| async {
            error::ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route",
            )
            .into_response()
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::middleware,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// What every route of the server goes through, the command API's and
/// GraphQL's alike: request tracing, the request's correlation id (the
/// client's, or a new one, echoed on the answer), and the rate limit, if
/// any (serve the app with `into_make_service_with_connect_info` so it
/// knows each client's address). Apply it to the whole app, after merging:
/// a router merged after `layer` is not wrapped by it.
pub fn edge(app: Router, limit: Option<Arc<limit::RateLimit>>) -> Router {
    let app = match limit {
        Some(limit) => app.layer(axum::middleware::from_fn(move |req, next| {
            limit::middleware(limit.clone(), req, next)
        })),
        None => app,
    };
    app.layer(axum::middleware::from_fn(correlation))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// Settles the request's correlation id (the client's, or a new one) and
/// echoes it on the response.
async fn correlation(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(CORRELATION_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v).ok())
        .unwrap_or_else(Uuid::now_v7);
    req.extensions_mut().insert(CorrelationId(id));
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        resp.headers_mut().insert(CORRELATION_ID, v);
    }
    resp
}

pub(crate) async fn openapi_document(State(_): State<AppState>) -> Json<serde_json::Value> {
    // Built once: it depends only on the code.
    static DOCUMENT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    Json(DOCUMENT.get_or_init(openapi::document).clone())
}
