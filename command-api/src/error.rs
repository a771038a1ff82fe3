//! One error shape for every failure: `{"code", "message", "details"}` with
//! the status the kind of failure deserves. A 5xx is a bug or an outage.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use domain::{DomainError, ErrorKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use store::{CommandError, StoreError};

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    /// Stable, machine-readable, snake_case.
    pub code: String,
    /// For humans; may change.
    pub message: String,
    /// Structured context (the field at fault, the state, the limits).
    #[serde(default)]
    pub details: serde_json::Value,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                code: code.into(),
                message: message.into(),
                details: serde_json::Value::Null,
            },
        }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.body.details = details;
        self
    }

    pub fn not_found(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn invalid(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = %self.body.code, message = %self.body.message, "request failed");
        }
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let mut resp = (self.status, Json(self.body)).into_response();
        // Every 401 carries a challenge (RFC 9110); the edge's own 401s
        // replace it with a more precise one.
        if unauthorized {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static(r#"Bearer realm="freshledger""#),
            );
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_outage() {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            )
        } else {
            ApiError::internal(e.to_string())
        }
    }
}

/// The status a kind of domain error is answered with.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl<E> From<CommandError<E>> for ApiError
where
    E: DomainError + serde::Serialize,
{
    fn from(e: CommandError<E>) -> Self {
        match e {
            CommandError::Rejected(err) => {
                debug_assert!(
                    E::CODES.contains(&(err.code(), err.kind())),
                    "{} ({:?}) is missing from its error's CODES",
                    err.code(),
                    err.kind()
                );
                let status = status_of(err.kind());
                ApiError::new(status, err.code(), err.to_string()).with_details(details_of(&err))
            }
            CommandError::Conflict { attempts } => ApiError::new(
                StatusCode::CONFLICT,
                "concurrent_modification",
                format!("the stream kept changing; gave up after {attempts} attempts; retry"),
            ),
            CommandError::Store(s) => s.into(),
        }
    }
}

/// Body errors: syntax is 400, a well-formed body that breaks the contract
/// (missing or unknown field, wrong type, invalid value) is 422.
impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match &r {
            JsonRejection::JsonSyntaxError(_) => {
                ApiError::bad_request("malformed_json", r.body_text())
            }
            JsonRejection::JsonDataError(_) => ApiError::invalid("invalid_body", r.body_text()),
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send Content-Type: application/json",
            ),
            JsonRejection::BytesRejection(_) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    r.body_text(),
                )
            }
            _ => ApiError::new(r.status(), "bad_request", r.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::bad_request("invalid_id", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request("invalid_query", r.body_text())
    }
}

/// A domain error's fields, one level deep: the error enums serialise as
/// `{"error": <its code>, "details": {...}}`, and the code is already the
/// answer's `code`.
fn details_of<E: serde::Serialize>(err: &E) -> serde_json::Value {
    match serde_json::to_value(err) {
        Ok(serde_json::Value::Object(mut m)) => m.remove("details").unwrap_or_default(),
        Ok(other) => other,
        Err(_) => serde_json::Value::Null,
    }
}
