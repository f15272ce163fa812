//! Upstream HTTP connections of one endpoint, pooled on hyper's connection API.
//!
//! HTTP/1.1: a stack of idle connections; a connection goes back when its response
//! body has been read to the end. HTTP/2: one shared multiplexed connection. A
//! request that hyper hands back unsent (the connection closed under it) is sent
//! again on a fresh connection, so keep-alive races never surface as errors.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weft_model::policy::PoolLimits;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::io::UpstreamIo;
use crate::target::Target;
use crate::tls::Originate;

/// Why a request did not get a response from the upstream.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The TCP connection could not be made (refused, unreachable, DNS failure).
    #[error("connection failure: {0}")]
    Connect(String),
    /// The TCP connection took longer than the connect timeout.
    #[error("connection timeout after {0:?}")]
    ConnectTimeout(Duration),
    /// The upstream refused the HTTP/2 stream before processing it.
    #[error("stream refused by upstream")]
    RefusedStream,
    /// The connection failed before any byte of the request was written.
    #[error("connection reset before the request was sent: {0}")]
    ResetBeforeRequest(String),
    /// The connection failed after the request was (at least partly) sent.
    #[error("connection reset after the request was sent: {0}")]
    Reset(String),
    /// A reused keep-alive connection closed without a byte of response: the upstream
    /// closed it as idle while the request was on its way (the keep-alive race).
    #[error("reused connection closed before any response: {0}")]
    Stale(String),
    /// The client's request body broke off (a bad chunk, a reset) while it was sent on:
    /// the client's fault, answered 400, never retried.
    #[error("the request body from the client failed: {0}")]
    RequestBody(String),
}

impl SendError {
    /// True when the upstream provably never saw the request, so any request may be retried.
    pub fn never_reached_upstream(&self) -> bool {
        !matches!(
            self,
            SendError::Reset(_) | SendError::Stale(_) | SendError::RequestBody(_)
        )
    }
}

/// What a pooled connection carries as request bodies: the proxy's
/// [`crate::http::body::Body`]. Generic so the pool sits below the body type (whose
/// upstream variant holds a [`Checkout`]) rather than beside it.
pub trait RequestBody:
    http_body::Body<Data = bytes::Bytes, Error = hyper::Error> + Send + Unpin + 'static
{
}

impl<B> RequestBody for B where
    B: http_body::Body<Data = bytes::Bytes, Error = hyper::Error> + Send + Unpin + 'static
{
}

/// The connections of one endpoint, sending request bodies of type `B`.
#[derive(Debug)]
pub struct Pool<B>(Arc<Inner<B>>);

impl<B> Default for Pool<B> {
    fn default() -> Self {
        Pool(Arc::new(Inner {
            idle_h1: Mutex::default(),
            h2: Mutex::default(),
            open: Default::default(),
            streams: Mutex::default(),
        }))
    }
}

impl<B> Clone for Pool<B> {
    fn clone(&self) -> Self {
        Pool(self.0.clone())
    }
}

#[derive(Debug)]
struct Inner<B> {
    idle_h1: Mutex<Vec<Conn<B>>>,
    h2: Mutex<Option<(Security, http2::SendRequest<B>)>>,
    /// Connections whose task is still running.
    open: std::sync::atomic::AtomicU64,
    /// HTTP/2 stream slots (`maxConcurrentStreams`) and their count.
    streams: Mutex<Option<(u32, Arc<tokio::sync::Semaphore>)>>,
}

/// How a pooled connection is secured: a connection is only reused for requests that
/// want the same (a PeerAuthentication or DestinationRule change takes effect on the
/// next request; a certificate renewal keeps the open connections).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    Plain,
    /// TLS under the cluster TLS settings numbered so ([`Originate::settings`]).
    Tls(u64),
}

impl Security {
    fn of(tls: Option<&Originate>) -> Self {
        match tls {
            None => Security::Plain,
            Some(t) => Security::Tls(t.settings),
        }
    }
}

