//! The OTLP/HTTP trace receiver (`POST /v1/traces`, protobuf), as an OpenTelemetry
//! collector serves it on 4318.

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

/// Handles one request to the receiver.
pub async fn handle(store: Arc<TraceStore>, req: Request<Incoming>) -> Response<Body> {
    if req.uri().path() != "/v1/traces" {
        return text(
            StatusCode::NOT_FOUND,
            "the OTLP trace receiver serves POST /v1/traces",
        );
    }
    if req.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use POST /v1/traces");
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
