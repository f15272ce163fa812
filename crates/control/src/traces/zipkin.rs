//! Zipkin's span API (`POST /api/v2/spans`, JSON v2), served beside the OTLP receiver as
//! Jaeger's collector serves it: proxies with a `zipkin` extension provider, and any
//! Zipkin-instrumented app, can report into the embedded store.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use super::{MAX_ATTRIBUTES, StoredSpan, TagValue, tags_size, truncate};

/// One span as Zipkin's v2 model writes it (the fields the store keeps).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Span {
    trace_id: String,
    id: String,
    #[serde(default)]
    parent_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    timestamp: Option<u64>,
    #[serde(default)]
    duration: Option<u64>,
    #[serde(default)]
    local_endpoint: Option<Endpoint>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Endpoint {
    #[serde(default)]
    service_name: Option<String>,
}

/// The spans of a Zipkin v2 JSON list, and how many were refused (ids that are not 16
/// or 32 hex digits for the trace, 16 for the span). Not a JSON list of spans: an error.
pub fn from_zipkin(body: &[u8]) -> Result<(Vec<StoredSpan>, usize), String> {
    let spans: Vec<Span> =
        serde_json::from_slice(body).map_err(|e| format!("not a Zipkin v2 span list: {e}"))?;
    let mut out = Vec::with_capacity(spans.len());
    let mut rejected = 0;
    // Spans of one service share one process, as the spans of one OTLP resource do.
    let mut processes: BTreeMap<String, Arc<Vec<(String, TagValue)>>> = BTreeMap::new();
    for s in spans {
        let (Some(trace_id), Some(span_id)) = (trace_id(&s.trace_id), hex::<8>(&s.id)) else {
            rejected += 1;
            continue;
        };
        let parent = s
            .parent_id
            .as_deref()
            .and_then(hex::<8>)
            .filter(|p| p.iter().any(|b| *b != 0));
        let service = s
            .local_endpoint
            .and_then(|e| e.service_name)
            .filter(|n| !n.is_empty())
            .map_or_else(|| "unknown_service".to_string(), truncate);
        let mut size = 0;
        let process = processes
            .entry(service.clone())
            .or_insert_with(|| {
                let p = vec![("service.name".to_string(), TagValue::Text(service.clone()))];
                size += tags_size(&p);
                Arc::new(p)
            })
            .clone();
        let mut tags: Vec<(String, TagValue)> = s
            .tags
            .into_iter()
            .take(MAX_ATTRIBUTES)
            .map(|(k, v)| match (k.as_str(), v.as_str()) {
                ("error", "true") => (k, TagValue::Bool(true)),
                _ => (truncate(k), TagValue::Text(truncate(v))),
            })
            .collect();
        if let Some(kind) = s.kind {
            tags.push((
                "span.kind".into(),
                TagValue::Text(kind.to_ascii_lowercase()),
            ));
        }
        let operation = truncate(s.name.unwrap_or_default());
        size += 200 + operation.len() + tags_size(&tags);
        out.push(StoredSpan {
            trace_id,
            span_id,
            parent,
            service,
            operation,
            start_us: s.timestamp.unwrap_or(0),
            duration_us: s.duration.unwrap_or(0),
            tags,
            process,
            size,
        });
    }
    Ok((out, rejected))
}

/// A 128-bit trace id from 32 hex digits, or a 64-bit one (16 digits) in the low half.
fn trace_id(text: &str) -> Option<[u8; 16]> {
    if text.len() == 16 {
        let low = hex::<8>(text)?;
        let mut id = [0u8; 16];
        id[8..].copy_from_slice(&low);
        return Some(id);
    }
    hex::<16>(text)
}

fn hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipkin_spans_are_stored_with_their_service_tags_and_kind() {
        let body = br#"[
          {"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "id": "00f067aa0ba902b7",
           "parentId": "1111111111111111", "name": "get /reviews", "kind": "CLIENT",
           "timestamp": 1700000000000000, "duration": 2500,
           "localEndpoint": {"serviceName": "bff.default"},
           "tags": {"http.status_code": "503", "error": "true"}},
          {"traceId": "a3ce929d0e0e4736", "id": "00f067aa0ba902b8", "localEndpoint": {"serviceName": "bff.default"}},
          {"traceId": "xyz", "id": "00f067aa0ba902b9"}
        ]"#;
        let (spans, rejected) = from_zipkin(body).expect("a span list");
        assert_eq!((spans.len(), rejected), (2, 1));
        let s = &spans[0];
        assert_eq!(s.trace_id[..2], [0x4b, 0xf9]);
        assert_eq!(s.parent, Some([0x11; 8]));
        assert_eq!(s.service, "bff.default");
        assert_eq!((s.start_us, s.duration_us), (1_700_000_000_000_000, 2500));
        assert_eq!(s.tag("span.kind").as_deref(), Some("client"));
        assert_eq!(s.tag("error").as_deref(), Some("true"));
        assert_eq!(s.tag("http.status_code").as_deref(), Some("503"));
        // A 64-bit trace id is the low half of a 128-bit one; both spans share a process.
        assert_eq!(spans[1].trace_id[..8], [0; 8]);
        assert!(Arc::ptr_eq(&spans[0].process, &spans[1].process));
        assert!(from_zipkin(b"{\"not\": \"a list\"}").is_err());
    }
}