/// An HTTP/1.1 connection and what its limits need to know.
#[derive(Debug)]
struct Conn<B> {
    sender: http1::SendRequest<B>,
    security: Security,
    /// Requests sent on it.
    uses: u32,
    opened: Instant,
    idle_since: Instant,
}

/// Hands an HTTP/1.1 connection back to its pool when the response body is done.
#[derive(Debug)]
pub struct Checkout<B> {
    pool: Pool<B>,
    conn: Option<Conn<B>>,
    /// `maxRequestsPerConnection` (1 disables keep-alive).
    max_uses: Option<u32>,
    /// `maxConnectionDuration`.
    max_age: Option<Duration>,
}

impl<B> Checkout<B> {
    /// Returns the connection to the pool (the body was read to the end), unless it is
    /// closed or has reached its request count or its age limit.
    pub fn release(mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let worn = self.max_uses.is_some_and(|m| conn.uses >= m)
            || self.max_age.is_some_and(|a| conn.opened.elapsed() >= a);
        if conn.sender.is_closed() || worn {
            return;
        }
        conn.idle_since = Instant::now();
        if let Ok(mut idle) = self.pool.0.idle_h1.lock() {
            idle.push(conn);
        }
    }
}

impl<B: RequestBody> Pool<B> {
    /// Waits for one of `max` stream slots of the endpoint's HTTP/2 connection.
    pub async fn stream_slot(&self, max: u32) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let slots = {
            let mut guard = self.0.streams.lock().ok()?;
            match &*guard {
                Some((n, s)) if *n == max => s.clone(),
                _ => {
                    let s = Arc::new(tokio::sync::Semaphore::new(max as usize));
                    *guard = Some((max, s.clone()));
                    s
                }
            }
        };
        slots.acquire_owned().await.ok()
    }

    /// Open connections (HTTP/1.1 and HTTP/2).
    pub fn open(&self) -> u64 {
        self.0.open.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts a connection task while it runs.
    fn track<F: std::future::Future + Send + 'static>(
        &self,
        conn: F,
    ) -> impl std::future::Future<Output = F::Output> + Send + 'static
    where
        F::Output: Send,
    {
        let inner = self.0.clone();
        inner
            .open
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async move {
            let out = conn.await;
            inner
                .open
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            out
        }
    }

    /// Idle HTTP/1.1 connections.
    pub fn idle(&self) -> usize {
        self.0.idle_h1.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// Sends `req` over HTTP/2 or HTTP/1.1. For HTTP/1.1 the returned [`Checkout`]
    /// must be released once the response body has ended.
    pub async fn send(
        &self,
        target: &Target,
        http2: bool,
        req: Request<B>,
        limits: &PoolLimits,
        tls: Option<&Originate>,
    ) -> Result<(Response<Incoming>, Option<Checkout<B>>), SendError> {
        if http2 {
            self.send_h2(target, req, limits, tls)
                .await
                .map(|r| (r, None))
        } else {
            self.send_h1(target, req, limits, tls).await
        }
    }

    async fn send_h1(
        &self,
        target: &Target,
        mut req: Request<B>,
        limits: &PoolLimits,
        tls: Option<&Originate>,
    ) -> Result<(Response<Incoming>, Option<Checkout<B>>), SendError> {
        let security = Security::of(tls);
        // Reuse idle connections (checked first: closed, idle too long or too old ones are
        // dropped) while they hand the request back unsent; then dial.
        loop {
            let idle = self.0.idle_h1.lock().ok().and_then(|mut v| v.pop());
            let (mut conn, fresh) = match idle {
                Some(c)
                    if !c.sender.is_closed()
                        && c.security == security
                        && c.idle_since.elapsed() < limits.http_idle_timeout
                        && limits
                            .max_connection_duration
                            .is_none_or(|a| c.opened.elapsed() < a) =>
                {
                    (c, false)
                }
                Some(_) => continue,
                None => {
                    // Boxed, as every dial below: dialing (TCP, TLS, the handshake) happens
                    // once per connection, and inline its state would be moved with every
                    // request's future.
                    let sender = Box::pin(connect_h1(self, target, limits, tls)).await?;
                    let now = Instant::now();
                    (
                        Conn {
                            sender,
                            security,
                            uses: 0,
                            opened: now,
                            idle_since: now,
                        },
                        true,
                    )
                }
            };
            let sender = &mut conn.sender;
            if sender.ready().await.is_err() {
                if fresh {
                    return Err(SendError::ResetBeforeRequest(
                        "connection closed before use".into(),
                    ));
                }
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    conn.uses += 1;
                    let checkout = Checkout {
                        pool: self.clone(),
                        conn: Some(conn),
                        max_uses: limits.max_requests_per_connection,
                        max_age: limits.max_connection_duration,
                    };
                    return Ok((resp, Some(checkout)));
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if !fresh => req = unsent,
                    Some(_) => return Err(SendError::ResetBeforeRequest(e.error().to_string())),
                    None if e.error().is_user() => {
                        return Err(SendError::RequestBody(e.error().to_string()));
                    }
                    None if !fresh && closed_under_us(e.error()) => {
                        return Err(SendError::Stale(e.error().to_string()));
                    }
                    None => return Err(SendError::Reset(e.error().to_string())),
                },
            }
        }
    }

    async fn send_h2(
        &self,
        target: &Target,
        mut req: Request<B>,
        limits: &PoolLimits,
        tls: Option<&Originate>,
    ) -> Result<Response<Incoming>, SendError> {
        let security = Security::of(tls);
        let shared = self
            .0
            .h2
            .lock()
            .ok()
            .and_then(|g| g.clone())
            .filter(|(s, conn)| *s == security && !conn.is_closed())
            .map(|(_, conn)| conn);
        let mut tried_shared = shared.is_some();
        let mut sender = match shared {
            Some(s) => s,
            None => Box::pin(self.dial_h2(target, limits, tls)).await?,
        };
        loop {
            if sender.ready().await.is_err() {
                if !tried_shared {
                    return Err(SendError::ResetBeforeRequest(
                        "connection closed before use".into(),
                    ));
                }
                tried_shared = false;
                sender = Box::pin(self.dial_h2(target, limits, tls)).await?;
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok(resp),
                Err(mut e) => {
                    let refused = is_refused_stream(e.error());
                    match e.take_message() {
                        Some(unsent) if tried_shared => {
                            req = unsent;
                            tried_shared = false;
                            sender = Box::pin(self.dial_h2(target, limits, tls)).await?;
                        }
                        Some(_) if refused => return Err(SendError::RefusedStream),
                        Some(_) => {
                            return Err(SendError::ResetBeforeRequest(e.error().to_string()));
                        }
                        None if refused => return Err(SendError::RefusedStream),
                        None if e.error().is_user() => {
                            return Err(SendError::RequestBody(e.error().to_string()));
                        }
                        None => return Err(SendError::Reset(e.error().to_string())),
                    }
                }
            }
        }
    }

    async fn dial_h2(
        &self,
        target: &Target,
        limits: &PoolLimits,
        tls: Option<&Originate>,
    ) -> Result<http2::SendRequest<B>, SendError> {
        let stream = connect_pooled(target, limits, tls).await?;
        let mut builder = http2::Builder::new(TokioExecutor::new());
        if let Some(k) = &limits.http2_keepalive {
            // Envoy's connection_keepalive pings whether or not streams are open.
            builder
                .timer(TokioTimer::new())
                .keep_alive_interval(k.interval)
                .keep_alive_while_idle(true);
            if let Some(timeout) = k.timeout {
                builder.keep_alive_timeout(timeout);
            }
        }
        let (sender, conn) = builder
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| SendError::Connect(format!("HTTP/2 handshake: {e}")))?;
        tokio::spawn(self.track(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream HTTP/2 connection ended");
            }
        }));
        if let Ok(mut slot) = self.0.h2.lock() {
            *slot = Some((Security::of(tls), sender.clone()));
        }
        Ok(sender)
    }
}

