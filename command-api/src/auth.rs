//! Authentication at the edge, authorisation per route.
//!
//! [`authenticate`] runs on every request of the server (REST and
//! GraphQL): it reads `Authorization: Bearer …` and leaves a
//! [`Caller`] in the request. [`authorize`] runs on the command API's
//! routes, before idempotency and the handler: it reads the route's
//! [`Access`] from the route table and answers 401 (with
//! `WWW-Authenticate`) or 403 (with a stable code) before anything is
//! appended. Ownership (a customer's own order, a rider's own delivery, a
//! seller's warehouses) is the handlers' part ([`crate::owner`]).

use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use identity::{Access, AuthError, Caller, Denied, Identity, Principal};

use crate::error::ApiError;

/// Reads the bearer token of every request.
pub async fn authenticate(identity: Identity, mut req: Request, next: Next) -> Response {
    let caller = match req.headers().get(AUTHORIZATION) {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Ok(h) => identity.authenticate(Some(h)).await,
            Err(_) => Err(AuthError::Malformed),
        },
    };
    req.extensions_mut().insert(Caller(caller));
    next.run(req).await
}

/// 401 for a token that did not pass (or none), with the RFC 6750 challenge.
pub fn unauthenticated(e: &AuthError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let mut resp = ApiError::new(status, e.code(), e.to_string()).into_response();
    if status == StatusCode::UNAUTHORIZED {
        if let Ok(v) = HeaderValue::from_str(&e.challenge()) {
            resp.headers_mut().insert(WWW_AUTHENTICATE, v);
        }
    }
    resp
}

fn denied(d: Denied) -> Response {
    match d {
        Denied::Unauthenticated => unauthenticated(&AuthError::Missing),
        d => ApiError::new(
            StatusCode::from_u16(d.status()).unwrap_or(StatusCode::FORBIDDEN),
            d.code(),
            d.message(),
        )
        .into_response(),
    }
}

/// Applies the route table's access rule to the matched route.
pub async fn authorize(mut req: Request, next: Next) -> Response {
    let Some(access) = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|p| crate::access_of(req.method(), p.as_str()))
    else {
        // No route: the fallback answers 404/405.
        return next.run(req).await;
    };
    let caller = req
        .extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or(Caller(Ok(None)));
    let principal = match (access, caller.0) {
        // A public route serves anyone; a token that does not pass is
        // ignored there (signing in with a stale token still works).
        (Access::Public, Ok(p)) => p,
        (Access::Public, Err(_)) => None,
        (_, Err(e)) => return unauthenticated(&e),
        (_, Ok(p)) => p,
    };
    if let Err(d) = access.check(principal.as_ref()) {
        return denied(d);
    }
    if let Some(p) = principal {
        req.extensions_mut().insert(p);
    }
    next.run(req).await
}

/// The signed-in subject of a route that requires one.
pub struct Subject(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Subject {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Subject)
            .ok_or_else(|| unauthenticated(&AuthError::Missing))
    }
}
