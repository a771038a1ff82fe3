//! One handler per route: parse, build the command, execute, answer.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cqrs_es::Aggregate;
use domain::clock::Clock;
use domain::delivery::DeliveryCommand as DC;
use domain::inventory::InventoryBatchCommand as IC;
use domain::order::OrderCommand as OC;
use domain::payment::PaymentCommand as PC;
use domain::registry::Contact;
use domain::values::*;
use domain::{DomainError, Product, Supplier, Warehouse};
use store::Aggregates;
use uuid::Uuid;

use crate::dto::*;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, RequestContext};
use crate::owner;
use crate::AppState;

async fn run<A>(
    aggregates: &Aggregates<A>,
    id: String,
    command: A::Command,
    ctx: &RequestContext,
    created: bool,
) -> Result<Response, ApiError>
where
    A: Aggregate + Clone,
    A::Command: Clone,
    A::Error: DomainError + serde::Serialize,
{
    let appended = aggregates.execute(&id, command, &ctx.metadata()).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(CommandResponse {
            stream_type: A::TYPE.to_string(),
            stream_id: id,
            stream_version: appended.stream_version,
            events_appended: appended.events,
            position: appended.last_position,
        }),
    )
        .into_response())
}

// --- inventory ---------------------------------------------------------------

pub async fn receive_batch(
    State(s): State<AppState>,
    ctx: RequestContext,
    ApiJson(b): ApiJson<ReceiveBatch>,
) -> Result<Response, ApiError> {
    owner::warehouse(&ctx, &b.warehouse_id)?;
    let id = b.batch_id.unwrap_or_default();
    let cmd = IC::ReceiveBatch {
        batch_id: id,
        sku: b.sku,
        warehouse_id: b.warehouse_id,
        supplier_id: b.supplier_id,
        quantity: b.quantity,
        expires_at: b.expires_at,
        procurement_cost: b.procurement_cost,
        cold_chain: b.cold_chain,
    };
    run(&s.write.batches, id.to_string(), cmd, &ctx, true).await
}

pub async fn reserve(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<BatchId>,
    ctx: RequestContext,
    ApiJson(b): ApiJson<Reserve>,
) -> Result<Response, ApiError> {
    owner::batch(&s, &ctx, id).await?;
    let cmd = IC::ReserveStock {
        order_id: b.order_id,
        quantity: b.quantity,
    };
    run(&s.write.batches, id.to_string(), cmd, &ctx, false).await
}

pub async fn release(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<BatchId>,
    ctx: RequestContext,
    ApiJson(b): ApiJson<Release>,
) -> Result<Response, ApiError> {
    owner::batch(&s, &ctx, id).await?;
    let cmd = IC::ReleaseReservation {
        order_id: b.order_id,
        reason: b.reason,
    };
    run(&s.write.batches, id.to_string(), cmd, &ctx, false).await
}

pub async fn pick(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<BatchId>,
    ctx: RequestContext,
    ApiJson(b): ApiJson<Pick>,
) -> Result<Response, ApiError> {
    owner::batch(&s, &ctx, id).await?;
    let cmd = IC::PickStock {
        order_id: b.order_id,
        quantity: b.quantity,
    };
    run(&s.write.batches, id.to_string(), cmd, &ctx, false).await
}

pub async fn adjust(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<BatchId>,
    ctx: RequestContext,
    ApiJson(b): ApiJson<AdjustStock>,
) -> Result<Response, ApiError> {
    owner::batch(&s, &ctx, id).await?;
    let cmd = IC::AdjustStock {
        counted_on_hand: b.counted_on_hand,
        note: b.note,
    };
    run(&s.write.batches, id.to_string(), cmd, &ctx, false).await
}

pub async fn write_off(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<BatchId>,
    ctx: RequestContext,
    ApiJson(b): ApiJson<WriteOff>,
) -> Result<Response, ApiError> {
    owner::batch(&s, &ctx, id).await?;
    let cmd = IC::WriteOffStock {
        quantity: b.quantity,
        reason: b.reason,
        note: b.note,
    };
    run(&s.write.batches, id.to_string(), cmd, &ctx, false).await
}

