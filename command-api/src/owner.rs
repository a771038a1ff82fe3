//! Ownership: beyond its role (the route table), a subject acts only on
//! what is theirs. Customers on their own orders and payments, riders on
//! the deliveries assigned to them (and the cash they collect), sellers on
//! the stock and orders of their warehouses; admins on everything.
//!
//! What is looked up here never changes once set (an order's customer and
//! warehouse, a batch's warehouse), so it is read from this process's
//! aggregate cache when there (the command reads the aggregate again
//! anyway); a delivery's rider can change, so deliveries are read fresh,
//! and a command racing a reassignment is checked against the rider
//! assigned when it arrived. Something that does not exist passes, and the command answers
//! its own 404.

use domain::values::{BatchId, CustomerId, DeliveryId, OrderId, PaymentId, RiderId, WarehouseId};
use event_schemas::ActorRole;
use identity::Principal;

use crate::error::ApiError;
use crate::extract::RequestContext;
use crate::AppState;

fn not_owner(what: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "not_owner",
        format!("this {what} is not yours to act on"),
    )
}

fn p(ctx: &RequestContext) -> &Principal {
    &ctx.principal
}

/// A seller's own warehouse (admins: any).
pub(crate) fn warehouse(ctx: &RequestContext, id: &WarehouseId) -> Result<(), ApiError> {
    if p(ctx).works_at(id.as_str()) {
        Ok(())
    } else {
        Err(not_owner("warehouse"))
    }
}

/// A customer acts for themselves only.
pub(crate) fn customer(ctx: &RequestContext, id: &CustomerId) -> Result<(), ApiError> {
    match p(ctx).role {
        ActorRole::Admin => Ok(()),
        ActorRole::Customer if id.as_uuid() == p(ctx).subject => {
            if p(ctx).email_verified {
                Ok(())
            } else {
                Err(ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "email_unverified",
                    "confirm your email address first (the token is in the message we sent)",
                ))
            }
        }
        _ => Err(not_owner("customer account")),
    }
}

/// A rider acts as themselves only.
pub(crate) fn rider(ctx: &RequestContext, id: &RiderId) -> Result<(), ApiError> {
    match p(ctx).role {
        ActorRole::Admin | ActorRole::Seller => Ok(()),
        ActorRole::Delivery if id.as_uuid() == p(ctx).subject => Ok(()),
        _ => Err(not_owner("rider")),
    }
}

/// A batch of a seller's warehouse.
pub(crate) async fn batch(s: &AppState, ctx: &RequestContext, id: BatchId) -> Result<(), ApiError> {
    if p(ctx).is_admin() {
        return Ok(());
    }
    let (batch, _) = s.write.batches.load_cached(&id.to_string(), 0).await?;
    match batch.info() {
        Some(info) => warehouse(ctx, &info.warehouse_id),
        None => Ok(()),
    }
}

/// An order: its customer, a seller of its warehouse.
pub(crate) async fn order(s: &AppState, ctx: &RequestContext, id: OrderId) -> Result<(), ApiError> {
    let who = p(ctx);
    if who.is_admin() {
        return Ok(());
    }
    let (order, _) = s.write.orders.load_cached(&id.to_string(), 0).await?;
    let Some(placed) = order.placed() else {
        return Ok(());
    };
    let mine = match who.role {
        ActorRole::Customer => placed.customer_id.as_uuid() == who.subject,
        ActorRole::Seller => who.works_at(placed.warehouse_id.as_str()),
        _ => false,
    };
    if mine {
        Ok(())
    } else {
        Err(not_owner("order"))
    }
}

/// A payment: whoever may act on its order.
pub(crate) async fn payment(
    s: &AppState,
    ctx: &RequestContext,
    id: PaymentId,
) -> Result<(), ApiError> {
    if p(ctx).is_admin() {
        return Ok(());
    }
    let (payment, _) = s.write.payments.load_cached(&id.to_string(), 0).await?;
    match payment.order_id() {
        Some(o) => order(s, ctx, o).await,
        None => Ok(()),
    }
}

/// A delivery: its assigned rider, a seller of its order's warehouse.
pub(crate) async fn delivery(
    s: &AppState,
    ctx: &RequestContext,
    id: DeliveryId,
) -> Result<(), ApiError> {
    let who = p(ctx);
    if who.is_admin() {
        return Ok(());
    }
    let (delivery, _) = s.write.deliveries.load(&id.to_string()).await?;
    match who.role {
        ActorRole::Delivery => match delivery.rider() {
            Some(r) if r.as_uuid() == who.subject => Ok(()),
            _ if delivery.status().is_none() => Ok(()),
            _ => Err(not_owner("delivery")),
        },
        ActorRole::Seller => match delivery.order_id() {
            Some(o) => order(s, ctx, o).await,
            None => Ok(()),
        },
        _ => Err(not_owner("delivery")),
    }
}
