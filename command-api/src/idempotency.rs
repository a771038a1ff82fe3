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
use store::Backend;

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
    let inserted = match state.store.backend() {
        Backend::Postgres(p) => sqlx::query("INSERT INTO idempotency_keys (key, request_hash) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(key).bind(hash).execute(p).await.map(|r| r.rows_affected()),
        Backend::Sqlite(p) => sqlx::query("INSERT INTO idempotency_keys (key, request_hash) VALUES (?, ?) ON CONFLICT DO NOTHING")
            .bind(key).bind(hash).execute(p).await.map(|r| r.rows_affected()),
    }
    .map_err(|e| ApiError::from(store::StoreError::from(e)))?;
    if inserted == 1 {
        return Ok(Claim::Mine);
    }
    let row: Option<(String, Option<i32>, Option<String>)> = match state.store.backend() {
        Backend::Postgres(p) => sqlx::query_as(
            "SELECT request_hash, status::int, response_body FROM idempotency_keys WHERE key = $1",
        )
        .bind(key)
        .fetch_optional(p)
        .await,
        Backend::Sqlite(p) => {
            sqlx::query_as(
                "SELECT request_hash, status, response_body FROM idempotency_keys WHERE key = ?",
            )
            .bind(key)
            .fetch_optional(p)
            .await
        }
    }
    .map_err(|e| ApiError::from(store::StoreError::from(e)))?;
    Ok(match row {
        Some((hash, Some(status), Some(body))) => Claim::Done {
            hash,
            status: status as u16,
            body,
        },
        Some((hash, _, _)) => Claim::InProgress { hash },
        // Released between our insert and select (a 5xx): treat as busy.
        None => Claim::InProgress {
            hash: hash.to_string(),
        },
    })
}

async fn settle(state: &AppState, key: &str, status: StatusCode, body: &str) {
    let r = if status.is_server_error() {
        match state.store.backend() {
            Backend::Postgres(p) => sqlx::query("DELETE FROM idempotency_keys WHERE key = $1")
                .bind(key)
                .execute(p)
                .await
                .map(|r| r.rows_affected()),
            Backend::Sqlite(p) => sqlx::query("DELETE FROM idempotency_keys WHERE key = ?")
                .bind(key)
                .execute(p)
                .await
                .map(|r| r.rows_affected()),
        }
    } else {
        let code = status.as_u16() as i32;
        match state.store.backend() {
            Backend::Postgres(p) => sqlx::query(
                "UPDATE idempotency_keys SET status = $2, response_body = $3 WHERE key = $1",
            )
            .bind(key)
            .bind(code as i16)
            .bind(body)
            .execute(p)
            .await
            .map(|r| r.rows_affected()),
            Backend::Sqlite(p) => sqlx::query(
                "UPDATE idempotency_keys SET status = ?, response_body = ? WHERE key = ?",
            )
            .bind(code)
            .bind(body)
            .bind(key)
            .execute(p)
            .await
            .map(|r| r.rows_affected()),
        }
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
