//! Spans as Zipkin's JSON v2 (`POST /api/v2/spans`): what a `zipkin` extension provider
//! receives. Ids in lower-case hex, times in microseconds, tags as strings cut at the
//! provider's `maxTagLength`, `error: "true"` on failures.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value as Json, json};

use super::{FinishedSpan, Kind, Value};

/// The JSON array of `spans`, all of the proxy whose `service.name` is `service`.
pub fn encode(
    service: &str,
    spans: impl Iterator<Item = FinishedSpan>,
    max_tag_length: u32,
) -> Vec<u8> {
    let list: Vec<Json> = spans
        .map(|s| span(service, s, max_tag_length as usize))
        .collect();
    serde_json::to_vec(&list).unwrap_or_default()
}

fn span(service: &str, s: FinishedSpan, max: usize) -> Json {
    let mut tags = Map::new();
    for (k, v) in s.attributes {
        let text = match v {
            Value::Text(t) => t,
            Value::Int(i) => i.to_string(),
            Value::Bool(b) => b.to_string(),
        };
        tags.insert(k.to_string(), Json::String(cut(text, max)));
    }
    for (k, v) in s.custom_tags {
        tags.insert(k, Json::String(cut(v, max)));
    }
    if s.error {
        tags.insert("error".into(), Json::String("true".into()));
    }
    let start = micros(s.start);
    let mut out = json!({
        "traceId": hex(&s.trace_id),
        "id": hex(&s.span_id),
        "name": s.name,
        "kind": match s.kind {
            Kind::Client => "CLIENT",
            Kind::Server => "SERVER",
        },
        "timestamp": start,
        // Zipkin drops a zero duration; a measured span lasted at least a microsecond.
        "duration": micros(s.end).saturating_sub(start).max(1),
        "localEndpoint": {"serviceName": service},
        "tags": tags,
    });
    if let (Some(parent), Some(map)) = (s.parent, out.as_object_mut()) {
        map.insert("parentId".into(), Json::String(hex(&parent)));
    }
    out
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_span_reads_as_zipkin_v2_with_string_tags_cut_at_the_limit() {
        let start = UNIX_EPOCH + Duration::from_micros(1_700_000_000_000_000);
        let span = FinishedSpan {
            trace_id: [0xab; 16],
            span_id: [0x01; 8],
            parent: Some([0x02; 8]),
            name: "reviews.default.svc.cluster.local:8080/*".into(),
            kind: Kind::Client,
            start,
            end: start + Duration::from_micros(2500),
            attributes: vec![
                ("http.status_code", Value::Int(503)),
                ("http.url", Value::Text("http://reviews/é".repeat(4))),
            ],
            custom_tags: vec![("team".into(), "shop".into())],
            error: true,
        };
        let body = encode("client.default", std::iter::once(span), 20);
        let got: Json = serde_json::from_slice(&body).expect("json");
        let s = &got[0];
        assert_eq!(s["traceId"], "ab".repeat(16));
        assert_eq!(s["id"], "0101010101010101");
        assert_eq!(s["parentId"], "0202020202020202");
        assert_eq!(s["kind"], "CLIENT");
        assert_eq!(s["timestamp"], 1_700_000_000_000_000u64);
        assert_eq!(s["duration"], 2500);
        assert_eq!(s["localEndpoint"]["serviceName"], "client.default");
        assert_eq!(s["tags"]["team"], "shop");
        assert_eq!(s["tags"]["http.status_code"], "503");
        assert_eq!(s["tags"]["error"], "true");
        let url = s["tags"]["http.url"].as_str().expect("text");
        assert!(url.len() <= 20 && "http://reviews/é".repeat(4).starts_with(url));
    }
}
