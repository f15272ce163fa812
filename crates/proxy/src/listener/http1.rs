//! Plaintext HTTP/1.1 downstream connections, served by hyper only while requests flow.
//!
//! hyper holds an 8 KiB read buffer, an 8 KiB write buffer and its dispatcher for as long
//! as it serves a connection. Here a connection waiting for a request holds only its
//! socket: the request's head is waited for with `peek` until the kernel holds all of it
//! (or as much as a head may be), and only then does hyper take the connection. A
//! keep-alive connection quiet for [`HAND_BACK_AFTER`] after its last response is taken
//! back from hyper (its buffers freed, the socket left open) and waits again. The
//! listener's limits hold in both states: the header timeout from a head's first byte,
//! the idle timeout from the last byte moved, and draining closes a waiting connection at
//! once and lets a served one finish its request.

use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use hyper::body::Body as _;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::limits::{self, Activity, ConnectionLimits, Cut};
use crate::detect::HeadRefusal;
use crate::http::call::Downstream;
use crate::http::proxy::HttpProxy;
use crate::io::Rewound;

/// How long a keep-alive connection stays with hyper after its last byte moved, before it
/// is taken back to wait for its next request holding only its socket. A hand-back and the
/// next request's new hyper session cost about 25,000 instructions (bench/callgrind with
/// no delay: 81.7k instead of 56.8k per HTTP/1.1 request), so a busy connection keeps its
/// session; a quarter of a second of quiet makes that cost nothing next to the wait. Not
/// zero: the quiet period is also when the connection is looked at again.
pub const HAND_BACK_AFTER: Duration = Duration::from_millis(250);

/// Serves HTTP/1.1 on `stream` until it ends. `wait` first: the client's bytes looked like
/// HTTP/1 (a gateway answers anything else as a malformed request at once).
pub(super) async fn serve(
    stream: TcpStream,
    down: Downstream,
    http: Arc<HttpProxy>,
    mut drain: watch::Receiver<bool>,
    limits: ConnectionLimits,
    wait: bool,
) {
    let telemetry = http.telemetry().clone();
    let mut io = Rewound::new(Vec::new(), stream);
    let mut last = Instant::now();
    let mut wait = wait;
    loop {
        if wait {
            match wait_for_head(io.get_ref(), last, &limits, &mut drain).await {
                Waited::Ready => {}
                Waited::Refused(refusal) => {
                    super::refuse_head(io.into_parts().1, refusal).await;
                    return;
                }
                Waited::Cut(cut) => {
                    super::report_cut(&telemetry, down.peer, cut, &limits);
                    return;
                }
                Waited::Over => return,
            }
        }
        // Boxed: hyper's state is allocated for a session and freed when it ends.
        let session = Box::pin(session(io, down, http.clone(), &mut drain, limits));
        match session.await {
            Some((back, moved)) => {
                // Bytes hyper had read but not used are read again first; with them
                // there is nothing to peek at, so hyper takes them at once.
                wait = back.is_rewound();
                io = back;
                last = moved;
            }
            None => return,
        }
    }
}

/// What waiting for a request's head came to.
#[derive(Debug)]
enum Waited {
    /// A whole head is in the kernel's buffer (or as much as a head may be, or the client
    /// closed its side after part of one): hyper takes it from here.
    Ready,
    /// A head Envoy's codec refuses (answered, then closed).
    Refused(HeadRefusal),
    /// Cut by the listener's limits.
    Cut(Cut),
    /// The client closed, the socket failed, or the listener drains: nothing to answer.
    Over,
}