pub async fn expiry_warning(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<BatchId>,
    ctx: RequestContext,
    ApiJson(_): ApiJson<Empty>,
) -> Result<Response, ApiError> {
    owner::batch(&s, &ctx, id).await?;
    run(
        &s.write.batches,
        id.to_string(),
        IC::RaiseExpiryWarning,
        &ctx,
        false,
    )
    .await
}

pub async fn expire(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<BatchId>,
    ctx: RequestContext,
    ApiJson(_): ApiJson<Empty>,
) -> Result<Response, ApiError> {
    owner::batch(&s, &ctx, id).await?;
    run(
        &s.write.batches,
        id.to_string(),
        IC::MarkExpired,
        &ctx,
        false,
    )
    .await
}

// --- orders --------------------------------------------------------------------

pub async fn place_order(
    State(s): State<AppState>,
    ctx: RequestContext,
    ApiJson(b): ApiJson<PlaceOrder>,
) -> Result<Response, ApiError> {
    owner::customer(&ctx, &b.customer_id)?;
    let id = b.order_id.unwrap_or_default();
    let cmd = OC::PlaceOrder {
        order_id: id,
        customer_id: b.customer_id,
        warehouse_id: b.warehouse_id.clone(),
        lines: b.line_requests(),
        delivery_slot: b.delivery_slot,
        delivery_address: b.delivery_address,
        payment_method: b.payment_method,
    };
    run(&s.write.orders, id.to_string(), cmd, &ctx, true).await
}

pub async fn confirm_allocation(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<OrderId>,
    ctx: RequestContext,
    ApiJson(b): ApiJson<ConfirmAllocation>,
) -> Result<Response, ApiError> {
    owner::order(&s, &ctx, id).await?;
    let cmd = OC::ConfirmAllocation {
        allocations: b.allocations,
    };
    run(&s.write.orders, id.to_string(), cmd, &ctx, false).await
}

pub async fn mark_paid(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<OrderId>,
    ctx: RequestContext,
    ApiJson(b): ApiJson<MarkPaid>,
) -> Result<Response, ApiError> {
    owner::order(&s, &ctx, id).await?;
    let cmd = OC::MarkPaid {
        payment_id: b.payment_id,
        amount: b.amount,
    };
    run(&s.write.orders, id.to_string(), cmd, &ctx, false).await
}

pub async fn pack(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<OrderId>,
    ctx: RequestContext,
    ApiJson(b): ApiJson<Pack>,
) -> Result<Response, ApiError> {
    owner::order(&s, &ctx, id).await?;
    let cmd = OC::PackOrder {
        lines: b.requests(),
    };
    run(&s.write.orders, id.to_string(), cmd, &ctx, false).await
}

pub async fn ship(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<OrderId>,
    ctx: RequestContext,
    ApiJson(b): ApiJson<WithDelivery>,
) -> Result<Response, ApiError> {
    owner::order(&s, &ctx, id).await?;
    let cmd = OC::ShipOrder {
        delivery_id: b.delivery_id,
    };
    run(&s.write.orders, id.to_string(), cmd, &ctx, false).await
}

pub async fn deliver(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<OrderId>,
    ctx: RequestContext,
    ApiJson(b): ApiJson<WithDelivery>,
) -> Result<Response, ApiError> {
    owner::order(&s, &ctx, id).await?;
    let cmd = OC::MarkDelivered {
        delivery_id: b.delivery_id,
    };
    run(&s.write.orders, id.to_string(), cmd, &ctx, false).await
}

pub async fn cancel(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<OrderId>,
    ctx: RequestContext,
    ApiJson(b): ApiJson<CancelOrder>,
) -> Result<Response, ApiError> {
    owner::order(&s, &ctx, id).await?;
    let cmd = OC::CancelOrder {
        reason: b.reason,
        note: b.note,
    };
    run(&s.write.orders, id.to_string(), cmd, &ctx, false).await
}

