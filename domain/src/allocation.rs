//! FEFO allocation: which batches an order line is reserved from.
//!
//! First expiring, first out: a line takes stock from the batch that expires
//! soonest, then the next, until it is covered, so that stock is sold before
//! it spoils. A batch only qualifies if, at the end of the delivery slot, it
//! still has at least `margin` of shelf life: a customer must not receive
//! produce that expires on the doorstep. Pure: the order saga gathers the
//! candidates (from the stock read model) and then reserves on each batch
//! through the `InventoryBatch` aggregate, whose invariants have the last
//! word (a candidate list that is out of date only costs a failed reserve).

use chrono::{DateTime, Duration, Utc};

use crate::values::{BatchId, Quantity, UnitOfMeasure};

/// A batch that might serve a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub batch_id: BatchId,
    pub expires_at: DateTime<Utc>,
    /// Available (on hand less reserved), in the line's unit of measure.
    pub available: u64,
}

/// One reservation to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Take {
    pub batch_id: BatchId,
    pub quantity: Quantity,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("only {available} of {requested} can be allocated from batches fresh enough")]
pub struct Shortfall {
    pub requested: u64,
    pub available: u64,
}

/// Plans a line's reservations, first-expiring first. `deliver_by` is the end
/// of the delivery slot; `margin` the shelf life a batch must still have then.
pub fn fefo(
    quantity: Quantity,
    candidates: &[Candidate],
    deliver_by: DateTime<Utc>,
    margin: Duration,
) -> Result<Vec<Take>, Shortfall> {
    let uom: UnitOfMeasure = quantity.uom();
    let mut fresh: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.available > 0 && c.expires_at >= deliver_by + margin)
        .collect();
    // Soonest expiry first; ties by id so the plan is deterministic.
    fresh.sort_by_key(|c| (c.expires_at, c.batch_id));
    let mut left = quantity.amount();
    let mut plan = Vec::new();
    for c in fresh {
        if left == 0 {
            break;
        }
        let take = left.min(c.available);
        plan.push(Take {
            batch_id: c.batch_id,
            quantity: Quantity::new(uom, take).expect("0 < take <= requested"),
        });
        left -= take;
    }
    if left > 0 {
        return Err(Shortfall {
            requested: quantity.amount(),
            available: quantity.amount() - left,
        });
    }
    Ok(plan)
}
