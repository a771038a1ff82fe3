//! The auditors' routes: events by actor, timeline, type and correlation;
//! a stream's state as of a position or a moment; lot recall (JSON or
//! CSV); the signed checkpoints. Answers come from the `audit` crate.

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use audit::queries::{self, AsOf, EventFilter, QueryError, RecallFrom};

use crate::error::ApiError;
use crate::extract::ApiPath;
use crate::AppState;

type Q<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

/// Which events (every condition given must hold; time ranges include
/// their start and exclude their end), and which page.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditEventsQuery {
    /// `role:id`, as events record it (`admin:alice@example.com`).
    pub actor: Option<String>,
    pub event_type: Option<String>,
    pub stream_type: Option<String>,
    pub stream_id: Option<String>,
    pub correlation_id: Option<Uuid>,
    /// When it happened in the world (RFC 3339).
    pub occurred_from: Option<DateTime<Utc>>,
    pub occurred_to: Option<DateTime<Utc>>,
    /// When the log recorded it (RFC 3339).
    pub recorded_from: Option<DateTime<Utc>>,
    pub recorded_to: Option<DateTime<Utc>>,
    /// The `next_after` of the previous page (default 0).
    #[serde(default)]
    pub after: u64,
    /// At most this many (default 100, at most 1,000).
    pub limit: Option<usize>,
}

/// One page of an auditor's search.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AuditEventPage {
    pub events: Vec<event_schemas::RecordedEvent>,
    /// Pass as `after` for the next page; absent on the last.
    pub next_after: Option<u64>,
    /// The search covers the log up to this position (the audit chain's).
    pub indexed_to: u64,
}

fn check_after(after: u64) -> Result<(), ApiError> {
    if after > i64::MAX as u64 {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("after is at most {}", i64::MAX),
        ));
    }
    Ok(())
}

fn range(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    what: &str,
) -> Result<(), ApiError> {
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            return Err(ApiError::invalid(
                "invalid_range",
                format!("{what}_from must not be after {what}_to"),
            ));
        }
    }
    Ok(())
}

fn query_error(e: QueryError) -> ApiError {
    match e {
        QueryError::Store(e) => e.into(),
        QueryError::UnknownStreamType(_) => ApiError::not_found(
            "unknown_stream_type",
            format!("stream types are {:?}", event_schemas::STREAM_TYPES),
        ),
        QueryError::UnknownBatch(_) => ApiError::not_found("batch_not_found", e.to_string()),
        QueryError::Replay { .. } => {
            tracing::error!(error = %e, "replaying a stream for an auditor");
            ApiError::internal("the stream cannot be replayed")
        }
    }
}

pub async fn events(
    State(s): State<AppState>,
    q: Q<AuditEventsQuery>,
) -> Result<Response, ApiError> {
    let Query(q) = q?;
    check_after(q.after)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::invalid("invalid_limit", "limit is 1 to 1000"));
    }
    range(q.occurred_from, q.occurred_to, "occurred")?;
    range(q.recorded_from, q.recorded_to, "recorded")?;
    let filter = EventFilter {
        actor: q.actor,
        event_type: q.event_type,
        stream_type: q.stream_type,
        stream_id: q.stream_id,
        correlation_id: q.correlation_id,
        occurred_from: q.occurred_from,
        occurred_to: q.occurred_to,
        recorded_from: q.recorded_from,
        recorded_to: q.recorded_to,
    };
    let page = queries::events(&s.write.store, &filter, q.after, limit).await?;
    Ok(Json(AuditEventPage {
        events: page.events,
        next_after: page.next_after,
        indexed_to: page.indexed_to,
    })
    .into_response())
}

/// As of a log position, or of a moment (the log as it stood then).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AsOfQuery {
    pub position: Option<u64>,
    /// RFC 3339.
    pub at: Option<DateTime<Utc>>,
}

/// A stream's state replayed from the log.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StreamStateView {
    pub stream_type: String,
    pub stream_id: String,
    /// The log position the state is as of.
    pub as_of_position: u64,
    /// The stream's version then (0: it did not exist yet).
    pub version: u64,
    pub last_event_position: Option<u64>,
    /// The aggregate's state, as its type serialises.
    pub state: serde_json::Value,
}

pub async fn stream_state(
    State(s): State<AppState>,
    ApiPath((stream_type, stream_id)): ApiPath<(String, String)>,
    q: Q<AsOfQuery>,
) -> Result<Response, ApiError> {
    let Query(q) = q?;
    let at = match (q.position, q.at) {
        (Some(p), None) => {
            check_after(p)?;
            AsOf::Position(p)
        }
        (None, Some(t)) => AsOf::Time(t),
        (None, None) => AsOf::Position(i64::MAX as u64),
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "invalid_query",
                "give position or at, not both",
            ))
        }
    };
    let state = queries::state_as_of(&s.write.store, &stream_type, &stream_id, at)
        .await
        .map_err(query_error)?
        .ok_or_else(|| ApiError::not_found("stream_not_found", "no such stream"))?;
    let as_of = state
        .as_of_position
        .min(s.write.store.head_within(crate::READ_BOUND).await?);
    Ok(Json(StreamStateView {
        stream_type: state.stream_type,
        stream_id: state.stream_id,
        as_of_position: as_of,
        version: state.version,
        last_event_position: state.last_event_position,
        state: state.state,
    })
    .into_response())
}

/// From one batch, or a supplier's batches received in `[from, to)`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecallQuery {
    pub batch_id: Option<String>,
    pub supplier_id: Option<String>,
    /// Received from (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Received before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

pub async fn recall(State(s): State<AppState>, q: Q<RecallQuery>) -> Result<Response, ApiError> {
    let Query(q) = q?;
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::invalid("invalid_format", "format is json or csv")),
    };
    let from = match (q.batch_id, q.supplier_id, q.from, q.to) {
        (Some(b), None, None, None) => RecallFrom::Batch(b),
        (None, Some(supplier_id), Some(from), Some(to)) if from <= to => RecallFrom::Supplier {
            supplier_id,
            from,
            to,
        },
        (None, Some(_), Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "invalid_range",
                "from must not be after to",
            ))
        }
        _ => {
            return Err(ApiError::invalid(
                "invalid_recall",
                "give batch_id, or supplier_id with from and to",
            ))
        }
    };
    let recall = queries::recall(&s.write.store, &from)
        .await
        .map_err(query_error)?;
    if csv {
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"recall.csv\"",
                ),
            ],
            queries::recall_csv(&recall),
        )
            .into_response());
    }
    Ok(Json(recall).into_response())
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckpointsQuery {
    /// Only those after this position (default 0).
    #[serde(default)]
    pub after: u64,
}

pub async fn checkpoints(
    State(s): State<AppState>,
    q: Q<CheckpointsQuery>,
) -> Result<Response, ApiError> {
    let Query(q) = q?;
    check_after(q.after)?;
    let cps = audit::chain::checkpoints(&s.write.store, q.after, i64::MAX as u64).await?;
    Ok(Json(cps).into_response())
}
