//! Freshledger's command API for the back-office: one endpoint per command
//! of the four aggregates, JSON in and out, one error shape, idempotency
//! keys, correlation ids, and an OpenAPI 3.1 document generated from the
//! same route table that builds the router.

pub mod accounts;
mod auditors;
pub mod auth;
pub mod demo;
pub mod deprecation;
pub mod dto;
pub mod error;
pub mod extract;
mod handlers;
pub mod idempotency;
pub mod integrations;
pub mod limit;
pub mod openapi;
mod owner;

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
    /// Accounts, sessions and tokens.
    pub identity: identity::Identity,
    /// Optional outside integrations, shown in `/readyz` and `/api/v1/log`.
    pub integrations: Vec<Arc<dyn integrations::Integration>>,
}

/// How far back `X-Occurred-At` may date a command unless configured.
pub const DEFAULT_BACKDATE_WINDOW_HOURS: u32 = 72;

impl AppState {
    pub fn new(
        write: WriteSide,
        identity: identity::Identity,
        manual_clock: Option<Arc<FixedClock>>,
    ) -> Self {
        AppState {
            write,
            identity,
            manual_clock,
            backdate_window: chrono::Duration::hours(DEFAULT_BACKDATE_WINDOW_HOURS.into()),
            integrations: Vec::new(),
        }
    }

    /// Reports `integration` in `/readyz` and `/api/v1/log`.
    pub fn with_integration(mut self, integration: Arc<dyn integrations::Integration>) -> Self {
        self.integrations.push(integration);
        self
    }

    pub fn with_backdate_window(mut self, window: chrono::Duration) -> Self {
        self.backdate_window = window;
        self
    }
}

