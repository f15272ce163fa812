//! What keeps slow, idle and flooding clients from holding a listener: a deadline for a
//! request's headers, an idle timeout per connection, a cap on a request's header bytes
//! and on HTTP/2 streams, and at most `max_connections` open connections per listener.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Most bytes of a request's headers (Envoy's `max_request_headers_kb` default, 60 KiB);
/// more is answered `431`.
pub const MAX_REQUEST_HEADER_BYTES: usize = 60 * 1024;

/// Most concurrent HTTP/2 streams a client may open on one connection.
pub const MAX_CONCURRENT_STREAMS: u32 = 1024;

/// The limits of one listener's downstream connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a request's headers may take to arrive, from their first byte (HTTP/1.1).
    /// A client slower than that is disconnected.
    pub header_timeout: Duration,
    /// A connection with no bytes either way for this long is closed (Envoy's
    /// `idle_timeout` default: one hour).
    pub idle_timeout: Duration,
    /// Most connections open at once on each listener; `None`: no limit. A connection
    /// over it is closed as soon as it is accepted, and counted.
    pub max_connections: Option<usize>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(3600),
            max_connections: None,
        }
    }
}

/// What one connection has been doing, shared by its IO (which records bytes), its
/// request handler (which marks requests) and its watchdog ([`watch`]).
#[derive(Debug)]
pub struct Activity {
    since: Instant,
    /// When a byte last moved, in milliseconds since `since`.
    last: AtomicU64,
    /// When the current request head's first byte came, in milliseconds since `since`,
    /// plus one; 0 while no head is being read.
    head: AtomicU64,
    /// Between a request's head and its response (its body bytes start no head).
    in_request: AtomicBool,
    /// Heads are timed (HTTP/1 until an upgrade; never for HTTP/2).
    time_heads: AtomicBool,
    /// The last response leaves the connection open for another request (HTTP/1.1
    /// keep-alive, no `Connection: close` either way), so it may be handed back idle.
    reusable: AtomicBool,
    /// Being handed back: the IO's shutdown leaves the socket open.
    handing_back: AtomicBool,
    /// Wakes the watchdog when a head starts.
    head_started: tokio::sync::Notify,
}

impl Activity {
    /// Activity starting now; request heads timed when `time_heads`.
    pub fn new(time_heads: bool) -> Arc<Activity> {
        Arc::new(Activity {
            since: Instant::now(),
            last: AtomicU64::new(0),
            head: AtomicU64::new(0),
            in_request: AtomicBool::new(false),
            time_heads: AtomicBool::new(time_heads),
            reusable: AtomicBool::new(false),
            handing_back: AtomicBool::new(false),
            head_started: tokio::sync::Notify::new(),
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn at(&self, millis: u64) -> Instant {
        self.since + Duration::from_millis(millis)
    }

    fn read(&self) {
        let now = self.now();
        self.last.store(now, Ordering::Relaxed);
        if self.time_heads.load(Ordering::Relaxed)
            && !self.in_request.load(Ordering::Relaxed)
            && self.head.load(Ordering::Relaxed) == 0
        {
            self.head.store(now + 1, Ordering::Relaxed);
            self.head_started.notify_one();
        }
    }

    fn wrote(&self) {
        self.last.store(self.now(), Ordering::Relaxed);
    }

    /// A request's head is complete.
    pub fn request_started(&self) {
        self.in_request.store(true, Ordering::Relaxed);
        self.head.store(0, Ordering::Relaxed);
    }

    /// Its response is on its way; after `101 Switching Protocols` the bytes are a tunnel's.
    /// `reusable`: the connection stays open for another request after it.
    pub fn request_answered(&self, upgraded: bool, reusable: bool) {
        if upgraded {
            self.time_heads.store(false, Ordering::Relaxed);
        }
        self.reusable
            .store(reusable && !upgraded, Ordering::Relaxed);
        self.in_request.store(false, Ordering::Relaxed);
    }

    /// When a byte last moved.
    pub fn last_moved(&self) -> Instant {
        self.at(self.last.load(Ordering::Relaxed))
    }

    /// The cut due by `now`, else when one next could be.
    pub fn deadline(&self, limits: &ConnectionLimits, now: Instant) -> Result<Instant, Cut> {
        let idle_at = self.last_moved() + limits.idle_timeout;
        let head = self.head.load(Ordering::Relaxed);
        let head_at = (head != 0).then(|| self.at(head - 1) + limits.header_timeout);
        if head_at.is_some_and(|at| at <= now) {
            return Err(Cut::SlowHead);
        }
        if idle_at <= now {
            return Err(Cut::Idle);
        }
        Ok(head_at.map_or(idle_at, |h| h.min(idle_at)))
    }

    /// Whether the connection is between requests and the last response left it open:
    /// hyper may end it without a byte lost.
    pub fn may_hand_back(&self) -> bool {
        self.head.load(Ordering::Relaxed) == 0
            && !self.in_request.load(Ordering::Relaxed)
            && self.reusable.load(Ordering::Relaxed)
            && self.time_heads.load(Ordering::Relaxed)
    }

    /// Whether the connection carries a tunnel now (after `101 Switching Protocols`).
    pub fn upgraded(&self) -> bool {
        !self.time_heads.load(Ordering::Relaxed)
    }

    /// The connection is being handed back: its IO's shutdown keeps the socket open.
    pub fn hand_back(&self) {
        self.handing_back.store(true, Ordering::Relaxed);
    }

    /// Resolves when a request head starts (while none is under way).
    pub async fn head_started(&self) {
        if self.head.load(Ordering::Relaxed) == 0 {
            self.head_started.notified().await;
        } else {
            std::future::pending().await
        }
    }
}

/// A connection that records when it last read or wrote.
#[derive(Debug)]
pub struct Active<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I> Active<I> {
    /// `inner`, recording into `activity`.
    pub fn new(inner: I, activity: Arc<Activity>) -> Active<I> {
        Active { inner, activity }
    }

    /// The connection underneath.
    pub fn into_inner(self) -> I {
        self.inner
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Active<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Active<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.activity.handing_back.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Why the watchdog cut a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// No byte moved for the idle timeout.
    Idle,
    /// A request's head took longer than the header timeout.
    SlowHead,
}

/// Runs `conn` until it ends (`None`), or cuts it when it has been idle for the idle
/// timeout or a request head has taken longer than the header timeout.
pub async fn watch<F: std::future::Future>(
    conn: F,
    activity: &Activity,
    limits: ConnectionLimits,
) -> Option<Cut> {
    tokio::pin!(conn);
    loop {
        let wake = match activity.deadline(&limits, Instant::now()) {
            Ok(at) => at,
            Err(cut) => return Some(cut),
        };
        tokio::select! {
            _ = &mut conn => return None,
            _ = tokio::time::sleep_until(wake) => {}
            _ = activity.head_started() => {}
        }
    }
}