/// Waits, holding nothing but the socket, until a request's head has arrived. `last`:
/// when a byte last moved on the connection.
async fn wait_for_head(
    stream: &TcpStream,
    mut last: Instant,
    limits: &ConnectionLimits,
    drain: &mut watch::Receiver<bool>,
) -> Waited {
    let mut head_from: Option<Instant> = None;
    loop {
        let deadline = match head_from {
            Some(from) => from + limits.header_timeout,
            None => last + limits.idle_timeout,
        };
        if deadline <= Instant::now() {
            return Waited::Cut(if head_from.is_some() {
                Cut::SlowHead
            } else {
                Cut::Idle
            });
        }
        let ready = tokio::select! {
            ready = stream.ready(Interest::READABLE) => match ready {
                Ok(ready) => ready,
                Err(_) => return Waited::Over,
            },
            _ = tokio::time::sleep_until(deadline) => continue,
            _ = drain.wait_for(|draining| *draining) => return Waited::Over,
        };
        let mut partial = false;
        let peeked = stream.try_io(Interest::READABLE, || match peek_head(stream)? {
            // Not all of it yet: readiness is cleared, so the next wait is for new bytes.
            Peeked::Partial => {
                partial = true;
                Err(std::io::ErrorKind::WouldBlock.into())
            }
            done => Ok(done),
        });
        match peeked {
            Ok(Peeked::Complete(None)) => return Waited::Ready,
            Ok(Peeked::Complete(Some(refusal))) => return Waited::Refused(refusal),
            Ok(Peeked::Closed) => return Waited::Over,
            Ok(Peeked::Partial) => unreachable!("a partial head is a WouldBlock"),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if partial {
                    last = Instant::now();
                    head_from.get_or_insert(last);
                    // The client closed its side mid-head: hyper answers what it sent.
                    if ready.is_read_closed() {
                        return Waited::Ready;
                    }
                }
            }
            Err(_) => return Waited::Over,
        }
    }
}

/// What the kernel holds of a connection's next request.
#[derive(Debug)]
enum Peeked {
    /// Its whole head (or the most a head may be), and whether Envoy's codec refuses it.
    Complete(Option<HeadRefusal>),
    /// Part of its head.
    Partial,
    /// Nothing, and the client closed its side.
    Closed,
}

/// Peeks at what the kernel holds (never more than a head may be: the rest is hyper's
/// to read and refuse).
fn peek_head(stream: &TcpStream) -> std::io::Result<Peeked> {
    let mut storage = [MaybeUninit::<u8>::uninit(); limits::MAX_REQUEST_HEADER_BYTES + 1];
    let mut buf = ReadBuf::uninit(&mut storage);
    let mut cx = Context::from_waker(Waker::noop());
    match stream.poll_peek(&mut cx, &mut buf) {
        Poll::Ready(Ok(0)) => Ok(Peeked::Closed),
        Poll::Ready(Ok(_)) => {
            let seen = buf.filled();
            Ok(if head_complete(seen) {
                Peeked::Complete(crate::detect::head_refusal(seen))
            } else if seen.len() > limits::MAX_REQUEST_HEADER_BYTES {
                Peeked::Complete(None)
            } else {
                Peeked::Partial
            })
        }
        Poll::Ready(Err(e)) => Err(e),
        Poll::Pending => Err(std::io::ErrorKind::WouldBlock.into()),
    }
}

/// Whether `seen` holds a whole head: an empty line ends it (a bare LF also ends a line
/// for hyper's parser).
fn head_complete(seen: &[u8]) -> bool {
    seen.windows(2)
        .enumerate()
        .any(|(i, w)| w == b"\n\n" || (w == b"\n\r" && seen.get(i + 2) == Some(&b'\n')))
}

