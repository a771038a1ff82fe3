//! The API's versioning policy, enforced on the wire.
//!
//! `/api/v1` stays: within it changes only add (routes, optional fields,
//! codes). A breaking change is a new version (`/api/v2/…`) served beside
//! the old one. A route on its way out is listed in [`DEPRECATED`]: from
//! then on every answer carries `Deprecation` (RFC 9745: when it was
//! deprecated), `Sunset` (RFC 8594: when it goes, at least six months
//! later) and a `Link` to its successor, and the OpenAPI document marks it
//! `deprecated`. After its sunset it answers 410 `gone`.

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use crate::error::ApiError;

/// A route on its way out.
#[derive(Debug, Clone, Copy)]
pub struct Deprecated {
    pub method: &'static str,
    pub path: &'static str,
    /// RFC 3339.
    pub since: &'static str,
    /// RFC 3339, at least six months after `since`.
    pub sunset: &'static str,
    /// The route that replaces it.
    pub successor: &'static str,
}

/// Routes on their way out (none yet).
pub const DEPRECATED: &[Deprecated] = &[];

/// The entry of a route, if it is on its way out.
pub fn of(
    table: &'static [Deprecated],
    method: &Method,
    path: &str,
) -> Option<&'static Deprecated> {
    table
        .iter()
        .find(|d| d.method.eq_ignore_ascii_case(method.as_str()) && d.path == path)
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("deprecation dates are RFC 3339")
        .with_timezone(&Utc)
}

/// Adds the headers to a deprecated route's answers; 410 past its sunset.
pub async fn middleware(table: &'static [Deprecated], req: Request, next: Next) -> Response {
    let Some(d) = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|p| of(table, req.method(), p.as_str()))
    else {
        return next.run(req).await;
    };
    let (since, sunset) = (at(d.since), at(d.sunset));
    let mut resp = if Utc::now() >= sunset {
        ApiError::new(
            axum::http::StatusCode::GONE,
            "gone",
            format!(
                "this route was retired on {}; use {}",
                d.sunset, d.successor
            ),
        )
        .into_response()
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("@{}", since.timestamp())) {
        h.insert("deprecation", v);
    }
    if let Ok(v) = HeaderValue::from_str(&sunset.format("%a, %d %b %Y %H:%M:%S GMT").to_string()) {
        h.insert("sunset", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("<{}>; rel=\"successor-version\"", d.successor)) {
        h.insert("link", v);
    }
    resp
}
