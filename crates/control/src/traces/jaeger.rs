//! Jaeger's HTTP query API over the trace store, with Jaeger's JSON shapes, so the
//! Jaeger UI's requests and existing scripts work: `/api/services`,
//! `/api/services/{service}/operations`, `/api/traces`, `/api/traces/{id}`,
//! `/api/dependencies`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::{Query, StoredSpan, TagValue, TraceStore};

type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::convert::Infallible>;

fn json_reply(status: StatusCode, value: &Value) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(serde_json::to_vec(value).unwrap_or_default())).boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

/// Jaeger's envelope.
fn data(value: Value, total: usize) -> Response<Body> {
    json_reply(
        StatusCode::OK,
        &json!({"data": value, "total": total, "limit": 0, "offset": 0, "errors": null}),
    )
}

/// Jaeger's error envelope.
fn error(status: StatusCode, message: &str) -> Response<Body> {
    json_reply(
        status,
        &json!({"data": null, "total": 0, "limit": 0, "offset": 0, "errors": [{"code": status.as_u16(), "msg": message}]}),
    )
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A Jaeger duration: `100ms`, `1.5s`, `2m`, `1h`, `500us`, `3d`.
pub fn parse_duration_us(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{text:?} has no unit (use us, ms, s, m, h or d)"))?;
    let (number, unit) = text.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 100ms"))?;
    let scale = match unit {
        "us" | "µs" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        "d" => 86400e6,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use us, ms, s, m, h or d)"
            ));
        }
    };
    Ok((n * scale) as u64)
}

/// `tags` as Jaeger takes them: a JSON object (`{"error":"true"}`), or logfmt-like
/// `key=value` pairs separated by spaces (the UI's search box form).
fn parse_tags(text: &str) -> Result<Vec<(String, String)>, String> {
    let text = text.trim();
    if text.starts_with('{') {
        let map: BTreeMap<String, Value> =
            serde_json::from_str(text).map_err(|e| format!("tags {text:?}: {e}"))?;
        return Ok(map
            .into_iter()
            .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_string)))
            .collect());
    }
    text.split_whitespace()
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
                .ok_or_else(|| format!("tag {pair:?} is not key=value"))
        })
        .collect()
}

/// The search `/api/traces` asks for.
pub fn query_of(params: &[(String, String)]) -> Result<Query, String> {
    let mut q = Query {
        limit: 20,
        ..Query::default()
    };
    let mut lookback = None;
    for (k, v) in params {
        if v.is_empty() {
            continue;
        }
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{k}={v:?} is not a number"))
        };
        match k.as_str() {
            "service" => q.service = Some(v.clone()),
            "operation" => q.operation = Some(v.clone()),
            "tags" => q.tags.extend(parse_tags(v)?),
            // Jaeger's repeated `tag=key:value` form.
            "tag" => match v.split_once(':') {
                Some((key, value)) => q.tags.push((key.to_string(), value.to_string())),
                None => return Err(format!("tag={v:?} is not key:value")),
            },
            "start" => q.start_us = Some(number(v)?),
            "end" => q.end_us = Some(number(v)?),
            "minDuration" => q.min_duration_us = Some(parse_duration_us(v)?),
            "maxDuration" => q.max_duration_us = Some(parse_duration_us(v)?),
            "limit" => q.limit = usize::try_from(number(v)?).unwrap_or(usize::MAX),
            "lookback" if v != "custom" => lookback = Some(parse_duration_us(v)?),
            _ => {}
        }
    }
    if let (Some(back), None) = (lookback, q.start_us) {
        q.start_us = Some(q.end_us.unwrap_or_else(now_us).saturating_sub(back));
    }
    Ok(q)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn tag_json(key: &str, value: &TagValue) -> Value {
    match value {
        TagValue::Text(s) => json!({"key": key, "type": "string", "value": s}),
        TagValue::Bool(b) => json!({"key": key, "type": "bool", "value": b}),
        TagValue::Int(i) => json!({"key": key, "type": "int64", "value": i}),
        TagValue::Float(f) => json!({"key": key, "type": "float64", "value": f}),
        TagValue::Bytes(_) => json!({"key": key, "type": "string", "value": value.text()}),
    }
}