/// Declares every route once: the router and the OpenAPI document are both
/// built from this table, so neither can miss one.
macro_rules! api {
    ($( $method:ident $path:literal => $handler:path, access: $access:expr, body: $body:ty, resp: $resp:ty, errors: $errors:ty, codes: [$($status:literal $code:literal),*], ok: $ok:literal, tag: $tag:literal, $summary:literal; )*) => {
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

        /// Who may use a route.
        pub fn access_of(method: &axum::http::Method, path: &str) -> Option<identity::Access> {
            $( if method.as_str().eq_ignore_ascii_case(stringify!($method)) && path == $path {
                return Some($access);
            } )*
            None
        }

        /// Every route of the API, for the OpenAPI document.
        pub fn route_docs() -> Vec<openapi::RouteDoc> {
            vec![ $( openapi::RouteDoc {
                method: stringify!($method),
                path: $path,
                summary: $summary,
                access: $access,
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
use identity::roles::*;
use identity::IdentityError;

api! {
    post "/api/v1/batches" => h::receive_batch, access: STAFF, body: ReceiveBatch, resp: CommandResponse, errors: InventoryError, codes: [], ok: 201, tag: "inventory", "Receive a batch of stock";
    post "/api/v1/batches/{batch_id}/reservations" => h::reserve, access: STAFF, body: Reserve, resp: CommandResponse, errors: InventoryError, codes: [], ok: 200, tag: "inventory", "Reserve stock for an order (idempotent per order)";
    post "/api/v1/batches/{batch_id}/releases" => h::release, access: STAFF, body: Release, resp: CommandResponse, errors: InventoryError, codes: [], ok: 200, tag: "inventory", "Release an order's reservation (idempotent)";
    post "/api/v1/batches/{batch_id}/picks" => h::pick, access: STAFF, body: Pick, resp: CommandResponse, errors: InventoryError, codes: [], ok: 200, tag: "inventory", "Pick reserved stock; any rest is released";
    post "/api/v1/batches/{batch_id}/adjustments" => h::adjust, access: STAFF, body: AdjustStock, resp: CommandResponse, errors: InventoryError, codes: [], ok: 200, tag: "inventory", "Record a stock count";
    post "/api/v1/batches/{batch_id}/write-offs" => h::write_off, access: STAFF, body: WriteOff, resp: CommandResponse, errors: InventoryError, codes: [], ok: 200, tag: "inventory", "Write stock off (spoiled, damaged, expired, quality)";
    post "/api/v1/batches/{batch_id}/expiry-warning" => h::expiry_warning, access: STAFF, body: Empty, resp: CommandResponse, errors: InventoryError, codes: [], ok: 200, tag: "inventory", "Raise the batch's expiry warning (idempotent)";
    post "/api/v1/batches/{batch_id}/expiry" => h::expire, access: STAFF, body: Empty, resp: CommandResponse, errors: InventoryError, codes: [], ok: 200, tag: "inventory", "Mark the batch expired (refused before its expiry)";
    post "/api/v1/orders" => h::place_order, access: CUSTOMER, body: PlaceOrder, resp: CommandResponse, errors: OrderError, codes: [403 "email_unverified"], ok: 201, tag: "orders", "Place an order, priced from the catalogue";
    post "/api/v1/orders/{order_id}/allocation" => h::confirm_allocation, access: STAFF, body: ConfirmAllocation, resp: CommandResponse, errors: OrderError, codes: [], ok: 200, tag: "orders", "Confirm the batches each line is reserved on";
    post "/api/v1/orders/{order_id}/payment" => h::mark_paid, access: ADMIN, body: MarkPaid, resp: CommandResponse, errors: OrderError, codes: [], ok: 200, tag: "orders", "Mark a card order paid";
    post "/api/v1/orders/{order_id}/pack" => h::pack, access: STAFF, body: Pack, resp: CommandResponse, errors: OrderError, codes: [], ok: 200, tag: "orders", "Record what was packed (actual weights)";
    post "/api/v1/orders/{order_id}/ship" => h::ship, access: STAFF, body: WithDelivery, resp: CommandResponse, errors: OrderError, codes: [], ok: 200, tag: "orders", "Ship a packed order";
    post "/api/v1/orders/{order_id}/deliver" => h::deliver, access: STAFF, body: WithDelivery, resp: CommandResponse, errors: OrderError, codes: [], ok: 200, tag: "orders", "Mark a shipped order delivered";
    post "/api/v1/orders/{order_id}/cancel" => h::cancel, access: CUSTOMER_STAFF, body: CancelOrder, resp: CommandResponse, errors: OrderError, codes: [], ok: 200, tag: "orders", "Cancel an order before it ships";
    post "/api/v1/orders/{order_id}/lines/{sku}/cancel" => h::cancel_line, access: CUSTOMER_STAFF, body: CancelOrder, resp: CommandResponse, errors: OrderError, codes: [], ok: 200, tag: "orders", "Cancel one line before packing (never the last; a paid line is refunded)";
    post "/api/v1/orders/{order_id}/refunds" => h::request_refund, access: CUSTOMER, body: RequestRefund, resp: CommandResponse, errors: OrderError, codes: [], ok: 200, tag: "orders", "Ask for a refund of what was paid";
    post "/api/v1/payments" => h::initiate_payment, access: CUSTOMER, body: InitiatePayment, resp: CommandResponse, errors: PaymentError, codes: [], ok: 201, tag: "payments", "Start a payment for an order";
    post "/api/v1/payments/{payment_id}/gateway-events" => h::gateway_event, access: ADMIN, body: GatewayEvent, resp: CommandResponse, errors: PaymentError, codes: [], ok: 200, tag: "payments", "Payment gateway callback: authorized, captured, failed or voided";
    post "/api/v1/payments/{payment_id}/refunds" => h::refund_payment, access: ADMIN, body: RefundPayment, resp: CommandResponse, errors: PaymentError, codes: [], ok: 200, tag: "payments", "Refund captured or collected money";
    post "/api/v1/payments/{payment_id}/cash-collections" => h::collect_cash, access: RIDER, body: CollectCash, resp: CommandResponse, errors: PaymentError, codes: [], ok: 200, tag: "payments", "Record cash collected at the door";
    post "/api/v1/deliveries" => h::create_delivery, access: STAFF, body: CreateDelivery, resp: CommandResponse, errors: DeliveryError, codes: [], ok: 201, tag: "deliveries", "Create a delivery for a packed order";
    post "/api/v1/deliveries/{delivery_id}/rider" => h::assign_rider, access: STAFF, body: WithRider, resp: CommandResponse, errors: DeliveryError, codes: [], ok: 200, tag: "deliveries", "Assign (or reassign) a rider";
    post "/api/v1/deliveries/{delivery_id}/pickup" => h::pick_up, access: RIDER, body: WithRider, resp: CommandResponse, errors: DeliveryError, codes: [], ok: 200, tag: "deliveries", "The rider collected the parcel";
    post "/api/v1/deliveries/{delivery_id}/locations" => h::report_location, access: RIDER, body: ReportLocation, resp: CommandResponse, errors: DeliveryError, codes: [], ok: 200, tag: "deliveries", "Report the rider's position";
    post "/api/v1/deliveries/{delivery_id}/complete" => h::complete_delivery, access: RIDER, body: CompleteDelivery, resp: CommandResponse, errors: DeliveryError, codes: [], ok: 200, tag: "deliveries", "Hand-over with proof";
    post "/api/v1/deliveries/{delivery_id}/failed-attempts" => h::fail_attempt, access: RIDER, body: FailAttempt, resp: CommandResponse, errors: DeliveryError, codes: [], ok: 200, tag: "deliveries", "The hand-over failed";
    put "/api/v1/products/{sku}" => h::put_product, access: ADMIN, body: ProductBody, resp: Product, errors: (), codes: [422 "invalid_product"], ok: 200, tag: "catalogue", "Create or replace a product";
    put "/api/v1/warehouses/{warehouse_id}" => h::put_warehouse, access: ADMIN, body: WarehouseBody, resp: Warehouse, errors: (), codes: [422 "invalid_warehouse"], ok: 200, tag: "catalogue", "Register (or replace) a warehouse: address and storage zones";
    get "/api/v1/warehouses" => h::list_warehouses, access: STAFF, body: (), resp: Vec<Warehouse>, errors: (), codes: [], ok: 200, tag: "catalogue", "List the registered warehouses";
    put "/api/v1/suppliers/{supplier_id}" => h::put_supplier, access: ADMIN, body: SupplierBody, resp: Supplier, errors: (), codes: [422 "invalid_supplier"], ok: 200, tag: "catalogue", "Register (or replace) a supplier";
    get "/api/v1/suppliers" => h::list_suppliers, access: STAFF, body: (), resp: Vec<Supplier>, errors: (), codes: [], ok: 200, tag: "catalogue", "List the registered suppliers";
    get "/api/v1/products" => h::list_products, access: PUBLIC, body: (), resp: Vec<Product>, errors: (), codes: [], ok: 200, tag: "catalogue", "List the catalogue";
    get "/api/v1/log" => h::log_status, access: ADMIN, body: (), resp: LogStatus, errors: (), codes: [], ok: 200, tag: "audit", "Head position and size of the event log, and every subscriber's checkpoint";
    get "/api/v1/events" => h::events, access: ADMIN, body: (), resp: Vec<RecordedEvent>, errors: (), codes: [422 "invalid_limit"], ok: 200, tag: "audit", "The global log, in position order (?after=&limit=)";
    get "/api/v1/streams/{stream_type}/{stream_id}/events" => h::stream_events, access: ADMIN, body: (), resp: Vec<RecordedEvent>, errors: (), codes: [404 "unknown_stream_type", 404 "stream_not_found"], ok: 200, tag: "audit", "One stream's events";
    get "/api/v1/correlations/{correlation_id}/events" => h::correlation_events, access: ADMIN, body: (), resp: Vec<RecordedEvent>, errors: (), codes: [], ok: 200, tag: "audit", "Every event of one business flow";
    get "/api/v1/audit/events" => auditors::events, access: ADMIN, body: (), resp: auditors::AuditEventPage, errors: (), codes: [400 "invalid_query", 422 "invalid_limit", 422 "invalid_range"], ok: 200, tag: "audit", "Events by actor, occurred_at or recorded_at range, event type, stream or correlation, paginated (?after=&limit=)";
    get "/api/v1/audit/streams/{stream_type}/{stream_id}/state" => auditors::stream_state, access: ADMIN, body: (), resp: auditors::StreamStateView, errors: (), codes: [400 "invalid_query", 404 "unknown_stream_type", 404 "stream_not_found"], ok: 200, tag: "audit", "A stream's state as of a position (?position=) or a moment (?at=), replayed from the log";
    get "/api/v1/audit/recall" => auditors::recall, access: ADMIN, body: (), resp: audit::queries::Recall, errors: (), codes: [400 "invalid_query", 404 "batch_not_found", 422 "invalid_recall", 422 "invalid_range", 422 "invalid_format"], ok: 200, tag: "audit", "Lot recall: every order line, delivery and customer a batch (?batch_id=) or a supplier's batches (?supplier_id=&from=&to=) reached; ?format=csv for CSV";
    get "/api/v1/audit/checkpoints" => auditors::checkpoints, access: ADMIN, body: (), resp: Vec<audit::Checkpoint>, errors: (), codes: [400 "invalid_query"], ok: 200, tag: "audit", "The audit chain's signed checkpoints (?after=)";
    post "/api/v1/clock" => h::move_clock, access: ADMIN, body: ClockChange, resp: ClockNow, errors: (), codes: [404 "clock_not_controllable", 422 "clock_backwards"], ok: 200, tag: "operations", "Move the manual clock (only with serve --clock manual)";
    post "/api/v1/auth/sign-up" => accounts::sign_up, access: PUBLIC, body: identity::SignUp, resp: identity::AccountView, errors: IdentityError, codes: [], ok: 201, tag: "identity", "A customer signs up (a verification message goes to the address)";
    post "/api/v1/auth/login" => accounts::login, access: PUBLIC, body: accounts::Login, resp: identity::LoginOutcome, errors: IdentityError, codes: [], ok: 200, tag: "identity", "Sign in with email and password: tokens, or an MFA challenge";
    post "/api/v1/auth/mfa/verification" => accounts::verify_mfa, access: PUBLIC, body: accounts::MfaVerification, resp: identity::Tokens, errors: IdentityError, codes: [], ok: 200, tag: "identity", "Finish a sign-in with a TOTP or recovery code";
    post "/api/v1/auth/refresh" => accounts::refresh, access: PUBLIC, body: accounts::Refresh, resp: identity::Tokens, errors: IdentityError, codes: [], ok: 200, tag: "identity", "Trade a refresh token for new tokens (each refresh token works once)";
    post "/api/v1/auth/logout" => accounts::logout, access: SIGNED, body: (), resp: accounts::Done, errors: (), codes: [], ok: 200, tag: "identity", "Sign out: the session's tokens stop working";
    get "/api/v1/auth/me" => accounts::me, access: SIGNED, body: (), resp: identity::AccountView, errors: IdentityError, codes: [], ok: 200, tag: "identity", "The signed-in account";
    post "/api/v1/auth/email-verification" => accounts::verify_email, access: PUBLIC, body: accounts::TokenBody, resp: identity::AccountView, errors: IdentityError, codes: [], ok: 200, tag: "identity", "Confirm an email address with the token its message carried";
    post "/api/v1/auth/password-reset" => accounts::request_reset, access: PUBLIC, body: accounts::ResetRequest, resp: accounts::Done, errors: (), codes: [422 "invalid_email"], ok: 202, tag: "identity", "Ask for a password reset message (the answer is the same whether the account exists or not)";
    post "/api/v1/auth/password-reset/confirmation" => accounts::confirm_reset, access: PUBLIC, body: accounts::ResetConfirmation, resp: accounts::Done, errors: IdentityError, codes: [], ok: 200, tag: "identity", "Set a new password with a reset token (every session ends)";
    post "/api/v1/auth/password" => accounts::change_password, access: SIGNED, body: accounts::PasswordChange, resp: identity::Tokens, errors: IdentityError, codes: [], ok: 200, tag: "identity", "Change your password (every other session ends)";
    post "/api/v1/auth/mfa/enrolment" => accounts::enrol_mfa, access: SIGNED, body: Empty, resp: identity::MfaEnrolment, errors: IdentityError, codes: [], ok: 200, tag: "identity", "Staff: start enrolling a TOTP authenticator";
    post "/api/v1/auth/mfa/confirmation" => accounts::confirm_mfa, access: SIGNED, body: accounts::MfaConfirmation, resp: identity::MfaEnabled, errors: IdentityError, codes: [], ok: 200, tag: "identity", "Staff: confirm the authenticator with a code; recovery codes and an MFA session come back";
    post "/api/v1/accounts" => accounts::create_account, access: ADMIN, body: identity::NewAccount, resp: identity::AccountView, errors: IdentityError, codes: [422 "unknown_warehouse"], ok: 201, tag: "identity", "Create an account of any role (staff accounts)";
    get "/api/v1/accounts" => accounts::list_accounts, access: ADMIN, body: (), resp: Vec<identity::AccountView>, errors: (), codes: [], ok: 200, tag: "identity", "Every account";
    post "/api/v1/accounts/{account_id}/disable" => accounts::disable_account, access: ADMIN, body: Empty, resp: identity::AccountView, errors: IdentityError, codes: [], ok: 200, tag: "identity", "Disable an account: its sessions end at once";
    post "/api/v1/accounts/{account_id}/enable" => accounts::enable_account, access: ADMIN, body: Empty, resp: identity::AccountView, errors: IdentityError, codes: [], ok: 200, tag: "identity", "Enable a disabled account again (and lift a lockout)";
    post "/api/v1/auth/keys/rotation" => accounts::rotate_keys, access: ADMIN, body: Empty, resp: accounts::Rotated, errors: (), codes: [], ok: 200, tag: "identity", "Sign access tokens with a new key; the old one stays published until its tokens expire";
    get "/.well-known/jwks.json" => accounts::jwks, access: PUBLIC, body: (), resp: accounts::Jwks, errors: (), codes: [], ok: 200, tag: "identity", "The public keys that sign access tokens (JWKS)";
    get "/healthz" => h::healthz, access: PUBLIC, body: (), resp: openapi::PlainText, errors: (), codes: [], ok: 200, tag: "operations", "The process is alive";
    get "/readyz" => h::readyz, access: PUBLIC, body: (), resp: Readiness, errors: (), codes: [503 "not_ready"], ok: 200, tag: "operations", "The process can serve: the database answered within 1 s (a stalled log is reported)";
    get "/openapi.json" => h::openapi_json, access: PUBLIC, body: (), resp: openapi::Document, errors: (), codes: [], ok: 200, tag: "operations", "This document";
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
        .layer(axum::middleware::from_fn(auth::authorize))
        .layer(axum::middleware::from_fn(|req, next| {
            deprecation::middleware(deprecation::DEPRECATED, req, next)
        }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// What every route of the server goes through, the command API's and
/// GraphQL's alike: request tracing, the request's correlation id (the
/// client's, or a new one, echoed on the answer), and the rate limit, if
/// any (serve the app with `into_make_service_with_connect_info` so it
/// knows each client's address). Apply it to the whole app, after merging:
/// a router merged after `layer` is not wrapped by it.
pub fn edge(
    app: Router,
    identity: identity::Identity,
    limit: Option<Arc<limit::RateLimit>>,
) -> Router {
    let app = match limit {
        Some(limit) => app.layer(axum::middleware::from_fn(move |req, next| {
            limit::middleware(limit.clone(), req, next)
        })),
        None => app,
    };
    app.layer(axum::middleware::from_fn(move |req, next| {
        auth::authenticate(identity.clone(), req, next)
    }))
    .layer(axum::middleware::from_fn(observe))
}

/// Settles the request's correlation id (the client's, or a new one) and
/// echoes it on the response; runs the request in a span that continues
/// the caller's W3C trace context (`traceparent`), with the correlation and
/// trace ids for the logs; counts it and its latency by route and status.
async fn observe(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(CORRELATION_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v).ok())
        .unwrap_or_else(Uuid::now_v7);
    req.extensions_mut().insert(CorrelationId(id));
    // The route's template (bounded), never the path with its ids.
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let method = req.method().clone();
    let span = tracing::info_span!(
        "request",
        method = %method,
        route = %route,
        correlation_id = %id,
        trace_id = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    let parent = req
        .headers()
        .get(telemetry::TRACEPARENT)
        .and_then(|v| v.to_str().ok());
    telemetry::follow(&span, parent);
    let started = std::time::Instant::now();
    let mut resp = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    let status = resp.status().as_u16();
    span.record("status", status);
    let elapsed = started.elapsed().as_secs_f64();
    metrics::counter!("http_requests_total", "method" => method.to_string(), "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method.to_string(), "route" => route)
        .record(elapsed);
    tracing::debug!(parent: &span, status, elapsed_ms = elapsed * 1e3, "answered");
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
