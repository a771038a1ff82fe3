//! `Idempotency-Key`: the same key with the same request returns the first
//! response without running the command again; the same key with another
//! request is refused. A key is claimed before the command runs, so two
//! concurrent requests with one key never both run: the second is told the
//! first is in progress. A 5xx is not remembered (the claim is dropped), so
//! the client may retry it.
//!
//! After a crash the truth is recovered, never guessed: the claim names its
//! process, the command writes the key into its events (in the same commit),
//! and a claim whose process is gone is taken over by the next request with
//! the key. If the log holds events with the key, the dead request's command
//! committed and its answer is rebuilt from them (`Idempotent-Replayed:
//! true`); if not, it did not commit, and the command runs now. A keyed
//! command runs in its own task, so a client that hangs up does not cut it
//! short between its commit and its answer.

use axum::body::{to_bytes, Body};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use store::Claim;

use crate::dto::CommandResponse;
use crate::error::ApiError;
use crate::extract::IdempotencyKey;
use crate::{AppState, MAX_BODY_BYTES};

pub const HEADER: &str = "idempotency-key";
/// What a key must look like: 1 to 255 visible ASCII characters.
pub const KEY_PATTERN: &str = "^[!-~]{1,255}$";
pub const REPLAYED: &str = "idempotent-replayed";

fn replay(status: u16, body: String) -> Response {
    let mut resp = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    resp.headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    // A replayed 401 (a sign-in that failed) carries its challenge too.
    if resp.status() == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer realm="freshledger""#),
        );
    }
    resp
}

/// The answer a dead request's command would have given, rebuilt from the
/// events it committed; `None` when it committed nothing.
async fn recovered(
    state: &AppState,
    key: &str,
    success: u16,
) -> Result<Option<(u16, String)>, ApiError> {
    let events = state.write.store.events_of_idempotency_key(key).await?;
    let Some(last) = events.last() else {
        return Ok(None);
    };
    let body = CommandResponse {
        stream_type: last.stream_type.clone(),
        stream_id: last.stream_id.clone(),
        stream_version: last.stream_version,
        events_appended: events.len(),
        position: Some(last.global_position),
    };
    let body = serde_json::to_string(&body).expect("responses serialize");
    Ok(Some((success, body)))
}

async fn settle(state: &AppState, key: &str, status: StatusCode, body: &str) {
    let store = &state.write.store;
    let r = if status.is_server_error() {
        store.release_idempotency_key(key).await
    } else {
        store
            .complete_idempotency_key(key, status.as_u16(), body)
            .await
    };
    if let Err(e) = r {
        tracing::error!(key, error = %e, "could not record idempotent response");
    }
}

pub async fn middleware(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // Keys apply to the routes that write (a read is safe to repeat; an
    // unknown route or method is refused whatever its headers). Requests
    // without a key, most of them, pass without a look at the route table.
    let writes = |req: &Request| {
        matches!(*req.method(), Method::POST | Method::PUT)
            && req
                .extensions()
                .get::<MatchedPath>()
                .is_some_and(|p| crate::ok_status(req.method(), p.as_str()).is_some())
    };
    let Some(key) = req.headers().get(HEADER).filter(|_| writes(&req)) else {
        return next.run(req).await;
    };
    let key = match key.to_str() {
        Ok(k) if (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()) => {
            k.to_string()
        }
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
    // Who asks is part of the request: the same key from another subject
    // is a different request, never a replay of someone else's answer.
    // (Routes that write all require a subject; none is "anonymous".)
    h.update([0]);
    let subject = parts
        .extensions
        .get::<identity::Principal>()
        .map(|p| p.actor().to_string())
        .unwrap_or_else(|| "anonymous".into());
    h.update(subject.as_bytes());
    let hash: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();

    let success = parts
        .extensions
        .get::<MatchedPath>()
        .and_then(|p| crate::ok_status(&parts.method, p.as_str()))
        .unwrap_or(200);
    let claim = state.write.store.claim_idempotency_key(&key, &hash).await;
    match claim {
        Err(e) => ApiError::from(e).into_response(),
        Ok(Claim::Done {
            request_hash: h, ..
        })
        | Ok(Claim::Busy { request_hash: h })
            if h != hash =>
        {
            ApiError::invalid(
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request",
            )
            .into_response()
        }
        Ok(Claim::Busy { .. }) => ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_request_in_progress",
            "a request with this Idempotency-Key is still running; retry shortly",
        )
        .into_response(),
        Ok(Claim::Done { status, body, .. }) => replay(status, body),
        Ok(claim @ (Claim::Mine | Claim::TakenOver)) => {
            if claim == Claim::TakenOver {
                match recovered(&state, &key, success).await {
                    Err(e) => return e.into_response(),
                    Ok(Some((status, body))) => {
                        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                        settle(&state, &key, code, &body).await;
                        return replay(status, body);
                    }
                    // It never committed: run it now.
                    Ok(None) => {}
                }
            }
            let mut parts = parts;
            parts.extensions.insert(IdempotencyKey(key.clone()));
            // Its own task: a client hanging up must not cut the command
            // short between its commit and the record of its answer. It
            // stays in the request's span (its trace goes into the events).
            let span = tracing::Span::current();
            let run = tokio::spawn(tracing::Instrument::instrument(
                async move {
                    let resp = next
                        .run(Request::from_parts(parts, Body::from(bytes)))
                        .await;
                    let (parts, body) = resp.into_parts();
                    let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
                    settle(&state, &key, parts.status, &String::from_utf8_lossy(&bytes)).await;
                    Response::from_parts(parts, Body::from(bytes))
                },
                span,
            ));
            match run.await {
                Ok(resp) => resp,
                Err(e) => {
                    ApiError::internal(format!("the request's task failed: {e}")).into_response()
                }
            }
        }
    }
}