/// A trace in Jaeger's JSON: spans point at processes (`p1`, `p2`, ...).
pub fn trace_json(spans: &[Arc<StoredSpan>]) -> Value {
    let mut processes: Vec<(&str, &[(String, TagValue)])> = Vec::new();
    let mut process_ids = Vec::new();
    for s in spans {
        let i = match processes
            .iter()
            .position(|(svc, tags)| *svc == s.service && *tags == s.process.as_slice())
        {
            Some(i) => i,
            None => {
                processes.push((&s.service, s.process.as_slice()));
                processes.len() - 1
            }
        };
        process_ids.push(format!("p{}", i + 1));
    }
    let trace_id = spans.first().map(|s| hex(&s.trace_id)).unwrap_or_default();
    let spans_json: Vec<Value> = spans
        .iter()
        .zip(&process_ids)
        .map(|(s, pid)| {
            json!({
                "traceID": hex(&s.trace_id),
                "spanID": hex(&s.span_id),
                "operationName": s.operation,
                "references": s.parent.map(|p| vec![json!({"refType": "CHILD_OF", "traceID": hex(&s.trace_id), "spanID": hex(&p)})]).unwrap_or_default(),
                "startTime": s.start_us,
                "duration": s.duration_us,
                "tags": s.tags.iter().map(|(k, v)| tag_json(k, v)).collect::<Vec<_>>(),
                "logs": [],
                "processID": pid,
                "warnings": null,
                "flags": 1,
            })
        })
        .collect();
    let processes_json: serde_json::Map<String, Value> = processes
        .iter()
        .enumerate()
        .map(|(i, (service, tags))| {
            (
                format!("p{}", i + 1),
                json!({"serviceName": service, "tags": tags.iter().map(|(k, v)| tag_json(k, v)).collect::<Vec<_>>()}),
            )
        })
        .collect();
    json!({"traceID": trace_id, "spans": spans_json, "processes": processes_json, "warnings": null})
}

fn trace_id(text: &str) -> Option<[u8; 16]> {
    // Jaeger accepts ids without leading zeros.
    if text.is_empty() || text.len() > 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let padded = format!("{text:0>32}");
    let mut id = [0u8; 16];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&padded[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(id)
}

/// Handles one query request.
pub async fn handle(store: Arc<TraceStore>, req: Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "the query API is read-only (GET)",
        );
    }
    let path = req.uri().path().trim_end_matches('/').to_string();
    let params = crate::query::params(req.uri().query());
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["api", "services"] => {
            let services = store.services();
            let n = services.len();
            data(json!(services), n)
        }
        ["api", "services", service, "operations"] => {
            let ops = store.operations(&crate::query::decode(service));
            let n = ops.len();
            data(json!(ops), n)
        }
        ["api", "operations"] => {
            let service = params
                .iter()
                .find(|(k, _)| k == "service")
                .map(|(_, v)| v.clone());
            let Some(service) = service else {
                return error(StatusCode::BAD_REQUEST, "parameter service is required");
            };
            let ops: Vec<Value> = store
                .operations(&service)
                .into_iter()
                .map(|name| json!({"name": name, "spanKind": ""}))
                .collect();
            let n = ops.len();
            data(json!(ops), n)
        }
        ["api", "traces"] => match query_of(&params) {
            Ok(q) => {
                let traces: Vec<Value> = store.find(&q).iter().map(|t| trace_json(t)).collect();
                let n = traces.len();
                data(json!(traces), n)
            }
            Err(e) => error(StatusCode::BAD_REQUEST, &e),
        },
        ["api", "traces", id] => {
            let Some(id) = trace_id(id) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("{id:?} is not a trace id (hex, at most 32 digits)"),
                );
            };
            let spans = store.trace(&id);
            if spans.is_empty() {
                return error(StatusCode::NOT_FOUND, "trace not found");
            }
            data(json!([trace_json(&spans)]), 1)
        }
        ["api", "dependencies"] => {
            let end = params
                .iter()
                .find(|(k, _)| k == "endTs")
                .and_then(|(_, v)| v.parse::<u64>().ok())
                .map_or_else(now_us, |ms| ms.saturating_mul(1000));
            let lookback = params
                .iter()
                .find(|(k, _)| k == "lookback")
                .and_then(|(_, v)| v.parse::<u64>().ok())
                .map_or(u64::MAX, |ms| ms.saturating_mul(1000));
            let deps: Vec<Value> = store
                .dependencies(end.saturating_sub(lookback), end)
                .into_iter()
                .map(|((parent, child), n)| json!({"parent": parent, "child": child, "callCount": n}))
                .collect();
            let n = deps.len();
            data(json!(deps), n)
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "unknown path; the query API serves /api/services, /api/services/{service}/operations, /api/traces, /api/traces/{id}, /api/dependencies",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_jaeger() {
        assert_eq!(parse_duration_us("100ms"), Ok(100_000));
        assert_eq!(parse_duration_us("1.5s"), Ok(1_500_000));
        assert_eq!(parse_duration_us("1h"), Ok(3_600_000_000));
        assert!(parse_duration_us("100").is_err());
        assert!(parse_duration_us("5parsecs").is_err());
    }

    #[test]
    fn a_search_reads_every_parameter() {
        let p = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let q = query_of(&p(&[
            ("service", "bff-service"),
            ("tags", "http.status_code=200 error=true"),
            ("minDuration", "100ms"),
            ("limit", "5"),
            ("end", "10000000000"),
            ("lookback", "1h"),
        ]))
        .expect("valid");
        assert_eq!(q.tags.len(), 2);
        assert_eq!(q.min_duration_us, Some(100_000));
        assert_eq!(q.start_us, Some(10_000_000_000 - 3_600_000_000));
        assert_eq!(q.limit, 5);
        let json_tags = query_of(&p(&[("tags", r#"{"error":"true"}"#)])).expect("json tags");
        assert_eq!(
            json_tags.tags,
            vec![("error".to_string(), "true".to_string())]
        );
        assert!(query_of(&p(&[("minDuration", "soon")])).is_err());
    }
}
