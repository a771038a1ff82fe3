//! `Order`: a customer's order from placement to delivery or cancellation.
//!
//! The lifecycle is one explicit table, [`TRANSITIONS`]; a command whose
//! (state, action) pair is not in it is refused with
//! [`OrderError::IllegalTransition`] naming both. Guards that depend on more
//! than the state (cash on delivery, allocation, amounts) are separate typed
//! errors, checked only for pairs the table allows.

use std::collections::BTreeSet;
use std::sync::Arc;

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use event_schemas::order::*;
use event_schemas::values::*;

use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::error::{DomainError, ErrorKind};

pub struct OrderServices {
    pub catalog: Arc<dyn Catalog>,
    pub clock: Arc<dyn Clock>,
    /// How far ahead a delivery slot may start.
    pub slot_horizon: chrono::Duration,
}

/// How far ahead a delivery slot may start unless the shop says otherwise.
pub const DEFAULT_SLOT_HORIZON_DAYS: u32 = 14;

/// Most lines one order may have.
pub const MAX_LINES: usize = 100;
/// A per-kg line may be packed up to this many percent over what was ordered
/// (a bag of apples rarely weighs exactly 1,500 g).
pub const PACK_OVERWEIGHT_PERCENT: u64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Created,
    Paid,
    Packed,
    Shipped,
    Delivered,
    Cancelled,
}

/// What a command tries to do, for the transition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderAction {
    Place,
    ConfirmAllocation,
    MarkPaid,
    Pack,
    Ship,
    Deliver,
    Cancel,
    RequestRefund,
    CancelLine,
}

use OrderAction as A;
use OrderStatus as S;

/// The whole lifecycle: (from, action, to). `None` is "no order yet".
pub const TRANSITIONS: &[(Option<OrderStatus>, OrderAction, OrderStatus)] = &[
    (None, A::Place, S::Created),
    (Some(S::Created), A::ConfirmAllocation, S::Created),
    // A batch expiring under a paid order re-allocates its line.
    (Some(S::Paid), A::ConfirmAllocation, S::Paid),
    (Some(S::Created), A::MarkPaid, S::Paid),
    // Guarded: cash-on-delivery orders only (they are paid at the door).
    (Some(S::Created), A::Pack, S::Packed),
    (Some(S::Paid), A::Pack, S::Packed),
    (Some(S::Packed), A::Ship, S::Shipped),
    (Some(S::Shipped), A::Deliver, S::Delivered),
    // Guarded: never the last line (cancel the order instead).
    (Some(S::Created), A::CancelLine, S::Created),
    (Some(S::Paid), A::CancelLine, S::Paid),
    (Some(S::Created), A::Cancel, S::Cancelled),
    (Some(S::Paid), A::Cancel, S::Cancelled),
    (Some(S::Packed), A::Cancel, S::Cancelled),
    // Guarded: only what was paid and not yet asked back.
    (Some(S::Packed), A::RequestRefund, S::Packed),
    (Some(S::Shipped), A::RequestRefund, S::Shipped),
    (Some(S::Delivered), A::RequestRefund, S::Delivered),
    (Some(S::Cancelled), A::RequestRefund, S::Cancelled),
];

