//! Trace context propagation: W3C `traceparent`/`tracestate` and B3 (multi-header and
//! single-header), read from requests and written for the next hop.
//!
//! A malformed header is ignored (the request starts a new trace); it never fails the
//! request.

use http::{HeaderMap, HeaderValue};

/// A trace id (16 bytes).
pub type TraceId = [u8; 16];
/// A span id (8 bytes).
pub type SpanId = [u8; 8];

/// Which format the caller used, so the next hop gets the same ones back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Formats {
    /// `b3: {trace}-{span}-{sampled}`.
    pub b3_single: bool,
    /// `x-b3-traceid`, `x-b3-spanid`, ...
    pub b3_multi: bool,
}

/// The context a request arrived with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The trace.
    pub trace_id: TraceId,
    /// The caller's span: the parent of ours.
    pub parent: SpanId,
    /// The caller's sampling decision, when it made one.
    pub sampled: Option<bool>,
    /// Formats present besides `traceparent`.
    pub formats: Formats,
}

fn hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    // Only hex digits (`from_str_radix` alone would take a leading `+`).
    if text.len() != N * 2 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    // Lower-case only, as W3C requires; all-zero ids are invalid.
    if text.bytes().any(|b| b.is_ascii_uppercase()) || out.iter().all(|b| *b == 0) {
        return None;
    }
    Some(out)
}