pub async fn cancel_line(
    State(s): State<AppState>,
    ApiPath((id, sku)): ApiPath<(OrderId, Sku)>,
    ctx: RequestContext,
    ApiJson(b): ApiJson<CancelOrder>,
) -> Result<Response, ApiError> {
    owner::order(&s, &ctx, id).await?;
    let cmd = OC::CancelLine {
        sku,
        reason: b.reason,
        note: b.note,
    };
    run(&s.write.orders, id.to_string(), cmd, &ctx, false).await
}

pub async fn request_refund(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<OrderId>,
    ctx: RequestContext,
    ApiJson(b): ApiJson<RequestRefund>,
) -> Result<Response, ApiError> {
    owner::order(&s, &ctx, id).await?;
    let cmd = OC::RequestRefund {
        amount: b.amount,
        reason: b.reason,
    };
    run(&s.write.orders, id.to_string(), cmd, &ctx, false).await
}

// --- payments ------------------------------------------------------------------

pub async fn initiate_payment(
    State(s): State<AppState>,
    ctx: RequestContext,
    ApiJson(b): ApiJson<InitiatePayment>,
) -> Result<Response, ApiError> {
    owner::order(&s, &ctx, b.order_id).await?;
    let id = b.payment_id.unwrap_or_default();
    let cmd = PC::InitiatePayment {
        payment_id: id,
        order_id: b.order_id,
        method: b.method,
        gateway: b.gateway,
        amount_due: b.amount_due,
    };
    run(&s.write.payments, id.to_string(), cmd, &ctx, true).await
}

pub async fn gateway_event(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<PaymentId>,
    ctx: RequestContext,
    ApiJson(b): ApiJson<GatewayEvent>,
) -> Result<Response, ApiError> {
    owner::payment(&s, &ctx, id).await?;
    let cmd = match b {
        GatewayEvent::Authorized {
            amount,
            gateway_reference,
        } => PC::AuthorizePayment {
            amount,
            gateway_reference,
        },
        GatewayEvent::Captured {
            amount,
            gateway_reference,
        } => PC::CapturePayment {
            amount,
            gateway_reference,
        },
        GatewayEvent::Failed { code, message } => PC::FailPayment { code, message },
        GatewayEvent::Voided { gateway_reference } => PC::VoidPayment { gateway_reference },
    };
    run(&s.write.payments, id.to_string(), cmd, &ctx, false).await
}

pub async fn refund_payment(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<PaymentId>,
    ctx: RequestContext,
    ApiJson(b): ApiJson<RefundPayment>,
) -> Result<Response, ApiError> {
    owner::payment(&s, &ctx, id).await?;
    let cmd = PC::RefundPayment {
        amount: b.amount,
        gateway_reference: b.gateway_reference,
        note: b.note,
    };
    run(&s.write.payments, id.to_string(), cmd, &ctx, false).await
}

pub async fn collect_cash(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<PaymentId>,
    ctx: RequestContext,
    ApiJson(b): ApiJson<CollectCash>,
) -> Result<Response, ApiError> {
    owner::rider(&ctx, &b.rider_id)?;
    let cmd = PC::CollectCash {
        amount: b.amount,
        rider_id: b.rider_id,
    };
    run(&s.write.payments, id.to_string(), cmd, &ctx, false).await
}

// --- deliveries ----------------------------------------------------------------

pub async fn create_delivery(
    State(s): State<AppState>,
    ctx: RequestContext,
    ApiJson(b): ApiJson<CreateDelivery>,
) -> Result<Response, ApiError> {
    owner::order(&s, &ctx, b.order_id).await?;
    let id = b.delivery_id.unwrap_or_default();
    let cmd = DC::CreateDelivery {
        delivery_id: id,
        order_id: b.order_id,
        slot: b.slot,
        address: b.address,
        cold_chain: b.cold_chain,
    };
    run(&s.write.deliveries, id.to_string(), cmd, &ctx, true).await
}

pub async fn assign_rider(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<DeliveryId>,
    ctx: RequestContext,
    ApiJson(b): ApiJson<WithRider>,
) -> Result<Response, ApiError> {
    owner::delivery(&s, &ctx, id).await?;
    let cmd = DC::AssignRider {
        rider_id: b.rider_id,
    };
    run(&s.write.deliveries, id.to_string(), cmd, &ctx, false).await
}