/// The state `action` leads to from `from`, if the table allows it.
pub fn transition(from: Option<OrderStatus>, action: OrderAction) -> Option<OrderStatus> {
    TRANSITIONS
        .iter()
        .find(|(f, a, _)| *f == from && *a == action)
        .map(|(_, _, to)| *to)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineRequest {
    pub sku: Sku,
    pub quantity: Quantity,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackRequest {
    pub sku: Sku,
    pub packed_quantity: Quantity,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)] // commands live for one request
pub enum OrderCommand {
    PlaceOrder {
        order_id: OrderId,
        customer_id: CustomerId,
        warehouse_id: WarehouseId,
        lines: Vec<LineRequest>,
        delivery_slot: DeliverySlot,
        delivery_address: Address,
        payment_method: PaymentMethod,
    },
    ConfirmAllocation {
        allocations: Vec<Allocation>,
    },
    MarkPaid {
        payment_id: PaymentId,
        amount: Money,
    },
    PackOrder {
        lines: Vec<PackRequest>,
    },
    ShipOrder {
        delivery_id: DeliveryId,
    },
    MarkDelivered {
        delivery_id: DeliveryId,
    },
    CancelOrder {
        reason: CancellationReason,
        note: Option<Note>,
    },
    RequestRefund {
        amount: Money,
        reason: RefundReason,
    },
    /// Drops one line before packing; a paid line's price is refunded.
    CancelLine {
        sku: Sku,
        reason: CancellationReason,
        note: Option<Note>,
    },
}

impl OrderCommand {
    pub fn action(&self) -> OrderAction {
        match self {
            OrderCommand::PlaceOrder { .. } => A::Place,
            OrderCommand::ConfirmAllocation { .. } => A::ConfirmAllocation,
            OrderCommand::MarkPaid { .. } => A::MarkPaid,
            OrderCommand::PackOrder { .. } => A::Pack,
            OrderCommand::ShipOrder { .. } => A::Ship,
            OrderCommand::MarkDelivered { .. } => A::Deliver,
            OrderCommand::CancelOrder { .. } => A::Cancel,
            OrderCommand::RequestRefund { .. } => A::RequestRefund,
            OrderCommand::CancelLine { .. } => A::CancelLine,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "error", content = "details", rename_all = "snake_case")]
pub enum OrderError {
    #[error(
        "cannot {} an order {}",
        crate::error::spelled(.action, true),
        match .state {
            Some(s) => format!("in state {}", crate::error::spelled(s, false)),
            None => "that does not exist".to_string(),
        }
    )]
    IllegalTransition {
        state: Option<OrderStatus>,
        action: OrderAction,
    },
    #[error("an order needs at least one line")]
    NoLines,
    #[error("an order has at most {MAX_LINES} lines")]
    TooManyLines,
    #[error("SKU {0} appears on more than one line")]
    DuplicateSku(Sku),
    #[error("unknown SKU {0}")]
    UnknownSku(Sku),
    #[error("{sku} is sold in {expected}, not {given}")]
    UnitMismatch {
        sku: Sku,
        expected: UnitOfMeasure,
        given: UnitOfMeasure,
    },
    #[error("lines are priced in more than one currency")]
    MixedCurrencies,
    #[error("the delivery slot has already started")]
    SlotInPast,
    #[error("delivery slots can be booked at most {days} days ahead")]
    SlotTooFarAhead { days: i64 },
    #[error("unknown warehouse {0}")]
    UnknownWarehouse(WarehouseId),
    #[error("allocation does not cover the order's lines exactly")]
    AllocationMismatch,
    #[error("order total is {expected}, payment was {given}")]
    PaymentAmountMismatch { expected: Money, given: Money },
    #[error("cash-on-delivery orders are paid at the door")]
    CashOnDeliveryNotPaidOnline,
    #[error("a card order must be paid before packing")]
    NotPaid,
    #[error("stock has not been allocated")]
    NotAllocated,
    #[error("packed lines do not match the order: {0}")]
    PackMismatch(String),
    #[error("delivery {given} is not the order's delivery")]
    WrongDelivery { given: DeliveryId },
    #[error("refund of {requested} exceeds the {refundable} still refundable")]
    RefundExceedsPaid { requested: Money, refundable: Money },
    #[error("an amount of money must not be zero")]
    ZeroAmount,
    #[error("the order has no open line for {0}")]
    NoSuchLine(Sku),
    #[error("the last line cannot be cancelled; cancel the order")]
    LastLine,
    #[error("price overflows")]
    Overflow,
    #[error("catalogue unavailable: {0}")]
    CatalogUnavailable(String),
}

