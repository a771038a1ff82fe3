//! Extractors that turn every rejection into an `ApiError`, and the request
//! context (correlation, causation, actor, occurred-at) every command carries.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use event_schemas::{Actor, ActorRole, EventMetadata};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::ApiError;
use crate::AppState;

pub const CORRELATION_ID: &str = "x-correlation-id";
pub const ACTOR: &str = "x-actor";
pub const OCCURRED_AT: &str = "x-occurred-at";

/// A JSON body; rejections become 400/413/415/422 in the one error shape.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(v))
    }
}

/// Path parameters; a malformed id is a 400.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(v) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(ApiPath(v))
    }
}

/// Who asks, in which flow, and when it happened.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub correlation_id: Uuid,
    /// This request's own id: the causation id of the events it appends.
    pub command_id: Uuid,
    pub actor: Actor,
    pub occurred_at: DateTime<Utc>,
    /// The request's `Idempotency-Key` (checked by the idempotency
    /// middleware), written into every event it appends.
    pub idempotency_key: Option<String>,
}

/// The `Idempotency-Key` the idempotency middleware accepted.
#[derive(Debug, Clone)]
pub struct IdempotencyKey(pub String);

impl RequestContext {
    pub fn metadata(&self) -> EventMetadata {
        EventMetadata {
            occurred_at: self.occurred_at,
            correlation_id: self.correlation_id,
            causation_id: Some(self.command_id),
            actor: self.actor.clone(),
            idempotency_key: self.idempotency_key.clone(),
        }
    }
}

fn header<'a>(parts: &'a Parts, name: &str) -> Result<Option<&'a str>, ApiError> {
    parts
        .headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::bad_request("invalid_header", format!("{name} is not text")))
        })
        .transpose()
}

impl FromRequestParts<AppState> for RequestContext {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let correlation_id = match header(parts, CORRELATION_ID)? {
            Some(v) => Uuid::parse_str(v).map_err(|e| {
                ApiError::bad_request("invalid_header", format!("{CORRELATION_ID}: {e}"))
            })?,
            None => parts
                .extensions
                .get::<CorrelationId>()
                .map(|c| c.0)
                .unwrap_or_else(Uuid::now_v7),
        };
        let actor = match header(parts, ACTOR)? {
            Some(v) => v
                .parse()
                .map_err(|e| ApiError::bad_request("invalid_header", format!("{ACTOR}: {e}")))?,
            None => Actor {
                role: ActorRole::Admin,
                id: "back-office".into(),
            },
        };
        let now = state.write.clock.now();
        let occurred_at = match header(parts, OCCURRED_AT)? {
            Some(v) => {
                let t = DateTime::parse_from_rfc3339(v)
                    .map_err(|e| {
                        ApiError::bad_request("invalid_header", format!("{OCCURRED_AT}: {e}"))
                    })?
                    .with_timezone(&Utc);
                if t > now + chrono::Duration::minutes(5) {
                    return Err(ApiError::invalid(
                        "occurred_in_future",
                        format!("{OCCURRED_AT} is in the future"),
                    ));
                }
                t
            }
            None => now,
        };
        Ok(RequestContext {
            correlation_id,
            command_id: Uuid::now_v7(),
            actor,
            occurred_at,
            idempotency_key: parts
                .extensions
                .get::<IdempotencyKey>()
                .map(|k| k.0.clone()),
        })
    }
}

/// The correlation id the middleware settled on for this request.
#[derive(Debug, Clone, Copy)]
pub struct CorrelationId(pub Uuid);