/// Whether a `Connection` header asks to close.
fn asks_close(headers: &http::HeaderMap) -> bool {
    headers.get_all(http::header::CONNECTION).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

/// hyper serves `io` until the connection ends (`None`) or, quiet after a keep-alive
/// response, is handed back: the socket (with any bytes hyper had read and not used) and
/// when a byte last moved.
async fn session(
    io: Rewound<TcpStream>,
    down: Downstream,
    http: Arc<HttpProxy>,
    drain: &mut watch::Receiver<bool>,
    limits: ConnectionLimits,
) -> Option<(Rewound<TcpStream>, Instant)> {
    let telemetry = http.telemetry().clone();
    let activity = Activity::new(true);
    let marks = activity.clone();
    let handle = move |req: http::Request<hyper::body::Incoming>| {
        let (http, marks) = (http.clone(), marks.clone());
        // Handed back only after a request hyper has read whole (no body): what is left
        // of a body is never taken for the next head.
        let keep_alive = req.version() == http::Version::HTTP_11
            && req.body().is_end_stream()
            && !asks_close(req.headers());
        async move {
            marks.request_started();
            let resp = http.handle(down, None, req).await;
            let upgraded = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
            marks.request_answered(upgraded, keep_alive && !asks_close(resp.headers()));
            Ok::<_, std::convert::Infallible>(resp)
        }
    };
    let io = TokioIo::new(limits::Active::new(io, activity.clone()));
    let mut conn = hyper::server::conn::http1::Builder::new()
        .max_buf_size(limits::MAX_REQUEST_HEADER_BYTES)
        // Also when a whole oversized head arrives in one read (the buffer's cap is
        // checked only while a head is incomplete).
        .max_header_size(limits::MAX_REQUEST_HEADER_BYTES)
        .serve_connection(io, service_fn(handle))
        .with_upgrades();
    let (mut draining, mut handing_back) = (false, false);
    let served = loop {
        let now = Instant::now();
        let mut wake = match activity.deadline(&limits, now) {
            Ok(at) => at,
            Err(cut) => {
                super::report_cut(&telemetry, down.peer, cut, &limits);
                return None;
            }
        };
        if !draining && !handing_back && !activity.upgraded() {
            let at = activity.last_moved() + HAND_BACK_AFTER;
            if at <= now && activity.may_hand_back() {
                // hyper is between requests: it ends the connection without shutting
                // the socket, and gives it back.
                handing_back = true;
                activity.hand_back();
                telemetry.metrics.handed_back();
                Pin::new(&mut conn).graceful_shutdown();
                continue;
            }
            // Not quiet long enough yet, or not now (a request under way, a body hyper
            // may not have read whole): looked at again after another quiet period. No
            // wake-up per request: a busy connection only moves the timer.
            wake = wake.min(if at > now { at } else { now + HAND_BACK_AFTER });
        }
        tokio::select! {
            served = &mut conn => break served,
            _ = tokio::time::sleep_until(wake) => {}
            _ = activity.head_started() => {}
            _ = drain.wait_for(|draining| *draining), if !draining => {
                draining = true;
                Pin::new(&mut conn).graceful_shutdown();
            }
        }
    };
    if let Err(e) = served {
        tracing::debug!(peer = %down.peer, error = %e, "downstream connection ended");
        return None;
    }
    if !handing_back {
        return None;
    }
    let parts = conn.into_parts()?;
    let (mut unread, stream) = parts.io.into_inner().into_inner().into_parts();
    unread.extend_from_slice(&parts.read_buf);
    Some((Rewound::new(unread, stream), activity.last_moved()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_complete_at_its_empty_line() {
        assert!(head_complete(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(head_complete(b"GET / HTTP/1.1\nHost: x\n\n"));
        assert!(head_complete(b"GET / HTTP/1.1\r\nHost: x\n\r\nbody"));
        assert!(!head_complete(b"GET / HTTP/1.1\r\nHost: x\r\n"));
        assert!(!head_complete(b"GET / HTTP/1.1\r\nHost: x\r\n\r"));
        assert!(!head_complete(b""));
    }

    #[test]
    fn connection_close_is_found_among_tokens() {
        let mut h = http::HeaderMap::new();
        assert!(!asks_close(&h));
        h.append(
            http::header::CONNECTION,
            http::HeaderValue::from_static("keep-alive"),
        );
        assert!(!asks_close(&h));
        h.append(
            http::header::CONNECTION,
            http::HeaderValue::from_static("Upgrade, CLOSE"),
        );
        assert!(asks_close(&h));
    }
}
