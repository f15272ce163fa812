//! Live requests of one workload, like `linkerd viz tap`: the newest requests its
//! sidecar recorded, read from the spans it exported (so only sampled requests appear;
//! `weft up` samples every request).

use serde_json::{Value, json};

use crate::traces::{StoredSpan, TraceStore};

fn tag(span: &StoredSpan, key: &str) -> Option<String> {
    span.tags
        .iter()
        .chain(span.process.iter())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.text())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The page's JSON: the newest `limit` requests of `workload` in `namespace`.
pub fn requests(traces: &TraceStore, namespace: &str, workload: &str, limit: usize) -> Value {
    let spans = traces.recent(limit, |s| {
        let process = |k: &str| {
            s.process
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.text())
        };
        process("istio.workload").as_deref() == Some(workload)
            && process("istio.namespace").as_deref() == Some(namespace)
    });
    let requests: Vec<Value> = spans
        .iter()
        .map(|s| {
            let url = tag(s, "http.url").unwrap_or_default();
            // `http://authority/path?query`: the authority and the path apart.
            let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
            let (authority, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            json!({
                "time": (s.start_us + s.duration_us) as f64 / 1e6,
                "direction": match tag(s, "span.kind").as_deref() {
                    Some("server") => "inbound",
                    _ => "outbound",
                },
                "method": tag(s, "http.method"),
                "authority": authority,
                "path": path,
                "status": tag(s, "http.status_code").and_then(|c| c.parse::<u16>().ok()),
                "flags": tag(s, "response_flags").unwrap_or_else(|| "-".into()),
                "durationMs": (s.duration_us as f64 / 10.0).round() / 100.0,
                "traceId": hex(&s.trace_id),
                "upstream": tag(s, "upstream_host"),
            })
        })
        .collect();
    json!({ "requests": requests })
}
