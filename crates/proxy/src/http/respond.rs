//! The last stage: an upstream's response made the downstream's. One path for every
//! response that came from an upstream (routed, inbound, passthrough): the downstream's
//! protocol version, hop-by-hop headers dropped, response flags this proxy's own, then the
//! route's edits (header operations, CORS), and a body that gives the connection back to
//! its pool when it ends.

use http::{HeaderValue, Response, Version};
use weft_model::route::{Cors, HeaderOps};

use super::body::Body;
use super::forward::Upstream;
use super::{cors, headers};

/// What a route changes on its responses.
#[derive(Debug, Default)]
pub struct Edits<'a> {
    /// Header operations, the destination's then the route's.
    pub headers: [Option<&'a HeaderOps>; 2],
    /// The route's CORS policy and the request's allowed origin.
    pub cors: Option<(&'a Cors, HeaderValue)>,
}

/// The downstream response for `up`, with `edits` applied.
pub fn respond(up: Upstream, edits: Edits<'_>) -> Response<Body> {
    let (mut parts, incoming) = up.response.into_parts();
    // The downstream connection's protocol decides the response's, not the upstream's.
    parts.version = Version::default();
    headers::strip_hop_by_hop(&mut parts.headers, false);
    // Flags are this proxy's own: never what the upstream (or its proxy) said.
    parts.headers.remove(headers::RESPONSE_FLAGS);
    for ops in edits.headers.into_iter().flatten() {
        headers::apply(&mut parts.headers, ops);
    }
    if let Some((policy, origin)) = edits.cors {
        cors::on_response(policy, origin, &mut parts.headers);
    }
    // Flags weft set on an upstream answer (URX when retries ran out) are shown too.
    if let (false, Ok(v)) = (
        up.flags.is_empty(),
        HeaderValue::from_str(&up.flags.to_string()),
    ) {
        parts.headers.insert(headers::RESPONSE_FLAGS, v);
    }
    Response::from_parts(parts, Body::upstream(incoming, up.checkout, up.permits))
}
