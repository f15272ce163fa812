//! Header handling shared by both directions: hop-by-hop removal, request ids,
//! forwarding headers, the route's set/add/remove operations, and reading a request's
//! authority and headers for routing and authorization.

use std::time::Duration;

use http::Request;
use http::header::{self, HOST, HeaderMap, HeaderName, HeaderValue};
use weft_model::matcher::RequestHeaders;
use weft_model::route::HeaderOps;

/// The request id header Envoy and Istio use.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Names the response flags on replies weft generates itself.
pub const RESPONSE_FLAGS: HeaderName = HeaderName::from_static("x-weft-response-flags");

const HOP_BY_HOP: [HeaderName; 5] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers (and those named in `Connection`); `te: trailers` is kept,
/// since gRPC needs it. For an upgrade, `Connection: upgrade` and `Upgrade` are kept.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // One pass over the names (standard names compare as numbers) finds which are there;
    // only those are removed, each removal being a hashed lookup.
    let mut present = [false; 5];
    let (mut te, mut proxy_authorization) = (false, false);
    for n in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == n) {
            present[i] = true;
        } else if n == header::TE {
            te = true;
        } else if n == header::PROXY_AUTHORIZATION {
            proxy_authorization = true;
        }
    }
    // Headers `Connection` names, besides those removed anyway ("close" names none).
    if present[0] {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| {
                !t.eq_ignore_ascii_case("close")
                    && !HOP_BY_HOP
                        .iter()
                        .any(|h| t.eq_ignore_ascii_case(h.as_str()))
            })
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .filter(|n| n != header::TE && n != header::PROXY_AUTHORIZATION)
            .collect();
        for n in named {
            headers.remove(n);
        }
    }
    for (n, there) in HOP_BY_HOP.iter().zip(present) {
        if !there || (upgrade && (n == header::CONNECTION || n == header::UPGRADE)) {
            continue;
        }
        headers.remove(n);
    }
    if te
        && headers
            .get(header::TE)
            .is_some_and(|v| v.as_bytes() != b"trailers")
    {
        headers.remove(header::TE);
    }
    if proxy_authorization {
        headers.remove(header::PROXY_AUTHORIZATION);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// True for an HTTP/1.1 upgrade request (WebSocket and the like).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// True for a gRPC request.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// Sets `x-request-id` when the request has none (a random UUID v4, as Envoy does).
pub fn ensure_request_id(headers: &mut HeaderMap) {
    if headers.contains_key(REQUEST_ID) {
        return;
    }
    let mut bytes = [0u8; 16];
    bytes.iter_mut().for_each(|b| *b = fastrand::u8(..));
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = [0u8; 36];
    let mut at = 0;
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            id[at] = b'-';
            at += 1;
        }
        id[at] = HEX[usize::from(b >> 4)];
        id[at + 1] = HEX[usize::from(b & 0x0f)];
        at += 2;
    }
    if let Ok(v) = HeaderValue::from_bytes(&id) {
        headers.insert(REQUEST_ID, v);
    }
}

/// Sets `x-forwarded-proto` when absent.
pub fn ensure_forwarded_proto(headers: &mut HeaderMap, scheme: &str) {
    if !headers.contains_key("x-forwarded-proto") {
        if let Ok(v) = HeaderValue::from_str(scheme) {
            headers.insert(HeaderName::from_static("x-forwarded-proto"), v);
        }
    }
}

/// Appends the peer's address to `x-forwarded-for`.
pub fn append_forwarded_for(headers: &mut HeaderMap, peer: std::net::IpAddr) {
    let value = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(existing) => format!("{existing}, {peer}"),
        None => peer.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
}

/// Applies a route's header operations: remove, then set (overwrite), then add (append).
pub fn apply(headers: &mut HeaderMap, ops: &HeaderOps) {
    for name in &ops.remove {
        headers.remove(name.as_str());
    }
    for (name, value) in &ops.set {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    }
    for (name, value) in &ops.add {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(n, v);
        }
    }
}

/// Adapts `http::HeaderMap` to the router's header lookup.
pub struct HeaderView<'a>(pub &'a HeaderMap);

impl RequestHeaders for HeaderView<'_> {
    fn header(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        weft_model::matcher::join_values(
            self.0.get_all(name).iter().filter_map(|v| v.to_str().ok()),
        )
    }
}

/// A request's headers and the end-user token a gateway verified, as routing reads them
/// (`@request.auth.claims` matches).
pub struct ClaimView<'a> {
    /// The headers.
    pub headers: HeaderView<'a>,
    /// The verified token, if any.
    pub auth: Option<&'a weft_model::authn::RequestAuth>,
}