pub async fn pick_up(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<DeliveryId>,
    ctx: RequestContext,
    ApiJson(b): ApiJson<WithRider>,
) -> Result<Response, ApiError> {
    owner::delivery(&s, &ctx, id).await?;
    owner::rider(&ctx, &b.rider_id)?;
    let cmd = DC::PickUp {
        rider_id: b.rider_id,
    };
    run(&s.write.deliveries, id.to_string(), cmd, &ctx, false).await
}

pub async fn report_location(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<DeliveryId>,
    ctx: RequestContext,
    ApiJson(b): ApiJson<ReportLocation>,
) -> Result<Response, ApiError> {
    owner::delivery(&s, &ctx, id).await?;
    let cmd = DC::ReportLocation {
        location: b.location,
    };
    run(&s.write.deliveries, id.to_string(), cmd, &ctx, false).await
}

pub async fn complete_delivery(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<DeliveryId>,
    ctx: RequestContext,
    ApiJson(b): ApiJson<CompleteDelivery>,
) -> Result<Response, ApiError> {
    owner::delivery(&s, &ctx, id).await?;
    let cmd = DC::CompleteDelivery { proof: b.proof };
    run(&s.write.deliveries, id.to_string(), cmd, &ctx, false).await
}

pub async fn fail_attempt(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<DeliveryId>,
    ctx: RequestContext,
    ApiJson(b): ApiJson<FailAttempt>,
) -> Result<Response, ApiError> {
    owner::delivery(&s, &ctx, id).await?;
    let cmd = DC::FailAttempt { reason: b.reason };
    run(&s.write.deliveries, id.to_string(), cmd, &ctx, false).await
}

// --- catalogue -------------------------------------------------------------------

pub async fn put_product(
    State(s): State<AppState>,
    ApiPath(sku): ApiPath<Sku>,
    ApiJson(b): ApiJson<ProductBody>,
) -> Result<Response, ApiError> {
    let product = Product::new(
        sku,
        b.name.as_str(),
        b.categories,
        b.price,
        b.per,
        &b.origin,
        b.nutrition,
    )
    .map_err(|e| ApiError::invalid("invalid_product", e.to_string()))?;
    s.write.catalog.upsert(&product).await?;
    Ok(Json(product).into_response())
}

pub async fn list_products(State(s): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(s.write.catalog.list().await?).into_response())
}

pub async fn put_warehouse(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<WarehouseId>,
    ApiJson(b): ApiJson<WarehouseBody>,
) -> Result<Json<Warehouse>, ApiError> {
    let w = Warehouse::new(id, b.name, b.address, b.zones)
        .map_err(|e| ApiError::invalid("invalid_warehouse", e.to_string()))?;
    s.write.catalog.register_warehouse(&w).await?;
    Ok(Json(w))
}

pub async fn list_warehouses(State(s): State<AppState>) -> Result<Json<Vec<Warehouse>>, ApiError> {
    Ok(Json(s.write.catalog.warehouses().await?))
}

pub async fn put_supplier(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<SupplierId>,
    ApiJson(b): ApiJson<SupplierBody>,
) -> Result<Json<Supplier>, ApiError> {
    let contact = Contact::new(b.contact.name, &b.contact.email, b.contact.phone.as_deref())
        .map_err(|e| ApiError::invalid("invalid_supplier", e.to_string()))?;
    let supplier = Supplier {
        id,
        name: b.name,
        contact,
    };
    s.write.catalog.register_supplier(&supplier).await?;
    Ok(Json(supplier))
}

pub async fn list_suppliers(State(s): State<AppState>) -> Result<Json<Vec<Supplier>>, ApiError> {
    Ok(Json(s.write.catalog.suppliers().await?))
}

// --- audit -----------------------------------------------------------------------

