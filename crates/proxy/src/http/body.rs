//! One body type for everything the proxy sends: streamed from a peer, buffered
//! (so it can be sent again on retry or mirrored), or generated locally.
//! An enum rather than a boxed trait object, so the hot path does not allocate for it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;

use crate::pool::Checkout;

/// Permits of limits a request holds while its response streams (none when no limit is set).
pub type Permits = [Option<tokio::sync::OwnedSemaphorePermit>; 2];

/// A request or response body.
#[derive(Debug)]
pub enum Body {
    /// Streamed from the peer as it arrives.
    Streaming(Incoming),
    /// Fully in memory (replayable by cloning).
    Buffered(Buffered),
    /// An upstream response; its HTTP/1.1 connection goes back to the pool when the body ends.
    Upstream {
        /// The body.
        inner: Incoming,
        /// The connection to give back.
        checkout: Option<Checkout<Body>>,
        /// Limit permits (cluster connection slot, HTTP/2 stream slot), freed when the body is dropped.
        permits: Permits,
    },
    /// The first chunks were read (and kept) before the rest streams on.
    Prefixed {
        /// Chunks already read.
        prefix: VecDeque<Bytes>,
        /// The remainder.
        rest: Incoming,
    },
}

/// A complete body in memory, with its trailers.
#[derive(Debug, Clone, Default)]
pub struct Buffered {
    /// Data chunks, in order.
    pub chunks: VecDeque<Bytes>,
    /// Trailers, if any.
    pub trailers: Option<HeaderMap>,
}

impl Body {
    /// An empty body.
    pub fn empty() -> Self {
        Body::Buffered(Buffered::default())
    }

    /// A body holding `data`.
    pub fn from_bytes(data: impl Into<Bytes>) -> Self {
        let data = data.into();
        let mut chunks = VecDeque::new();
        if !data.is_empty() {
            chunks.push_back(data);
        }
        Body::Buffered(Buffered {
            chunks,
            trailers: None,
        })
    }
}

impl Body {
    /// Wraps an upstream response body; an already finished body releases its connection now.
    pub fn upstream(inner: Incoming, checkout: Option<Checkout<Body>>, permits: Permits) -> Self {
        if inner.is_end_stream() {
            if let Some(c) = checkout {
                c.release();
            }
            return Body::Upstream {
                inner,
                checkout: None,
                permits,
            };
        }
        Body::Upstream {
            inner,
            checkout,
            permits,
        }
    }
}

/// Request body bytes read before the request is forwarded (what an external
/// authorizer's check carries), kept in the request's extensions: whatever sends the
/// request on sends them first ([`request_body`]).
#[derive(Debug, Clone, Default)]
pub struct ReadAhead {
    chunks: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
    /// The whole body was read.
    finished: bool,
}

/// Reads `req`'s body until at least `limit` bytes or its end, keeping what was read in
/// the request. Returns the bytes read (possibly more than `limit`: whole chunks) and
/// whether that is the whole body.
pub async fn read_ahead(
    req: &mut http::Request<Incoming>,
    limit: usize,
) -> Result<(Bytes, bool), hyper::Error> {
    use http_body_util::BodyExt;
    let mut ahead = req
        .extensions_mut()
        .remove::<ReadAhead>()
        .unwrap_or_default();
    let mut size: usize = ahead.chunks.iter().map(Bytes::len).sum();
    while !ahead.finished && size < limit {
        match req.body_mut().frame().await {
            None => ahead.finished = true,
            Some(frame) => match frame?.into_data() {
                Ok(data) => {
                    size += data.len();
                    ahead.chunks.push_back(data);
                }
                Err(frame) => {
                    ahead.trailers = frame.into_trailers().ok();
                    ahead.finished = true;
                }
            },
        }
    }
    if !ahead.finished && req.body().is_end_stream() {
        ahead.finished = true;
    }
    let mut all = bytes::BytesMut::with_capacity(size);
    for c in &ahead.chunks {
        all.extend_from_slice(c);
    }
    let finished = ahead.finished;
    req.extensions_mut().insert(ahead);
    Ok((all.freeze(), finished))
}