impl RequestHeaders for ClaimView<'_> {
    fn header(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        self.headers.header(name)
    }

    fn claim(&self, path: &[&str]) -> Vec<String> {
        self.auth.map(|a| a.claim(path)).unwrap_or_default()
    }
}

/// The authority of a request: absolute-form URI, then `Host` (HTTP/2's `:authority` is the URI's).
pub fn authority_of<B>(req: &Request<B>) -> Option<String> {
    req.uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            req.headers()
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .filter(|a| !a.is_empty())
}

/// The port written in an authority.
pub fn port_of(authority: &str) -> Option<u16> {
    let (_, port) = authority.rsplit_once(':')?;
    if authority.starts_with('[') && !authority[..authority.len() - port.len() - 1].ends_with(']') {
        return None;
    }
    port.parse().ok()
}

/// The route timeout, capped by the client's `grpc-timeout` (Istio's `max_grpc_timeout`).
pub fn timeout_of(route: Option<Duration>, headers: &HeaderMap) -> Option<Duration> {
    let grpc = headers
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout);
    match (route, grpc) {
        (Some(r), Some(g)) => Some(r.min(g)),
        (r, g) => r.or(g),
    }
}

/// Parses gRPC's `grpc-timeout` (`100m`, `5S`, ...).
pub fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    let (num, unit) = v.split_at(v.len().checked_sub(1)?);
    // The spec allows at most 8 ASCII digits.
    if num.is_empty() || num.len() > 8 || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_but_te_trailers_stays() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("x-app", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert!(
            h.get("x-secret").is_none()
                && h.get("keep-alive").is_none()
                && h.get(header::CONNECTION).is_none()
        );
        assert_eq!(
            h.get(header::TE).map(|v| v.as_bytes()),
            Some(&b"trailers"[..])
        );
        assert!(h.get("x-app").is_some());
        // Each hop-by-hop header alone is found by the one pass over the names.
        for name in [
            "keep-alive",
            "proxy-connection",
            "transfer-encoding",
            "upgrade",
            "proxy-authorization",
        ] {
            let mut h = HeaderMap::new();
            h.insert("x-app", HeaderValue::from_static("1"));
            h.insert(name, HeaderValue::from_static("x"));
            strip_hop_by_hop(&mut h, false);
            assert_eq!(h.len(), 1, "{name} removed");
        }
        let mut h = HeaderMap::new();
        h.insert(header::TE, HeaderValue::from_static("gzip"));
        strip_hop_by_hop(&mut h, false);
        assert!(h.is_empty(), "te other than trailers goes");
        // Without any, nothing changes (and an upgrade still says so).
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("a"));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(
            (h.len(), &h[header::CONNECTION]),
            (2, &HeaderValue::from_static("upgrade"))
        );
    }

    #[test]
    fn request_ids_are_uuid_v4_and_kept_when_present() {
        let mut h = HeaderMap::new();
        ensure_request_id(&mut h);
        let id = h
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
            .expect("set");
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
        ensure_request_id(&mut h);
        assert_eq!(
            h.get(REQUEST_ID).and_then(|v| v.to_str().ok()),
            Some(id.as_str())
        );
    }

    #[test]
    fn operations_remove_set_then_add() {
        let mut h = HeaderMap::new();
        h.insert("a", HeaderValue::from_static("old"));
        h.insert("gone", HeaderValue::from_static("x"));
        let ops = HeaderOps {
            set: vec![("a".into(), "new".into())],
            add: vec![("a".into(), "more".into())],
            remove: vec!["gone".into()],
        };
        apply(&mut h, &ops);
        let values: Vec<_> = h
            .get_all("a")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert_eq!(values, ["new", "more"]);
        assert!(h.get("gone").is_none());
    }

    #[test]
    fn ports_and_grpc_timeouts() {
        assert_eq!(port_of("a:8080"), Some(8080));
        assert_eq!(port_of("a"), None);
        assert_eq!(port_of("[::1]:80"), Some(80));
        assert_eq!(port_of("[::1]"), None);
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("x"), None);
        assert_eq!(
            parse_grpc_timeout("18446744073709551615S"),
            None,
            "at most 8 digits"
        );
        assert_eq!(parse_grpc_timeout("+5S"), None);
        assert_eq!(
            parse_grpc_timeout("99999999H"),
            Some(Duration::from_secs(99_999_999 * 3600))
        );
    }

    #[test]
    fn timeouts_take_the_smaller_of_route_and_grpc() {
        let mut h = HeaderMap::new();
        h.insert("grpc-timeout", http::HeaderValue::from_static("50m"));
        assert_eq!(
            timeout_of(Some(Duration::from_secs(1)), &h),
            Some(Duration::from_millis(50))
        );
        assert_eq!(timeout_of(None, &HeaderMap::new()), None);
    }
}
