//! The namespace in an API path becomes part of a file path: anything but a DNS label
//! is refused with 422 and nothing is stored.

use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

async fn post(api: std::net::SocketAddr, path: &str, body: &str) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(api).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = http::Request::post(path)
        .header("host", "control")
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .expect("request");
    let resp = sender.send_request(req).await.expect("answer");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn a_namespace_that_is_not_a_dns_label_is_refused() {
    let state = std::env::temp_dir().join(format!("weft-ns-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let control = weft_control::start(weft_control::ControlOptions::ephemeral(&state))
        .await
        .expect("starts");
    let dr = r#"{"apiVersion":"networking.istio.io/v1","kind":"DestinationRule","metadata":{"name":"r"},"spec":{"host":"a"}}"#;
    for ns in ["Shop", "..", "a.b"] {
        let path = format!("/apis/networking.istio.io/v1/namespaces/{ns}/destinationrules");
        let (status, body) = post(control.api, &path, dr).await;
        assert_eq!(status, 422, "namespace {ns:?}: {body}");
        assert!(body.contains("metadata.namespace"), "{body}");
    }
    assert!(
        control
            .store
            .list(weft_api::Kind::DestinationRule, None)
            .is_empty(),
        "nothing stored"
    );
    // A valid namespace is accepted.
    let (status, body) = post(
        control.api,
        "/apis/networking.istio.io/v1/namespaces/shop/destinationrules",
        dr,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let _ = std::fs::remove_dir_all(&state);
}
