//! Sending a request to a cluster: choose an endpoint, send, and retry as the route's
//! policy says, within the per-try and overall timeouts.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::header::HOST;
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri, Version};
use hyper::body::Incoming;
use tokio::time::Instant;
use weft_model::route::RetryPolicy;

use super::body::{Body, Buffered};
use super::local_reply::{LocalReply, Reason};
use super::retry::{TryOutcome, backoff, idempotent, should_retry};
use crate::balancer::PickInput;
use crate::circuit;
use crate::flags::ResponseFlags;
use crate::outlier::{self, Outcome};
use crate::pool::{Checkout, SendError};
use crate::snapshot::{ClusterRuntime, Endpoint};

/// The parts of a request that are sent on every try.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Method.
    pub method: Method,
    /// Authority (Host) sent upstream.
    pub authority: String,
    /// Path and query sent upstream.
    pub path: String,
    /// Headers, hop-by-hop already removed.
    pub headers: HeaderMap,
}

impl Outgoing {
    /// The request as it will be sent upstream, to `authority` and `path` (the request's
    /// own path when `None`); the headers are moved out of `req`.
    pub fn from_request<B>(req: &mut Request<B>, authority: String, path: Option<String>) -> Self {
        let path = path.unwrap_or_else(|| {
            req.uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string()
        });
        Outgoing {
            method: req.method().clone(),
            authority,
            path,
            headers: std::mem::take(req.headers_mut()),
        }
    }
}

/// A request body that can be sent once, or again on every try.
#[derive(Debug)]
pub enum Payload {
    /// In memory: every try sends a copy.
    Replayable(Buffered),
    /// Streams: only one try can send it.
    Once(Option<Body>),
}

impl Payload {
    fn take(&mut self) -> Option<Body> {
        match self {
            Payload::Replayable(b) => Some(Body::Buffered(b.clone())),
            Payload::Once(b) => b.take(),
        }
    }
}

/// A response from the upstream, with where it came from.
#[derive(Debug)]
pub struct Upstream {
    /// The response.
    pub response: Response<Incoming>,
    /// Its HTTP/1.1 connection, to release when the body ends.
    pub checkout: Option<Checkout<Body>>,
    /// The connection slot (`maxConnections`), held until the response body ends.
    pub permits: super::body::Permits,
    /// The endpoint that answered.
    pub endpoint: Arc<Endpoint>,
    /// Flags collected on the way (URX when the retry budget ran out on an upstream answer).
    pub flags: ResponseFlags,
}

/// How to send: timeouts and retries.
#[derive(Debug, Clone, Copy)]
pub struct SendPolicy<'a> {
    /// Retry policy.
    pub retry: &'a RetryPolicy,
    /// Deadline of the whole exchange (route timeout).
    pub deadline: Option<Instant>,
    /// Use HTTP/2 toward the upstream.
    pub http2: bool,
    /// Consistent-hash key of the request.
    pub hash: Option<u64>,
    /// The workload certificate, for mesh mTLS.
    pub identity: Option<&'a crate::identity::IdentityCell>,
}

/// Sends `out` with the body of `req` as is, in the client's protocol, once: no retries, no
/// timeout (inbound and passthrough traffic, as Istio configures those).
pub async fn send_once(
    cluster: &ClusterRuntime,
    out: &Outgoing,
    req: Request<Incoming>,
    identity: Option<&crate::identity::IdentityCell>,
) -> Result<Upstream, LocalReply> {
    let http2 = req.version() == Version::HTTP_2;
    let payload = if super::body::request_ended(&req) {
        Payload::Replayable(Default::default())
    } else {
        Payload::Once(Some(super::body::request_body(req)))
    };
    let policy = SendPolicy {
        retry: &RetryPolicy::disabled(),
        deadline: None,
        http2,
        hash: None,
        identity,
    };
    send(cluster, out, payload, policy).await
}

