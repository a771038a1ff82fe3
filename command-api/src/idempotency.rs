//! `Idempotency-Key`: the same key with the same request returns the first
//! response without running the command again; the same key with another
//! request is refused. A key is claimed (a row inserted) before the command
//! runs, so two concurrent requests with one key never both run: the second
//! is told the first is in progress. A 5xx is not remembered (the claim is
//! dropped), so the client may retry it.

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use store::sql;

use crate::error::ApiError;
use crate::{AppState, MAX_BODY_BYTES};

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED: &str = "idempotent-replayed";

enum Claim {
    Mine,
    Done {
        hash: String,
        status: u16,
        body: String,
    },
    InProgress {
        hash: String,
    },
}

async fn claim(state: &AppState, key: &str, hash: &str) -> Result<Claim, ApiError> {
    let inserted = sql::exec_pool(
        &state.write.store,
        "INSERT INTO idempotency_keys (key, request_hash) VALUES (?, ?) ON CONFLICT DO NOTHING",
        &[key.into(), hash.into()],
    )
    .await?;
    if inserted == 1 {
        return Ok(Claim::Mine);
    }
    let row = sql::fetch(
        &state.write.store,
        "SELECT request_hash, status, response_body FROM idempotency_keys WHERE key = ?",
        &[key.into()],
    )
    .await?
    .pop();
    let text = |r: &sql::JsonRow, k: &str| r.get(k).and_then(|v| v.as_str()).map(str::to_string);
    Ok(match row {
        Some(r) => {
            let stored = text(&r, "request_hash").unwrap_or_default();
            match (r["status"].as_u64(), text(&r, "response_body")) {
                (Some(status), Some(body)) => Claim::Done {
                    hash: stored,
                    status: status as u16,
                    body,
                },
                _ => Claim::InProgress { hash: stored },
            }
        }
        // Released between our insert and select (a 5xx): treat as busy.
        None => Claim::InProgress {
            hash: hash.to_string(),
        },
    })
}

async fn settle(state: &AppState, key: &str, status: StatusCode, body: &str) {
    let r = if status.is_server_error() {
        sql::exec_pool(
            &state.write.store,
            "DELETE FROM idempotency_keys WHERE key = ?",
            &[key.into()],
        )
        .await
    } else {
        sql::exec_pool(
            &state.write.store,
            "UPDATE idempotency_keys SET status = ?, response_body = ? WHERE key = ?",
            &[i64::from(status.as_u16()).into(), body.into(), key.into()],
        )
        .await
    };
    if let Err(e) = r {
        tracing::error!(key, error = %e, "could not record idempotent response");
    }
}

pub async fn middleware(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(key) = req.headers().get(HEADER) else {
        return next.run(req).await;
    };
    let key = match key.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= 255 => k.to_string(),
        _ => {
            return ApiError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
            .into_response()
        }
    };
    let (parts, body) = req.into_parts();
    let bytes = match to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("bodies are at most {MAX_BODY_BYTES} bytes"),
            )
            .into_response()
        }
    };
    let mut h = Sha256::new();
    h.update(parts.method.as_str());
    h.update([0]);
    h.update(parts.uri.path());
    h.update([0]);
    h.update(&bytes);
    let hash: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();

    match claim(&state, &key, &hash).await {
        Err(e) => e.into_response(),
        Ok(Claim::Done { hash: h, .. }) | Ok(Claim::InProgress { hash: h }) if h != hash => {
            ApiError::invalid(
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request",
            )
            .into_response()
        }
        Ok(Claim::InProgress { .. }) => ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_request_in_progress",
            "a request with this Idempotency-Key is still running; retry shortly",
        )
        .into_response(),
        Ok(Claim::Done { status, body, .. }) => {
            let mut resp = (
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response();
            resp.headers_mut()
                .insert(REPLAYED, HeaderValue::from_static("true"));
            resp
        }
        Ok(Claim::Mine) => {
            let resp = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            let (parts, body) = resp.into_parts();
            let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
            settle(&state, &key, parts.status, &String::from_utf8_lossy(&bytes)).await;
            Response::from_parts(parts, Body::from(bytes))
        }
    }
}
