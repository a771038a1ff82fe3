//! Rate limits: a generic cell rate (a steady rate and a burst), answered
//! past the limit with 429 `rate_limited` and `Retry-After`.
//!
//! - Every request counts against its client address, and a signed-in
//!   request also against its subject (one person cannot go faster by
//!   spreading over addresses, nor one address by signing in as several).
//! - Sign-in and token routes (`/api/v1/auth/…`) have their own, stricter
//!   limit per address (password guessing), and do not use up the other.
//! - Health probes are never limited.
//!
//! The client address is the connection's peer, or, when the peer is a
//! configured trusted proxy, the nearest address in `X-Forwarded-For` that
//! is not one (a client cannot choose its own key by sending the header to
//! a server that does not sit behind a proxy). Kept in this process by
//! default; shared by every server process through Redis when one is
//! configured, so several replicas enforce one limit.
//!
//! Redis is an optional integration: when it cannot be reached, requests
//! are served (and the failure logged), never refused for it.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use identity::Caller;

use crate::error::ApiError;

/// A steady rate (`cells` per `period`) and a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub cells: u32,
    pub period: Duration,
    pub burst: u32,
}

impl Quota {
    pub fn per_second(cells: u32, burst: u32) -> Quota {
        Quota {
            cells,
            period: Duration::from_secs(1),
            burst,
        }
    }

    pub fn per_minute(cells: u32, burst: u32) -> Quota {
        Quota {
            cells,
            period: Duration::from_secs(60),
            burst,
        }
    }

    /// The time one request's cell takes to come back.
    fn interval(&self) -> Duration {
        self.period / self.cells.max(1)
    }

    fn describe(&self) -> String {
        let per = if self.period.as_secs() == 60 {
            "a minute"
        } else {
            "a second"
        };
        format!("at most {} {per}, bursts of {}", self.cells, self.burst)
    }
}

enum Cells {
    Local(governor::DefaultKeyedRateLimiter<String>),
    Redis {
        conn: redis::aio::ConnectionManager,
        namespace: String,
    },
}

/// One limit: a quota and where its cells are kept.
struct Limiter {
    quota: Quota,
    cells: Cells,
    checks: AtomicU64,
    /// Names the class in Redis keys (`api`, `auth`).
    class: &'static str,
}

/// The limits every request of the server goes through.
pub struct RateLimit {
    general: Option<Limiter>,
    auth: Option<Limiter>,
    trusted: Vec<ipnet::IpNet>,
}

/// Generic cell rate algorithm on Redis's clock, in microseconds: the
/// theoretical arrival time of the next request moves one interval per
/// request; a request that would move it further than the burst allows
/// ahead of now is refused with the wait. KEYS[1]: the client's key;
/// ARGV: interval, burst.
const GCRA: &str = r"
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now_us then tat = now_us end
local next_tat = tat + interval
local ahead = next_tat - now_us
local limit = interval * burst
if ahead > limit then
  return ahead - limit
end
redis.call('SET', KEYS[1], next_tat, 'PX', math.ceil(ahead / 1000) + 1)
return 0
";

impl Limiter {
    fn local(quota: Quota, class: &'static str) -> Option<Limiter> {
        NonZeroU32::new(quota.cells)?;
        let burst = NonZeroU32::new(quota.burst.max(1)).expect("at least 1");
        let q = governor::Quota::with_period(quota.interval())
            .expect("a non-zero interval")
            .allow_burst(burst);
        Some(Limiter {
            quota,
            cells: Cells::Local(governor::RateLimiter::keyed(q)),
            checks: AtomicU64::new(0),
            class,
        })
    }

    /// `None` when `key` may go ahead; otherwise how long it must wait.
    async fn check(&self, key: &str) -> Option<Duration> {
        match &self.cells {
            Cells::Local(limiter) => {
                // Forget clients that have been quiet, now and then.
                if self.checks.fetch_add(1, Ordering::Relaxed) % 10_000 == 9_999 {
                    limiter.retain_recent();
                }
                limiter.check_key(&key.to_string()).err().map(|not_until| {
                    not_until.wait_time_from(governor::clock::Clock::now(limiter.clock()))
                })
            }
            Cells::Redis { conn, namespace } => {
                let interval_us = self.quota.interval().as_micros() as u64;
                let mut conn = conn.clone();
                let wait: Result<u64, _> = redis::Script::new(GCRA)
                    .key(format!("{namespace}:ratelimit:{}:{key}", self.class))
                    .arg(interval_us)
                    .arg(self.quota.burst.max(1))
                    .invoke_async(&mut conn)
                    .await;
                match wait {
                    Ok(0) => None,
                    Ok(us) => Some(Duration::from_micros(us)),
                    Err(e) => {
                        tracing::warn!(error = %e, "rate limit: Redis unreachable; request served");
                        None
                    }
                }
            }
        }
    }
}