/// Sends `out` to `cluster`, retrying as `policy` allows, within the cluster's limits.
pub async fn send(
    cluster: &ClusterRuntime,
    out: &Outgoing,
    mut payload: Payload,
    policy: SendPolicy<'_>,
) -> Result<Upstream, LocalReply> {
    let Some(_request) = circuit::admit_request(&cluster.state, &cluster.limits) else {
        return Err(overflow(cluster));
    };
    let max_tries = 1 + policy.retry.attempts;
    // Keep-alive races (a reused connection closed under an idempotent request) are sent
    // again on another connection without using up a retry, a few times at most.
    let mut stale_left = 3u32;
    let mut tried: Vec<usize> = Vec::new();
    let mut last_failure: Option<LocalReply> = None;
    let mut _retry: Option<circuit::Held> = None;
    let mut attempt = 0;
    while attempt < max_tries {
        let this = attempt;
        attempt += 1;
        if this > 0 {
            let wait = backoff(policy.retry, this - 1, |max| fastrand::u64(..max.max(1)));
            if policy.deadline.is_some_and(|d| Instant::now() + wait >= d) {
                break;
            }
            tokio::time::sleep(wait).await;
        }
        let Some(index) = pick(cluster, &tried, policy) else {
            return Err(Reason::NoHealthyUpstream(cluster.model.name.clone()).into());
        };
        let Some(body) = payload.take() else { break };
        let endpoint = cluster.endpoints[index].clone();
        tried.push(index);
        // Waiting for a connection or stream slot counts against the route's deadline.
        let Some(slot) = by_deadline(
            policy.deadline,
            circuit::acquire_slot(&cluster.state, &cluster.limits),
        )
        .await
        else {
            return Err(timed_out());
        };
        let Ok(permit) = slot else {
            return Err(overflow(cluster));
        };
        // `maxConcurrentStreams`: streams in flight on the endpoint's HTTP/2 connection.
        let stream = match cluster
            .model
            .policy
            .pool
            .max_concurrent_streams
            .filter(|_| policy.http2)
        {
            Some(n) => match by_deadline(policy.deadline, endpoint.pool.stream_slot(n)).await {
                Some(slot) => slot,
                None => return Err(timed_out()),
            },
            None => None,
        };
        let purpose = if policy.http2 {
            crate::tls::Purpose::Http2
        } else {
            crate::tls::Purpose::Http1
        };
        let tls = match cluster.tls.originate(
            endpoint.mesh_tls.load(Ordering::Relaxed),
            policy.identity,
            purpose,
        ) {
            Ok(tls) => tls,
            Err(e) => return Err(Reason::Tls(e.to_string()).into()),
        };
        let per_try = per_try_timeout(policy.retry.per_try_timeout, policy.deadline);
        let req = build_request(out, body, policy.http2);
        endpoint.stats.requests.fetch_add(1, Ordering::Relaxed);
        let in_flight = InFlight::enter(&endpoint.stats.active);
        let sent = endpoint.pool.send(
            &endpoint.target,
            policy.http2,
            req,
            &cluster.model.policy.pool,
            tls.as_deref(),
        );
        let result = match per_try {
            Some(t) => tokio::time::timeout(t, sent).await.ok(),
            None => Some(sent.await),
        };
        drop(in_flight);
        let more = attempt < max_tries;
        match result {
            Some(Ok((response, checkout))) => {
                let status = response.status().as_u16();
                if status >= 500 {
                    endpoint.stats.failures.fetch_add(1, Ordering::Relaxed);
                }
                observe(cluster, &endpoint, Outcome::Status(status));
                let outcome = TryOutcome::Response {
                    status,
                    grpc_status: grpc_status(response.headers()),
                    rate_limited: response.headers().contains_key("x-envoy-ratelimited"),
                };
                let retry = should_retry(policy.retry, outcome, &out.method);
                let mut flags = if retry && this > 0 {
                    ResponseFlags::UPSTREAM_RETRY_LIMIT_EXCEEDED
                } else {
                    ResponseFlags::NONE
                };
                if retry && more && matches!(payload, Payload::Replayable(_)) {
                    match circuit::admit_retry(&cluster.state, &cluster.limits) {
                        Some(held) => {
                            _retry = Some(held);
                            last_failure = None;
                            continue;
                        }
                        None => flags |= ResponseFlags::UPSTREAM_RETRY_LIMIT_EXCEEDED,
                    }
                }
                return Ok(Upstream {
                    response,
                    checkout,
                    permits: [permit, stream],
                    endpoint,
                    flags,
                });
            }
            Some(Err(SendError::Stale(reason)))
                if stale_left > 0
                    && idempotent(&out.method)
                    && matches!(payload, Payload::Replayable(_)) =>
            {
                tracing::debug!(endpoint = %endpoint.key, %reason, "keep-alive race; sending again");
                stale_left -= 1;
                attempt = this;
                tried.pop();
                continue;
            }
            // The client's body broke off: the client's fault, not the endpoint's.
            Some(Err(e @ SendError::RequestBody(_))) => {
                return Err(Reason::Upstream {
                    endpoint: endpoint.key.clone(),
                    error: e,
                }
                .into());
            }
            Some(Err(e)) => {
                endpoint.stats.failures.fetch_add(1, Ordering::Relaxed);
                observe(cluster, &endpoint, Outcome::LocalFailure);
                let retry = should_retry(policy.retry, TryOutcome::Failed(&e), &out.method);
                let mut failure = LocalReply::from(Reason::Upstream {
                    endpoint: endpoint.key.clone(),
                    error: e,
                });
                let admitted = retry
                    && more
                    && circuit::admit_retry(&cluster.state, &cluster.limits)
                        .map(|h| _retry = Some(h))
                        .is_some();
                if !admitted {
                    if retry || this > 0 {
                        failure = failure.with_flags(ResponseFlags::UPSTREAM_RETRY_LIMIT_EXCEEDED);
                    }
                    return Err(failure);
                }
                last_failure = Some(failure);
            }
            None => {
                endpoint.stats.failures.fetch_add(1, Ordering::Relaxed);
                observe(cluster, &endpoint, Outcome::LocalFailure);
                let overall = policy.deadline.is_some_and(|d| Instant::now() >= d);
                let retry =
                    !overall && should_retry(policy.retry, TryOutcome::TimedOut, &out.method);
                let failure = LocalReply::from(Reason::Timeout);
                let admitted = retry
                    && more
                    && circuit::admit_retry(&cluster.state, &cluster.limits)
                        .map(|h| _retry = Some(h))
                        .is_some();
                if !admitted {
                    return Err(failure);
                }
                last_failure = Some(failure);
            }
        }
    }
    Err(last_failure.unwrap_or_else(timed_out))
}