pub async fn log_status(State(s): State<AppState>) -> Result<Json<LogStatus>, ApiError> {
    let progress = s.write.store.progress(crate::READ_BOUND).await?;
    Ok(Json(LogStatus {
        head_position: progress.head,
        event_count: s.write.store.count().await?,
        subscriptions: progress
            .subscriptions
            .into_iter()
            .map(|x| SubscriptionInfo {
                name: x.name,
                position: x.position,
                parked: x.parked,
                last_error: x.last_error,
            })
            .collect(),
        stall: s.write.store.stall().map(LogStall::from),
        integrations: crate::integrations::statuses(&s.integrations).await,
    }))
}

pub async fn events(
    State(s): State<AppState>,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q?;
    if q.after > i64::MAX as u64 {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("after is at most {}", i64::MAX),
        ));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::invalid("invalid_limit", "limit is 1 to 1000"));
    }
    let events = s
        .write
        .store
        .read_visible(q.after, limit, crate::READ_BOUND)
        .await?;
    Ok(Json(events).into_response())
}

pub async fn stream_events(
    State(s): State<AppState>,
    ApiPath((stream_type, stream_id)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    if !event_schemas::STREAM_TYPES.contains(&stream_type.as_str()) {
        return Err(ApiError::not_found(
            "unknown_stream_type",
            format!("stream types are {:?}", event_schemas::STREAM_TYPES),
        ));
    }
    let events = s.write.store.read_stream(&stream_type, &stream_id).await?;
    if events.is_empty() {
        return Err(ApiError::not_found("stream_not_found", "no such stream"));
    }
    Ok(Json(events).into_response())
}

pub async fn correlation_events(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    Ok(Json(s.write.store.read_correlation(id).await?).into_response())
}

// --- operations ------------------------------------------------------------------

pub async fn move_clock(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<ClockChange>,
) -> Result<Response, ApiError> {
    let clock = s.manual_clock.as_ref().ok_or_else(|| {
        ApiError::not_found(
            "clock_not_controllable",
            "the server runs on the system clock (start it with --clock manual)",
        )
    })?;
    match (b.advance_seconds, b.set) {
        (Some(secs), None) => clock.advance(chrono::Duration::seconds(secs as i64)),
        (None, Some(t)) if t >= clock.now() => clock.set(t),
        (None, Some(_)) => {
            return Err(ApiError::invalid(
                "clock_backwards",
                "time only moves forward",
            ))
        }
        _ => {
            return Err(ApiError::invalid(
                "invalid_body",
                "give exactly one of advance_seconds and set",
            ))
        }
    }
    // Kept across restarts (before this answer tells anyone the time).
    s.write.store.record_manual_clock(clock.now()).await?;
    // Wake the scheduler: timers may be due now.
    s.write.store.nudge();
    Ok(Json(ClockNow { now: clock.now() }).into_response())
}

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the database answers within [`crate::READ_BOUND`], whatever
/// else it is doing; a stalled log is reported, not a reason to be unready.
pub async fn readyz(State(s): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    let not_ready = |m: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", m);
    let store = &s.write.store;
    let read = async {
        store.ping().await?;
        store.progress(crate::READ_BOUND).await
    };
    match tokio::time::timeout(crate::READ_BOUND * 2, read).await {
        Ok(Ok(progress)) => Ok(Json(Readiness {
            status: "ready".into(),
            log_stall: store.stall().map(LogStall::from),
            head_position: progress.head,
            subscriptions: progress
                .subscriptions
                .iter()
                .map(|x| {
                    let lag = progress.lag(x);
                    SubscriptionHealth {
                        state: if x.parked {
                            "parked"
                        } else if lag > crate::dto::LAGGING {
                            "lagging"
                        } else {
                            "ok"
                        }
                        .into(),
                        name: x.name.clone(),
                        position: x.position,
                        lag,
                        last_error: x.last_error.clone(),
                    }
                })
                .collect(),
            leases: store.leases().into(),
            integrations: crate::integrations::statuses(&s.integrations).await,
        })),
        Ok(Err(e)) => Err(not_ready(format!("the database failed: {e}"))),
        Err(_) => Err(not_ready(format!(
            "the database did not answer within {:?}",
            crate::READ_BOUND * 2
        ))),
    }
}

pub async fn openapi_json(state: State<AppState>) -> Json<serde_json::Value> {
    crate::openapi_document(state).await
}