/// True when a connection ended under a request before any response: the peer closed
/// or reset it (on a reused connection, the idle keep-alive race).
fn closed_under_us(e: &hyper::Error) -> bool {
    if e.is_incomplete_message() || e.is_closed() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return matches!(
                io.kind(),
                ConnectionReset | BrokenPipe | ConnectionAborted | UnexpectedEof
            );
        }
        source = s.source();
    }
    false
}

/// True when an error (or its cause) is an HTTP/2 REFUSED_STREAM.
fn is_refused_stream(e: &hyper::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h2) = s.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        source = s.source();
    }
    false
}

/// Opens a TCP connection under a cluster's pool settings (connect timeout, keepalive).
pub async fn connect_with(target: &Target, limits: &PoolLimits) -> Result<TcpStream, SendError> {
    let stream = connect(target, limits.connect_timeout).await?;
    if let Some(k) = &limits.tcp_keepalive {
        let mut ka = socket2::TcpKeepalive::new();
        if let Some(t) = k.time {
            ka = ka.with_time(t);
        }
        if let Some(i) = k.interval {
            ka = ka.with_interval(i);
        }
        #[cfg(target_os = "linux")]
        if let Some(p) = k.probes {
            ka = ka.with_retries(p);
        }
        if let Err(e) = socket2::SockRef::from(&stream).set_tcp_keepalive(&ka) {
            tracing::debug!(error = %e, "setting TCP keepalive failed");
        }
    }
    Ok(stream)
}