fn overflow(cluster: &ClusterRuntime) -> LocalReply {
    Reason::Overflow(cluster.model.name.clone()).into()
}

/// Feeds outlier detection with how a try ended, ejecting the endpoint when due.
fn observe(cluster: &ClusterRuntime, endpoint: &Endpoint, outcome: Outcome) {
    let Some(policy) = &cluster.model.policy.outlier else {
        return;
    };
    if !endpoint.health.record(policy, outcome) {
        return;
    }
    let ejected = cluster
        .endpoints
        .iter()
        .filter(|e| e.health.ejected())
        .count();
    if outlier::may_eject(policy, cluster.endpoints.len(), ejected)
        && endpoint
            .health
            .eject(policy.base_ejection_time, policy.interval)
    {
        cluster.state.ejections.fetch_add(1, Ordering::Relaxed);
        tracing::info!(cluster = %cluster.model.name, endpoint = %endpoint.key, ejections = endpoint.health.ejection_count(), "endpoint ejected");
    }
}

/// Chooses an endpoint among the available ones (not ejected, not failing its health
/// check), avoiding those already tried when the policy says so. In panic (too few
/// available, per `minHealthPercent`) every endpoint is eligible again.
fn pick(cluster: &ClusterRuntime, tried: &[usize], policy: SendPolicy<'_>) -> Option<usize> {
    let unhealthy = cluster.unhealthy()?;
    let avoid_previous = policy.retry.retry_ignore_previous_hosts;
    let excluded = |i: usize| unhealthy(i) || (avoid_previous && tried.contains(&i));
    let input = PickInput {
        hash: policy.hash,
        random: fastrand::u64(..),
        active: &|i| cluster.active(i),
        excluded: &excluded,
    };
    cluster.balancer.pick(&input).or_else(|| {
        cluster.balancer.pick(&PickInput {
            excluded: &unhealthy,
            ..input
        })
    })
}

fn per_try_timeout(per_try: Option<Duration>, deadline: Option<Instant>) -> Option<Duration> {
    let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    match (per_try, remaining) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `grpc-status` of a trailers-only response.
pub fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The request for one try: origin-form with `Host` for HTTP/1.1, absolute for HTTP/2.
pub fn build_request(out: &Outgoing, body: Body, http2: bool) -> Request<Body> {
    let mut req = Request::new(body);
    *req.method_mut() = out.method.clone();
    *req.headers_mut() = out.headers.clone();
    if http2 {
        *req.version_mut() = Version::HTTP_2;
        *req.uri_mut() =
            Uri::try_from(format!("http://{}{}", out.authority, out.path)).unwrap_or_default();
        req.headers_mut().remove(HOST);
    } else {
        *req.version_mut() = Version::HTTP_11;
        *req.uri_mut() = Uri::try_from(out.path.as_str()).unwrap_or_else(|_| Uri::from_static("/"));
        if let Ok(host) = HeaderValue::from_str(&out.authority) {
            req.headers_mut().insert(HOST, host);
        }
    }
    req
}

/// `wait`'s output, or `None` when `deadline` passes first.
async fn by_deadline<T>(deadline: Option<Instant>, wait: impl Future<Output = T>) -> Option<T> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, wait).await.ok(),
        None => Some(wait.await),
    }
}

/// The route's deadline passed: `504 UT`, as Envoy answers.
fn timed_out() -> LocalReply {
    Reason::Timeout.into()
}

/// One request in flight to an endpoint (least-request balancing reads the count); the
/// count comes down when the try ends, also when the client cancels and the handler is
/// dropped mid-send.
struct InFlight<'a>(&'a std::sync::atomic::AtomicU64);

impl<'a> InFlight<'a> {
    fn enter(count: &'a std::sync::atomic::AtomicU64) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