/// A 64- or 128-bit B3 trace id, as 16 bytes.
fn b3_trace_id(text: &str) -> Option<TraceId> {
    match text.len() {
        32 => hex::<16>(text),
        16 => {
            let low = hex::<8>(text)?;
            let mut id = [0u8; 16];
            id[8..].copy_from_slice(&low);
            Some(id)
        }
        _ => None,
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// `00-{trace}-{span}-{flags}` (a later version may add fields after flags).
fn traceparent(text: &str) -> Option<(TraceId, SpanId, bool)> {
    let mut parts = text.split('-');
    let version = parts.next()?;
    if version.len() != 2 || version == "ff" || !version.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let trace_id = hex::<16>(parts.next()?)?;
    let span_id = hex::<8>(parts.next()?)?;
    let flags = parts.next()?;
    if flags.len() != 2 || !flags.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    if version == "00" && parts.next().is_some() {
        return None;
    }
    Some((trace_id, span_id, flags & 1 == 1))
}

fn b3_sampled(text: &str) -> Option<bool> {
    match text {
        "1" | "d" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// The context `headers` carry: `traceparent` first, then `b3`, then `x-b3-*`.
pub fn extract(headers: &HeaderMap) -> Option<Incoming> {
    let formats = Formats {
        b3_single: headers.contains_key("b3"),
        b3_multi: headers.contains_key("x-b3-traceid"),
    };
    if let Some((trace_id, parent, sampled)) = header(headers, "traceparent").and_then(traceparent)
    {
        return Some(Incoming {
            trace_id,
            parent,
            sampled: Some(sampled),
            formats,
        });
    }
    if let Some(single) = header(headers, "b3") {
        let mut parts = single.split('-');
        if let (Some(trace), Some(span)) = (parts.next(), parts.next()) {
            if let (Some(trace_id), Some(parent)) = (b3_trace_id(trace), hex::<8>(span)) {
                return Some(Incoming {
                    trace_id,
                    parent,
                    sampled: parts.next().and_then(b3_sampled),
                    formats,
                });
            }
        }
    }
    let trace_id = header(headers, "x-b3-traceid").and_then(b3_trace_id)?;
    let parent = header(headers, "x-b3-spanid").and_then(hex::<8>)?;
    let sampled = if header(headers, "x-b3-flags") == Some("1") {
        Some(true)
    } else {
        header(headers, "x-b3-sampled").and_then(b3_sampled)
    };
    Some(Incoming {
        trace_id,
        parent,
        sampled,
        formats,
    })
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// A trace id as Jaeger and W3C write it (32 lower-case hex digits).
pub fn trace_hex(id: &TraceId) -> String {
    to_hex(id)
}

/// A span id as hex (16 digits).
pub fn span_hex(id: &SpanId) -> String {
    to_hex(id)
}

/// A sampling decision sent without a context (`b3: 0`, `x-b3-sampled: 1` alone): the
/// caller decided, the proxy starts the trace.
pub fn decision_only(headers: &HeaderMap) -> Option<bool> {
    header(headers, "b3")
        .filter(|v| v.len() == 1)
        .and_then(b3_sampled)
        .or_else(|| {
            if headers.contains_key("x-b3-traceid") {
                return None;
            }
            if header(headers, "x-b3-flags") == Some("1") {
                return Some(true);
            }
            header(headers, "x-b3-sampled").and_then(b3_sampled)
        })
}

/// Writes the context for the next hop: our span is its parent. `traceparent` always;
/// the B3 headers when the caller used them.
pub fn inject(
    headers: &mut HeaderMap,
    trace_id: &TraceId,
    span_id: &SpanId,
    parent: Option<&SpanId>,
    sampled: bool,
    formats: Formats,
) {
    let (trace, span) = (to_hex(trace_id), to_hex(span_id));
    let flag = if sampled { "1" } else { "0" };
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    set("traceparent", format!("00-{trace}-{span}-0{flag}"));
    if formats.b3_single {
        set("b3", format!("{trace}-{span}-{flag}"));
    }
    if formats.b3_multi {
        set("x-b3-traceid", trace);
        set("x-b3-spanid", span);
        set("x-b3-sampled", flag.to_string());
        match parent {
            Some(p) => set("x-b3-parentspanid", to_hex(p)),
            None => {
                headers.remove("x-b3-parentspanid");
            }
        }
    }
}

/// New random ids.
pub fn new_trace_id() -> TraceId {
    loop {
        let id = fastrand::u128(..).to_be_bytes();
        if id.iter().any(|b| *b != 0) {
            return id;
        }
    }
}

/// A new random span id.
pub fn new_span_id() -> SpanId {
    loop {
        let id = fastrand::u64(..).to_be_bytes();
        if id.iter().any(|b| *b != 0) {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn traceparent_is_read_and_malformed_ones_are_ignored() {
        let ok = extract(&headers(&[(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )]))
        .expect("valid");
        assert_eq!(trace_hex(&ok.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span_hex(&ok.parent), "00f067aa0ba902b7");
        assert_eq!(ok.sampled, Some(true));
        for bad in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-+1",
            "garbage",
        ] {
            assert_eq!(extract(&headers(&[("traceparent", bad)])), None, "{bad}");
        }
    }

    #[test]
    fn a_bare_b3_decision_is_kept() {
        assert_eq!(extract(&headers(&[("b3", "0")])), None);
        assert_eq!(decision_only(&headers(&[("b3", "0")])), Some(false));
        assert_eq!(
            decision_only(&headers(&[("x-b3-sampled", "1")])),
            Some(true)
        );
        assert_eq!(decision_only(&headers(&[("traceparent", "x")])), None);
    }

    #[test]
    fn b3_single_and_multi_are_read() {
        let single = extract(&headers(&[(
            "b3",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
        )]))
        .expect("b3");
        assert_eq!(span_hex(&single.parent), "e457b5a2e4d86bd1");
        assert!(single.formats.b3_single);
        let multi = extract(&headers(&[
            ("x-b3-traceid", "463ac35c9f6413ad"),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
            ("x-b3-sampled", "0"),
        ]))
        .expect("b3 multi");
        assert_eq!(
            trace_hex(&multi.trace_id),
            "0000000000000000463ac35c9f6413ad"
        );
        assert_eq!(multi.sampled, Some(false));
    }

    #[test]
    fn the_next_hop_gets_our_span_in_every_format_the_caller_used() {
        let mut h = headers(&[("x-b3-traceid", "463ac35c9f6413ad"), ("b3", "1")]);
        let (trace, span, parent) = ([1u8; 16], [2u8; 8], [3u8; 8]);
        let formats = Formats {
            b3_single: true,
            b3_multi: true,
        };
        inject(&mut h, &trace, &span, Some(&parent), true, formats);
        let back = extract(&h).expect("round trip");
        assert_eq!(
            (back.trace_id, back.parent, back.sampled),
            (trace, span, Some(true))
        );
        assert_eq!(h["x-b3-parentspanid"], "0303030303030303");
        assert_eq!(
            h["b3"],
            format!("{}-{}-1", trace_hex(&trace), span_hex(&span)).as_str()
        );
    }
}