impl RateLimit {
    /// Limits kept in this process (`None` when both are off).
    pub fn local(general: Quota, auth: Quota) -> Option<RateLimit> {
        let (general, auth) = (Limiter::local(general, "api"), Limiter::local(auth, "auth"));
        (general.is_some() || auth.is_some()).then_some(RateLimit {
            general,
            auth,
            trusted: Vec::new(),
        })
    }

    /// Limits shared through the Redis at `url`, under `namespace`.
    pub async fn shared(
        general: Quota,
        auth: Quota,
        url: &str,
        namespace: &str,
    ) -> Result<Option<RateLimit>, redis::RedisError> {
        if general.cells == 0 && auth.cells == 0 {
            return Ok(None);
        }
        let client = redis::Client::open(url)?;
        match redis::aio::ConnectionManager::new(client).await {
            Ok(conn) => {
                let redis = |quota: Quota, class| {
                    (quota.cells > 0).then(|| Limiter {
                        quota,
                        cells: Cells::Redis {
                            conn: conn.clone(),
                            namespace: namespace.to_string(),
                        },
                        checks: AtomicU64::new(0),
                        class,
                    })
                };
                Ok(Some(RateLimit {
                    general: redis(general, "api"),
                    auth: redis(auth, "auth"),
                    trusted: Vec::new(),
                }))
            }
            // An optional integration never keeps the server from serving:
            // limits stay in this process until Redis is configured again.
            Err(e) => {
                tracing::warn!(error = %e, "rate limit: Redis unreachable at start; limits kept in this process");
                Ok(Self::local(general, auth))
            }
        }
    }

    /// Proxies (address ranges) whose `X-Forwarded-For` names the client.
    pub fn trusting(mut self, proxies: Vec<ipnet::IpNet>) -> Self {
        self.trusted = proxies;
        self
    }

    /// The client behind a request from `peer`: `peer` itself, unless it is
    /// a trusted proxy; then the nearest `X-Forwarded-For` entry (read from
    /// the right) that is not one.
    fn client(&self, peer: IpAddr, headers: &axum::http::HeaderMap) -> IpAddr {
        let trusted = |ip: &IpAddr| self.trusted.iter().any(|n| n.contains(ip));
        if !trusted(&peer) {
            return peer;
        }
        let hops: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        hops.iter()
            .rev()
            .find(|ip| !trusted(ip))
            .or(hops.first())
            .copied()
            .unwrap_or(peer)
    }
}

fn refuse(wait: Duration, quota: &Quota, whom: &str) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let mut resp = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "too many requests from {whom} ({}); retry in {seconds} s",
            quota.describe()
        ),
    )
    .with_details(serde_json::json!({ "retry_after_seconds": seconds }))
    .into_response();
    resp.headers_mut()
        .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(seconds));
    resp
}

/// Comma-separated addresses and CIDR ranges; the first entry that is
/// neither is the error.
pub fn proxies(list: &str) -> Result<Vec<ipnet::IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<ipnet::IpNet>()
                .or_else(|_| p.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| p.to_string())
        })
        .collect()
}

/// The middleware: probes and the metrics scrape pass; sign-in and token routes count against
/// their address's stricter limit; every other request against its
/// address and its subject.
pub async fn middleware(limit: Arc<RateLimit>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/healthz" || path == "/readyz" || path == "/metrics" {
        return next.run(req).await;
    }
    let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() else {
        return next.run(req).await;
    };
    let client = limit.client(peer.ip(), req.headers());
    if path.starts_with("/api/v1/auth/") {
        if let Some(auth) = &limit.auth {
            if let Some(wait) = auth.check(&format!("ip:{client}")).await {
                return refuse(wait, &auth.quota, "this address to the sign-in routes");
            }
        }
        return next.run(req).await;
    }
    if let Some(general) = &limit.general {
        if let Some(wait) = general.check(&format!("ip:{client}")).await {
            return refuse(wait, &general.quota, "this address");
        }
        let subject = match req.extensions().get::<Caller>() {
            Some(Caller(Ok(Some(p)))) => Some(p.subject),
            _ => None,
        };
        if let Some(subject) = subject {
            if let Some(wait) = general.check(&format!("sub:{subject}")).await {
                return refuse(wait, &general.quota, "this account");
            }
        }
    }
    next.run(req).await
}
