//! Extractors that turn every rejection into an `ApiError`, and the request
//! context (correlation, causation, actor, occurred-at) every command carries.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use event_schemas::{Actor, EventMetadata};
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
        let axum::Json(mut v) = axum::Json::<serde_json::Value>::from_request(req, state).await?;
        integers(&mut v);
        if let Some(at) = nil_uuid_in(&v, String::new()) {
            return Err(nil_uuid(&at));
        }
        serde_path_to_error::deserialize(v)
            .map(ApiJson)
            .map_err(|e| {
                let at = e.path().to_string();
                let message = if at == "." {
                    e.inner().to_string()
                } else {
                    format!("{at}: {}", e.inner())
                };
                ApiError::invalid("invalid_body", message)
            })
    }
}

fn is_nil_uuid(s: &str) -> bool {
    Uuid::parse_str(s).is_ok_and(|u| u.is_nil())
}

fn nil_uuid(at: &str) -> ApiError {
    ApiError::invalid(
        "nil_uuid",
        format!("{at}: the nil UUID (all zeros) is not an id; use a UUID v7"),
    )
    .with_details(serde_json::json!({ "field": at }))
}

/// Every number in this API is an integer, and JSON Schema counts `2.0`
/// as one: a number with a zero fraction is read as that integer, up to
/// 2^53 (where a float still holds every integer exactly). Anything else
/// is left for the body's type to refuse.
fn integers(v: &mut serde_json::Value) {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    match v {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64() {
                if f.fract() == 0.0 && f.abs() <= EXACT {
                    *v = serde_json::Value::from(f as i64);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integers),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(integers),
        _ => {}
    }
}

/// Where in a body a nil UUID stands, if anywhere: no id may be all zeros.
fn nil_uuid_in(v: &serde_json::Value, at: String) -> Option<String> {
    match v {
        serde_json::Value::String(s) if is_nil_uuid(s) => {
            Some(if at.is_empty() { ".".into() } else { at })
        }
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, x)| nil_uuid_in(x, format!("{at}[{i}]"))),
        serde_json::Value::Object(fields) => fields.iter().find_map(|(k, x)| {
            nil_uuid_in(
                x,
                if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                },
            )
        }),
        _ => None,
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
        if let Ok(params) = axum::extract::RawPathParams::from_request_parts(parts, state).await {
            if let Some((name, _)) = params.iter().find(|(_, v)| is_nil_uuid(v)) {
                return Err(nil_uuid(name));
            }
        }
        Ok(ApiPath(v))
    }
}

/// Who asks, in which flow, and when it happened.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub correlation_id: Uuid,
    /// This request's own id: the causation id of the events it appends.
    pub command_id: Uuid,
    /// The authenticated subject: the actor of every event it appends.
    pub principal: identity::Principal,
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

/// A header's text; an empty header is an absent one.
fn header<'a>(parts: &'a Parts, name: &str) -> Result<Option<&'a str>, ApiError> {
    parts
        .headers
        .get(name)
        .filter(|v| !v.is_empty())
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
        // The actor is who signed in, never what a header claims.
        if header(parts, ACTOR)?.is_some() {
            return Err(ApiError::bad_request(
                "actor_header_not_accepted",
                format!("{ACTOR} is not accepted: the actor is the subject of the access token"),
            ));
        }
        let principal = parts
            .extensions
            .get::<identity::Principal>()
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    axum::http::StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "sign in first: send Authorization: Bearer <access token>",
                )
            })?;
        let actor = principal.actor();
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
                if t < now - state.backdate_window {
                    return Err(ApiError::invalid(
                        "occurred_too_long_ago",
                        format!(
                            "{OCCURRED_AT} may date a command at most {} hours back",
                            state.backdate_window.num_hours()
                        ),
                    )
                    .with_details(serde_json::json!({
                        "backdate_window_hours": state.backdate_window.num_hours()
                    })));
                }
                t
            }
            None => now,
        };
        Ok(RequestContext {
            correlation_id,
            command_id: Uuid::now_v7(),
            principal,
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
