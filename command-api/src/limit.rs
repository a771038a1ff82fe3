//! Rate limits per client address: a generic cell rate (a steady rate per
//! second and a burst), answered past the limit with 429 `rate_limited` and
//! `Retry-After`. The client address is the connection's peer, or, when the
//! peer is a configured trusted proxy, the nearest address in
//! `X-Forwarded-For` that is not one (a client cannot choose its own key by
//! sending the header to a server that does not sit behind a proxy). Kept in this process by default; shared by every server
//! process through Redis when one is configured, so several replicas
//! enforce one limit. Health probes are never limited. Per-subject limits
//! arrive with identity (issue #17) as another key.
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

use crate::error::ApiError;

/// A steady rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub per_second: u32,
    pub burst: u32,
}

enum Cells {
    Local(governor::DefaultKeyedRateLimiter<IpAddr>),
    Redis {
        conn: redis::aio::ConnectionManager,
        namespace: String,
    },
}

/// The limiter every request of the server goes through.
pub struct RateLimit {
    quota: Quota,
    cells: Cells,
    checks: AtomicU64,
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

impl RateLimit {
    /// Limits kept in this process.
    pub fn local(quota: Quota) -> Option<RateLimit> {
        let per_second = NonZeroU32::new(quota.per_second)?;
        let burst = NonZeroU32::new(quota.burst.max(1)).expect("at least 1");
        Some(RateLimit {
            quota,
            cells: Cells::Local(governor::RateLimiter::keyed(
                governor::Quota::per_second(per_second).allow_burst(burst),
            )),
            checks: AtomicU64::new(0),
            trusted: Vec::new(),
        })
    }

    /// Limits shared through the Redis at `url`, under `namespace`.
    pub async fn shared(
        quota: Quota,
        url: &str,
        namespace: &str,
    ) -> Result<Option<RateLimit>, redis::RedisError> {
        if quota.per_second == 0 {
            return Ok(None);
        }
        let client = redis::Client::open(url)?;
        match redis::aio::ConnectionManager::new(client).await {
            Ok(conn) => Ok(Some(RateLimit {
                quota,
                cells: Cells::Redis {
                    conn,
                    namespace: namespace.to_string(),
                },
                checks: AtomicU64::new(0),
                trusted: Vec::new(),
            })),
            // An optional integration never keeps the server from serving:
            // limits stay in this process until Redis is configured again.
            Err(e) => {
                tracing::warn!(error = %e, "rate limit: Redis unreachable at start; limits kept in this process");
                Ok(Self::local(quota))
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

    /// `None` when `ip` may go ahead; otherwise how long it must wait.
    async fn check(&self, ip: IpAddr) -> Option<Duration> {
        match &self.cells {
            Cells::Local(limiter) => {
                // Forget clients that have been quiet, now and then.
                if self.checks.fetch_add(1, Ordering::Relaxed) % 10_000 == 9_999 {
                    limiter.retain_recent();
                }
                limiter.check_key(&ip).err().map(|not_until| {
                    not_until.wait_time_from(governor::clock::Clock::now(limiter.clock()))
                })
            }
            Cells::Redis { conn, namespace } => {
                let interval_us = 1_000_000 / u64::from(self.quota.per_second.max(1));
                let mut conn = conn.clone();
                let wait: Result<u64, _> = redis::Script::new(GCRA)
                    .key(format!("{namespace}:ratelimit:ip:{ip}"))
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

/// The middleware: probes pass; every other request counts against its
/// client address.
pub async fn middleware(limit: Arc<RateLimit>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/healthz" || path == "/readyz" {
        return next.run(req).await;
    }
    let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() else {
        return next.run(req).await;
    };
    let client = limit.client(peer.ip(), req.headers());
    match limit.check(client).await {
        None => next.run(req).await,
        Some(wait) => {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let seconds = seconds.max(1);
            let mut resp = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "too many requests from this address (at most {} a second, bursts of {}); retry in {seconds} s",
                    limit.quota.per_second, limit.quota.burst
                ),
            )
            .with_details(serde_json::json!({ "retry_after_seconds": seconds }))
            .into_response();
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(seconds));
            resp
        }
    }
}