/// The body to send for `req`: what was read ahead of it, then the rest as it arrives.
pub fn request_body(req: http::Request<Incoming>) -> Body {
    let (mut parts, incoming) = req.into_parts();
    match parts.extensions.remove::<ReadAhead>() {
        None => Body::Streaming(incoming),
        Some(ahead) if ahead.finished => Body::Buffered(Buffered {
            chunks: ahead.chunks,
            trailers: ahead.trailers,
        }),
        Some(ahead) => Body::Prefixed {
            prefix: ahead.chunks,
            rest: incoming,
        },
    }
}

/// True when `req` has no body left to send.
pub fn request_ended(req: &http::Request<Incoming>) -> bool {
    match req.extensions().get::<ReadAhead>() {
        Some(ahead) if ahead.finished => ahead.chunks.is_empty() && ahead.trailers.is_none(),
        _ => req.body().is_end_stream(),
    }
}

/// Reads `req`'s body into memory when it is at most `limit` bytes. Otherwise returns a
/// body that replays what was read and streams the rest, and `None` as the copy.
pub async fn buffer(
    req: http::Request<Incoming>,
    limit: usize,
) -> Result<(Body, Option<Buffered>), hyper::Error> {
    use http_body_util::BodyExt;
    let (mut parts, mut body) = req.into_parts();
    let ahead = parts.extensions.remove::<ReadAhead>().unwrap_or_default();
    let mut chunks = ahead.chunks;
    if ahead.finished {
        let buffered = Buffered {
            chunks,
            trailers: ahead.trailers,
        };
        return Ok((Body::Buffered(buffered.clone()), Some(buffered)));
    }
    let mut size: usize = chunks.iter().map(Bytes::len).sum();
    loop {
        if size > limit {
            return Ok((
                Body::Prefixed {
                    prefix: chunks,
                    rest: body,
                },
                None,
            ));
        }
        match body.frame().await {
            None => {
                let buffered = Buffered {
                    chunks,
                    trailers: None,
                };
                return Ok((Body::Buffered(buffered.clone()), Some(buffered)));
            }
            Some(frame) => match frame?.into_data() {
                Ok(data) => {
                    size += data.len();
                    chunks.push_back(data);
                }
                Err(frame) => {
                    let trailers = frame.into_trailers().ok();
                    let buffered = Buffered { chunks, trailers };
                    return Ok((Body::Buffered(buffered.clone()), Some(buffered)));
                }
            },
        }
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Body::Streaming(incoming) => Pin::new(incoming).poll_frame(cx),
            Body::Upstream {
                inner, checkout, ..
            } => {
                let polled = Pin::new(&mut *inner).poll_frame(cx);
                // The server may stop polling once `is_end_stream` is true, so check after each frame.
                let ended = match &polled {
                    Poll::Ready(None) => true,
                    Poll::Ready(Some(Ok(frame))) => frame.is_trailers() || inner.is_end_stream(),
                    _ => false,
                };
                if ended {
                    if let Some(c) = checkout.take() {
                        c.release();
                    }
                }
                polled
            }
            Body::Buffered(b) => Poll::Ready(match b.chunks.pop_front() {
                Some(data) => Some(Ok(Frame::data(data))),
                None => b.trailers.take().map(|t| Ok(Frame::trailers(t))),
            }),
            Body::Prefixed { prefix, rest } => match prefix.pop_front() {
                Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                None => Pin::new(rest).poll_frame(cx),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Streaming(incoming) => incoming.is_end_stream(),
            Body::Upstream { inner, .. } => inner.is_end_stream(),
            Body::Buffered(b) => b.chunks.is_empty() && b.trailers.is_none(),
            Body::Prefixed { prefix, rest } => prefix.is_empty() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Streaming(incoming) => incoming.size_hint(),
            Body::Upstream { inner, .. } => inner.size_hint(),
            Body::Buffered(b) => {
                SizeHint::with_exact(b.chunks.iter().map(|c| c.len() as u64).sum())
            }
            Body::Prefixed { prefix, rest } => {
                let head: u64 = prefix.iter().map(|c| c.len() as u64).sum();
                let tail = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(head + tail.lower());
                if let Some(upper) = tail.upper() {
                    hint.set_upper(head + upper);
                }
                hint
            }
        }
    }
}