/// Opens a TCP connection to `target` within `timeout`.
pub async fn connect(target: &Target, timeout: Duration) -> Result<TcpStream, SendError> {
    let attempt = async {
        match target {
            Target::Socket(addr) => TcpStream::connect(addr).await,
            Target::Host(host, port) => TcpStream::connect((host.as_str(), *port)).await,
        }
    };
    let stream = tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| SendError::ConnectTimeout(timeout))?
        .map_err(|e| SendError::Connect(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Opens a connection under a cluster's pool settings (keepalive) and, with `tls`,
/// completes the TLS handshake within the connect timeout.
async fn connect_pooled(
    target: &Target,
    limits: &PoolLimits,
    tls: Option<&Originate>,
) -> Result<UpstreamIo, SendError> {
    let stream = connect_with(target, limits).await?;
    secure(stream, tls, limits.connect_timeout).await
}

/// Connects to `target` and, with `tls`, completes the TLS handshake, each within
/// `timeout`: the one way tunnels, TCP proxying and health checks reach an upstream.
pub async fn connect_secured(
    target: &Target,
    timeout: Duration,
    tls: Option<&Originate>,
) -> Result<UpstreamIo, SendError> {
    let stream = connect(target, timeout).await?;
    secure(stream, tls, timeout).await
}

/// Completes the TLS handshake `tls` asks for within `timeout` (plaintext without it).
pub async fn secure(
    stream: TcpStream,
    tls: Option<&Originate>,
    timeout: Duration,
) -> Result<UpstreamIo, SendError> {
    let Some(tls) = tls else {
        return Ok(UpstreamIo::Plain(stream));
    };
    let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
    let handshake = connector.connect(tls.server_name.clone(), stream);
    match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(s)) => Ok(UpstreamIo::Tls(Box::new(s))),
        Ok(Err(e)) => Err(SendError::Connect(format!("TLS error: {e}"))),
        Err(_) => Err(SendError::ConnectTimeout(timeout)),
    }
}

async fn connect_h1<B: RequestBody>(
    pool: &Pool<B>,
    target: &Target,
    limits: &PoolLimits,
    tls: Option<&Originate>,
) -> Result<http1::SendRequest<B>, SendError> {
    let stream = connect_pooled(target, limits, tls).await?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| SendError::Connect(format!("HTTP/1.1 handshake: {e}")))?;
    tokio::spawn(pool.track(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream HTTP/1.1 connection ended");
        }
    }));
    Ok(sender)
}