impl DomainError for OrderError {
    const CODES: &'static [(&'static str, ErrorKind)] = &[
        ("order_not_found", ErrorKind::NotFound),
        ("illegal_transition", ErrorKind::Conflict),
        ("no_lines", ErrorKind::Invalid),
        ("too_many_lines", ErrorKind::Invalid),
        ("duplicate_sku", ErrorKind::Invalid),
        ("unknown_sku", ErrorKind::Invalid),
        ("unit_mismatch", ErrorKind::Invalid),
        ("mixed_currencies", ErrorKind::Invalid),
        ("slot_in_past", ErrorKind::Invalid),
        ("slot_too_far_ahead", ErrorKind::Invalid),
        ("unknown_warehouse", ErrorKind::Invalid),
        ("allocation_mismatch", ErrorKind::Invalid),
        ("payment_amount_mismatch", ErrorKind::Invalid),
        ("cash_on_delivery", ErrorKind::Conflict),
        ("not_paid", ErrorKind::Conflict),
        ("not_allocated", ErrorKind::Conflict),
        ("pack_mismatch", ErrorKind::Invalid),
        ("wrong_delivery", ErrorKind::Invalid),
        ("refund_exceeds_paid", ErrorKind::Conflict),
        ("zero_amount", ErrorKind::Invalid),
        ("no_such_line", ErrorKind::Invalid),
        ("last_line", ErrorKind::Conflict),
        ("overflow", ErrorKind::Invalid),
        ("catalog_unavailable", ErrorKind::Unavailable),
    ];
    fn code(&self) -> &'static str {
        use OrderError::*;
        match self {
            IllegalTransition { state: None, .. } => "order_not_found",
            IllegalTransition { .. } => "illegal_transition",
            NoLines => "no_lines",
            TooManyLines => "too_many_lines",
            DuplicateSku(_) => "duplicate_sku",
            UnknownSku(_) => "unknown_sku",
            UnitMismatch { .. } => "unit_mismatch",
            MixedCurrencies => "mixed_currencies",
            SlotInPast => "slot_in_past",
            SlotTooFarAhead { .. } => "slot_too_far_ahead",
            UnknownWarehouse(_) => "unknown_warehouse",
            AllocationMismatch => "allocation_mismatch",
            PaymentAmountMismatch { .. } => "payment_amount_mismatch",
            CashOnDeliveryNotPaidOnline => "cash_on_delivery",
            NotPaid => "not_paid",
            NotAllocated => "not_allocated",
            PackMismatch(_) => "pack_mismatch",
            WrongDelivery { .. } => "wrong_delivery",
            RefundExceedsPaid { .. } => "refund_exceeds_paid",
            ZeroAmount => "zero_amount",
            NoSuchLine(_) => "no_such_line",
            LastLine => "last_line",
            Overflow => "overflow",
            CatalogUnavailable(_) => "catalog_unavailable",
        }
    }
    fn kind(&self) -> ErrorKind {
        use OrderError::*;
        match self {
            IllegalTransition { state: None, .. } => ErrorKind::NotFound,
            CatalogUnavailable(_) => ErrorKind::Unavailable,
            IllegalTransition { .. }
            | CashOnDeliveryNotPaidOnline
            | NotPaid
            | NotAllocated
            | RefundExceedsPaid { .. }
            | LastLine => ErrorKind::Conflict,
            _ => ErrorKind::Invalid,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Order {
    status: Option<OrderStatus>,
    placed: Option<OrderPlaced>,
    allocated: bool,
    /// The last confirmed allocation (a batch expiring re-allocates).
    #[serde(default)]
    allocations: Vec<Allocation>,
    paid: Option<Money>,
    packed: Option<OrderPacked>,
    delivery_id: Option<DeliveryId>,
    refunds_requested: Option<Money>,
    /// Lines cancelled before packing.
    #[serde(default)]
    cancelled_lines: BTreeSet<Sku>,
}

impl Order {
    pub fn status(&self) -> Option<OrderStatus> {
        self.status
    }
    pub fn placed(&self) -> Option<&OrderPlaced> {
        self.placed.as_ref()
    }
    pub fn packed(&self) -> Option<&OrderPacked> {
        self.packed.as_ref()
    }
    pub fn is_allocated(&self) -> bool {
        self.allocated
    }
    /// The batches each line is reserved on, as last confirmed.
    pub fn allocations(&self) -> &[Allocation] {
        &self.allocations
    }
    pub fn amount_paid(&self) -> Option<Money> {
        self.paid
    }
    /// The lines still open (placed, less those cancelled).
    pub fn open_lines(&self) -> impl Iterator<Item = &OrderLine> + '_ {
        self.placed
            .iter()
            .flat_map(|p| &p.lines)
            .filter(|l| !self.cancelled_lines.contains(&l.sku))
    }
    /// The order total: as packed once packed, else its open lines as
    /// placed.
    pub fn total(&self) -> Option<Money> {
        let c = self.placed.as_ref()?.lines[0].unit_price.amount.currency();
        if let Some(p) = &self.packed {
            return p
                .lines
                .iter()
                .try_fold(Money::zero(c), |acc, l| acc.checked_add(l.price))
                .ok();
        }
        self.open_lines().try_fold(Money::zero(c), |acc, l| {
            acc.checked_add(l.price().ok()?).ok()
        })
    }
    /// Paid but not yet asked back.
    pub fn refundable(&self) -> Option<Money> {
        let paid = self.paid?;
        let asked = self
            .refunds_requested
            .unwrap_or(Money::zero(paid.currency()));
        paid.checked_sub(asked).ok()
    }
}

impl Order {
    fn ask_back(&mut self, amount: Money) {
        self.refunds_requested = Some(match self.refunds_requested {
            None => amount,
            Some(a) => a.checked_add(amount).unwrap_or(a),
        })
    }
}

impl Aggregate for Order {
    const TYPE: &'static str = "Order";
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;
    type Services = OrderServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        use OrderCommand as C;
        use OrderError as E;
        let action = command.action();
        if transition(self.status, action).is_none() {
            return Err(E::IllegalTransition {
                state: self.status,
                action,
            });
        }
        match command {
            C::PlaceOrder {
                order_id,
                customer_id,
                warehouse_id,
                lines,
                delivery_slot,
                delivery_address,
                payment_method,
            } => {
                if lines.is_empty() {
                    return Err(E::NoLines);
                }
                if lines.len() > MAX_LINES {
                    return Err(E::TooManyLines);
                }
                let now = services.clock.now();
                if delivery_slot.starts_at() <= now {
                    return Err(E::SlotInPast);
                }
                if delivery_slot.starts_at() > now + services.slot_horizon {
                    return Err(E::SlotTooFarAhead {
                        days: services.slot_horizon.num_days(),
                    });
                }
                services
                    .catalog
                    .warehouse(&warehouse_id)
                    .await
                    .map_err(|e| E::CatalogUnavailable(e.0))?
                    .ok_or_else(|| E::UnknownWarehouse(warehouse_id.clone()))?;
                let mut seen = BTreeSet::new();
                let mut priced = Vec::with_capacity(lines.len());
                for l in lines {
                    if !seen.insert(l.sku.clone()) {
                        return Err(E::DuplicateSku(l.sku));
                    }
                    let product = services
                        .catalog
                        .product(&l.sku)
                        .await
                        .map_err(|e| E::CatalogUnavailable(e.0))?
                        .ok_or_else(|| E::UnknownSku(l.sku.clone()))?;
                    let expected = product.price.per.unit_of_measure();
                    if l.quantity.uom() != expected {
                        return Err(E::UnitMismatch {
                            sku: l.sku,
                            expected,
                            given: l.quantity.uom(),
                        });
                    }
                    priced.push(OrderLine {
                        sku: l.sku,
                        quantity: l.quantity,
                        unit_price: product.price,
                    });
                }
                let currency = priced[0].unit_price.amount.currency();
                if priced
                    .iter()
                    .any(|l| l.unit_price.amount.currency() != currency)
                {
                    return Err(E::MixedCurrencies);
                }
                let e = OrderPlaced {
                    order_id,
                    customer_id,
                    warehouse_id,
                    lines: priced,
                    delivery_slot,
                    delivery_address,
                    payment_method,
                };
                e.total().map_err(|_| E::Overflow)?;
                sink.write(e.into(), self).await;
            }
            C::ConfirmAllocation { allocations } => {
                let open: Vec<&OrderLine> = self.open_lines().collect();
                for line in &open {
                    let mut sum = 0u64;
                    for a in allocations.iter().filter(|a| a.sku == line.sku) {
                        if a.quantity.uom() != line.quantity.uom() {
                            return Err(E::AllocationMismatch);
                        }
                        sum += a.quantity.amount();
                    }
                    if sum != line.quantity.amount() {
                        return Err(E::AllocationMismatch);
                    }
                }
                if allocations
                    .iter()
                    .any(|a| !open.iter().any(|l| l.sku == a.sku))
                {
                    return Err(E::AllocationMismatch);
                }
                sink.write(AllocationConfirmed { allocations }.into(), self)
                    .await;
            }
            C::MarkPaid { payment_id, amount } => {
                let placed = self.placed.as_ref().expect("placed");
                if placed.payment_method == PaymentMethod::CashOnDelivery {
                    return Err(E::CashOnDeliveryNotPaidOnline);
                }
                let expected = self.total().ok_or(E::Overflow)?;
                if amount != expected {
                    return Err(E::PaymentAmountMismatch {
                        expected,
                        given: amount,
                    });
                }
                sink.write(OrderPaid { payment_id, amount }.into(), self)
                    .await;
            }
            C::PackOrder { lines } => {
                let placed = self.placed.clone().expect("placed");
                if self.status == Some(S::Created)
                    && placed.payment_method != PaymentMethod::CashOnDelivery
                {
                    return Err(E::NotPaid);
                }
                if !self.allocated {
                    return Err(E::NotAllocated);
                }
                let open: Vec<OrderLine> = self.open_lines().cloned().collect();
                if lines.len() != open.len() {
                    return Err(E::PackMismatch(format!(
                        "{} lines packed, {} ordered",
                        lines.len(),
                        open.len()
                    )));
                }
                let mut packed = Vec::with_capacity(lines.len());
                for line in &open {
                    let p = lines
                        .iter()
                        .find(|p| p.sku == line.sku)
                        .ok_or_else(|| E::PackMismatch(format!("{} not packed", line.sku)))?;
                    let ordered = line.quantity.amount();
                    let got = p
                        .packed_quantity
                        .expect_uom(line.quantity.uom())
                        .map_err(|_| E::UnitMismatch {
                            sku: line.sku.clone(),
                            expected: line.quantity.uom(),
                            given: p.packed_quantity.uom(),
                        })?;
                    let limit = match line.unit_price.per {
                        PricingUnit::PerKg => ordered + ordered * PACK_OVERWEIGHT_PERCENT / 100,
                        PricingUnit::PerUnit => ordered,
                    };
                    if got > limit {
                        return Err(E::PackMismatch(format!(
                            "{}: {got} packed, at most {limit} allowed",
                            line.sku
                        )));
                    }
                    packed.push(PackedLine {
                        sku: line.sku.clone(),
                        packed_quantity: p.packed_quantity,
                        price: line
                            .unit_price
                            .price_of(p.packed_quantity)
                            .map_err(|_| E::Overflow)?,
                    });
                }
                sink.write(OrderPacked { lines: packed }.into(), self).await;
            }
            C::ShipOrder { delivery_id } => {
                sink.write(OrderShipped { delivery_id }.into(), self).await;
            }
            C::MarkDelivered { delivery_id } => {
                if self.delivery_id != Some(delivery_id) {
                    return Err(E::WrongDelivery { given: delivery_id });
                }
                sink.write(OrderDelivered { delivery_id }.into(), self)
                    .await;
            }
            C::CancelOrder { reason, note } => {
                sink.write(OrderCancelled { reason, note }.into(), self)
                    .await;
            }
            C::CancelLine { sku, reason, note } => {
                let line = self
                    .open_lines()
                    .find(|l| l.sku == sku)
                    .cloned()
                    .ok_or_else(|| E::NoSuchLine(sku.clone()))?;
                if self.open_lines().count() == 1 {
                    return Err(E::LastLine);
                }
                let price = line.price().map_err(|_| E::Overflow)?;
                let e = OrderLineCancelled {
                    sku,
                    price,
                    refund: self.paid.map(|_| price),
                    reason,
                    note,
                };
                sink.write(e.into(), self).await;
            }
            C::RequestRefund { amount, reason } => {
                if amount.is_zero() {
                    return Err(E::ZeroAmount);
                }
                let refundable = self.refundable().unwrap_or(Money::zero(amount.currency()));
                if amount.currency() != refundable.currency()
                    || amount.amount_minor() > refundable.amount_minor()
                {
                    return Err(E::RefundExceedsPaid {
                        requested: amount,
                        refundable,
                    });
                }
                sink.write(RefundRequested { amount, reason }.into(), self)
                    .await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        use OrderEvent as Ev;
        let action = match &event {
            Ev::OrderPlaced(_) => A::Place,
            Ev::AllocationConfirmed(_) => A::ConfirmAllocation,
            Ev::OrderPaid(_) => A::MarkPaid,
            Ev::OrderPacked(_) => A::Pack,
            Ev::OrderShipped(_) => A::Ship,
            Ev::OrderDelivered(_) => A::Deliver,
            Ev::OrderCancelled(_) => A::Cancel,
            Ev::RefundRequested(_) => A::RequestRefund,
            Ev::OrderLineCancelled(_) => A::CancelLine,
        };
        // History is fact: apply never refuses. Were history to contain a
        // pair outside the table, the status stays where it was.
        if let Some(to) = transition(self.status, action) {
            self.status = Some(to);
        }
        match event {
            Ev::OrderPlaced(e) => self.placed = Some(e),
            Ev::AllocationConfirmed(e) => {
                self.allocated = true;
                self.allocations = e.allocations;
            }
            Ev::OrderPaid(e) => self.paid = Some(e.amount),
            Ev::OrderPacked(e) => self.packed = Some(e),
            Ev::OrderShipped(e) => self.delivery_id = Some(e.delivery_id),
            Ev::OrderDelivered(_) => {}
            Ev::OrderCancelled(_) => {}
            Ev::RefundRequested(e) => self.ask_back(e.amount),
            Ev::OrderLineCancelled(e) => {
                self.cancelled_lines.insert(e.sku);
                if let Some(refund) = e.refund {
                    self.ask_back(refund);
                }
            }
        }
    }
}
