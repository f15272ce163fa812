//! Writes the seed corpus of every fuzz target into `fuzz/corpus/<target>/`: the mesh's
//! own examples, and small valid inputs of each format (requests, ClientHellos, pushed
//! updates, OTLP and Zipkin spans, tokens). Run from the repository's root:
//! `cargo run -p weft-fuzzing --example fuzz-seeds`.

use std::path::Path;

use prost::Message;
use weft_proto::{config, discovery, otlp};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("fuzz/corpus").join(target);
    std::fs::create_dir_all(&dir).expect("corpus directory");
    std::fs::write(dir.join(name), bytes).expect("seed");
}

fn examples(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            examples(&path, out);
        } else if path.extension().is_some_and(|x| x == "yaml") {
            let name = path
                .to_string_lossy()
                .trim_start_matches("examples/")
                .replace('/', "-");
            out.push((name, std::fs::read(&path).expect("example")));
        }
    }
}

fn client_hello(name: &str, alpn: &[&[u8]]) -> Vec<u8> {
    let mut ext = Vec::new();
    let n = name.as_bytes();
    ext.extend_from_slice(&[0, 0]);
    ext.extend_from_slice(&((n.len() + 5) as u16).to_be_bytes());
    ext.extend_from_slice(&((n.len() + 3) as u16).to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&(n.len() as u16).to_be_bytes());
    ext.extend_from_slice(n);
    let mut protocols = Vec::new();
    for p in alpn {
        protocols.push(p.len() as u8);
        protocols.extend_from_slice(p);
    }
    ext.extend_from_slice(&[0, 16]);
    ext.extend_from_slice(&((protocols.len() + 2) as u16).to_be_bytes());
    ext.extend_from_slice(&(protocols.len() as u16).to_be_bytes());
    ext.extend_from_slice(&protocols);
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 3, 1];
    record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend_from_slice(&hs);
    record
}

fn update(resources: &[(&str, &str)], removed: &[&str]) -> Vec<u8> {
    discovery::DeltaDiscoveryResponse {
        system_version_info: "7".into(),
        resources: resources
            .iter()
            .map(|(name, json)| discovery::Resource {
                name: name.to_string(),
                version: "1".into(),
                resource: Some(prost_types::Any {
                    type_url: weft_proto::ISTIO_RESOURCE_TYPE.into(),
                    value: config::IstioResource {
                        json: json.to_string(),
                    }
                    .encode_to_vec(),
                }),
                aliases: Vec::new(),
            })
            .collect(),
        type_url: weft_proto::ISTIO_RESOURCE_TYPE.into(),
        nonce: "7-1-0".into(),
        removed_resources: removed.iter().map(|s| s.to_string()).collect(),
    }
    .encode_to_vec()
}

