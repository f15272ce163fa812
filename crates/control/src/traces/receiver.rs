//! The trace receiver: OTLP/HTTP (`POST /v1/traces`, protobuf), as an OpenTelemetry
//! collector serves it on 4318, and Zipkin's span API (`POST /api/v2/spans`, JSON v2),
//! as Zipkin and Jaeger serve it on 9411.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use prost::Message;
use weft_proto::otlp;

use super::{TraceStore, from_otlp};

/// Largest export request accepted.
pub const MAX_REQUEST: usize = 16 * 1024 * 1024;

type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::convert::Infallible>;

fn reply(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r
}

fn text(status: StatusCode, message: &str) -> Response<Body> {
    reply(status, "text/plain", format!("{message}\n").into_bytes())
}

/// Zipkin's span API.
pub const ZIPKIN_PATH: &str = "/api/v2/spans";

/// A Zipkin v2 JSON report: 202 as Zipkin answers; 400 when it is not a span list.
async fn zipkin(store: Arc<TraceStore>, req: Request<Incoming>) -> Response<Body> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    if !content_type.starts_with("application/json") {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!(
                "content-type {content_type:?}: only Zipkin's JSON v2 (application/json) is accepted"
            ),
        );
    }
    let body = match Limited::new(req.into_body(), MAX_REQUEST).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("reading the spans (at most {MAX_REQUEST} bytes): {e}"),
            );
        }
    };
    match super::zipkin::from_zipkin(&body) {
        Ok((spans, rejected)) => {
            store.add(spans);
            if rejected > 0 {
                return text(
                    StatusCode::ACCEPTED,
                    &format!(
                        "{rejected} spans refused: trace ids of 16 or 32 hex digits and span ids of 16 are required"
                    ),
                );
            }
            reply(StatusCode::ACCEPTED, "text/plain", Vec::new())
        }
        Err(e) => text(StatusCode::BAD_REQUEST, &e),
    }
}

/// Handles one request to the receiver.
pub async fn handle(store: Arc<TraceStore>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    if path != "/v1/traces" && path != ZIPKIN_PATH {
        return text(
            StatusCode::NOT_FOUND,
            "the trace receiver serves POST /v1/traces (OTLP) and POST /api/v2/spans (Zipkin)",
        );
    }
    if req.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, &format!("use POST {path}"));
    }
    if path == ZIPKIN_PATH {
        return zipkin(store, req).await;
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if !content_type.starts_with("application/x-protobuf") {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!(
                "content-type {content_type:?}: only OTLP protobuf (application/x-protobuf) is accepted"
            ),
        );
    }
    let body = match Limited::new(req.into_body(), MAX_REQUEST).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("reading the export request (at most {MAX_REQUEST} bytes): {e}"),
            );
        }
    };
    let request = match otlp::ExportTraceServiceRequest::decode(body) {
        Ok(r) => r,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("not an OTLP export request: {e}"),
            );
        }
    };
    let (spans, rejected) = from_otlp(request);
    store.add(spans);
    let response = otlp::ExportTraceServiceResponse {
        partial_success: (rejected > 0).then(|| otlp::ExportTracePartialSuccess {
            rejected_spans: i64::try_from(rejected).unwrap_or(i64::MAX),
            error_message:
                "spans with a trace id other than 16 bytes or a span id other than 8 bytes".into(),
        }),
    };
    reply(
        StatusCode::OK,
        "application/x-protobuf",
        response.encode_to_vec(),
    )
}