fn main() {
    let mut yaml = Vec::new();
    examples(Path::new("examples"), &mut yaml);
    for (name, bytes) in &yaml {
        write("yaml_resources", name, bytes);
    }
    write(
        "mesh_config",
        "configmap.yaml",
        &std::fs::read("examples/mesh-config/istio-configmap.yaml").expect("example"),
    );
    write(
        "mesh_config",
        "providers.yaml",
        b"enableTracing: true\ndefaultConfig: {tracing: {sampling: 10}}\ndefaultProviders: {tracing: [otel], accessLogging: [envoy]}\nextensionProviders:\n- name: otel\n  opentelemetry: {service: otel.istio-system.svc.cluster.local, port: 4318, http: {path: /v1/traces, timeout: 2s}}\n- name: zipkin\n  zipkin: {service: zipkin.istio-system, port: 9411, maxTagLength: 64}\n- name: authz\n  envoyExtAuthzHttp: {service: authz, port: 8000, includeRequestHeadersInCheck: [x-user], includeRequestBodyInCheck: {maxRequestBytes: 100}}\noutboundTrafficPolicy: {mode: REGISTRY_ONLY}\ndefaultHttpRetryPolicy: {attempts: 2, retryOn: 5xx}\ntrustDomain: cluster.local\nrootNamespace: istio-system\naccessLogFile: /dev/stdout\naccessLogEncoding: JSON\n",
    );
    for (name, text) in [
        (
            "api",
            "reviews\n/api/v2/items?debug=1\nGET\nx-user:alice\nx-team:devops\n",
        ),
        ("static", "reviews:9080\n/static/app.js\nGET\n"),
        ("cart", "shop.example.com\n/cart\nPOST\ncontent-type:json\n"),
    ] {
        write("route_match", name, text.as_bytes());
    }
    for (name, text) in [
        ("dots", "/a/./b/../c"),
        ("encoded", "/%2e%2E/admin%2Fsecrets%5c..%2f"),
        ("slashes", "//api///v1//items?x=//y"),
        ("backslash", "/a\\b\\..\\c"),
        ("unreserved", "/%7Euser/%41%42"),
    ] {
        write("path_normalization", name, text.as_bytes());
    }
    for (name, bytes) in [
        ("http1", &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..]),
        (
            "both-lengths",
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "h2",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0",
        ),
        ("tls", b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00"),
        ("mysql", b"\x4a\0\0\0\x0a8.0.0\0"),
    ] {
        write("protocol_detection", name, bytes);
    }
    write(
        "client_hello",
        "sni-alpn",
        &client_hello(
            "reviews.default.svc.cluster.local",
            &[b"istio-h2", b"istio-http/1.1"],
        ),
    );
    write("client_hello", "sni", &client_hello("example.com", &[]));
    let vs = r#"{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"reviews","namespace":"default"},"spec":{"hosts":["reviews"],"http":[{"route":[{"destination":{"host":"reviews","subset":"v1"},"weight":10},{"destination":{"host":"reviews","subset":"v2"},"weight":90}]}]}}"#;
    let dr = r#"{"apiVersion":"networking.istio.io/v1","kind":"DestinationRule","metadata":{"name":"reviews","namespace":"default"},"spec":{"host":"reviews","subsets":[{"name":"v1","labels":{"version":"v1"}},{"name":"v2","labels":{"version":"v2"}}]}}"#;
    write(
        "xds_update",
        "routes",
        &update(
            &[
                ("VirtualService/default/reviews", vs),
                ("DestinationRule/default/reviews", dr),
            ],
            &["VirtualService/default/old"],
        ),
    );
    write(
        "xds_update",
        "mesh",
        &update(
            &[(
                weft_proto::MESH_CONFIG_RESOURCE,
                r#"{"enableTracing":true}"#,
            )],
            &[],
        ),
    );
    let span = otlp::Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        parent_span_id: vec![3; 8],
        name: "reviews.default.svc.cluster.local:9080/*".into(),
        kind: otlp::span::SpanKind::Client as i32,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_050_000_000,
        attributes: vec![otlp::KeyValue {
            key: "http.status_code".into(),
            value: Some(otlp::AnyValue {
                value: Some(otlp::any_value::Value::StringValue("500".into())),
            }),
        }],
        ..Default::default()
    };
    let export = otlp::ExportTraceServiceRequest {
        resource_spans: vec![otlp::ResourceSpans {
            resource: Some(otlp::Resource {
                attributes: vec![otlp::KeyValue {
                    key: "service.name".into(),
                    value: Some(otlp::AnyValue {
                        value: Some(otlp::any_value::Value::StringValue("bff-service".into())),
                    }),
                }],
                ..Default::default()
            }),
            scope_spans: vec![otlp::ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    };
    write("otlp_traces", "one-span", &export.encode_to_vec());
    write(
        "zipkin_spans",
        "one-span.json",
        br#"[{"traceId":"0102030405060708090a0b0c0d0e0f10","id":"0102030405060708","parentId":"0807060504030201","name":"get /","kind":"CLIENT","timestamp":1700000000000000,"duration":5000,"localEndpoint":{"serviceName":"bff-service"},"tags":{"http.status_code":"500","error":"true"}}]"#,
    );
    write(
        "jaeger_query",
        "search",
        b"service=bff-service&operation=recommendation&tags=%7B%22http.status_code%22%3A%22500%22%7D&minDuration=1ms&maxDuration=2s&limit=20&lookback=1h",
    );
    for (name, text) in [
        ("host-port", "reviews.default:9080"),
        ("ipv6", "[::1]:15001"),
        ("bare", "example.com"),
        ("trailing-dot", "example.com.:443"),
    ] {
        write("authority", name, text.as_bytes());
    }
    write(
        "kube_patch",
        "merge.json",
        br#"{"metadata":{"labels":{"team":"a"}},"spec":{"http":[{"route":[{"destination":{"host":"reviews","subset":"v2"}}]}]}}"#,
    );
    write(
        "kube_patch",
        "strategic.json",
        br#"{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"reviews:2"},{"$patch":"delete","name":"old"}]}}},"$setElementOrder/containers":[{"name":"app"}]}"#,
    );
    for (name, text) in [
        (
            "es256",
            "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwic3ViIjoiYWxpY2UiLCJhdWQiOiJyZXZpZXdzIiwiZXhwIjoxODAwMDAwMDAwfQ.c2lnbmF0dXJl",
        ),
        (
            "none",
            "eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIn0.",
        ),
        ("two-parts", "eyJhbGciOiJFUzI1NiJ9.e30"),
    ] {
        write("jwt", name, text.as_bytes());
    }
}
