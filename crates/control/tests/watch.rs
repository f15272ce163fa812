//! `?watch=true` streams changes as they are accepted, one JSON event per line.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

#[tokio::test]
async fn watch_streams_added_modified_and_deleted() {
    let state = std::env::temp_dir().join(format!("weft-watch-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let control = weft_control::start(weft_control::ControlOptions::ephemeral(&state))
        .await
        .expect("starts");
    let stream = tokio::net::TcpStream::connect(control.api)
        .await
        .expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = http::Request::get(
        "/apis/networking.istio.io/v1/namespaces/default/destinationrules?watch=true",
    )
    .header("host", "control")
    .body(Empty::<bytes::Bytes>::new())
    .expect("request");
    let mut body = sender.send_request(req).await.expect("watch").into_body();

    let dr = |host: &str| {
        let text = format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: r}}\nspec: {{host: {host}}}\n"
        );
        weft_api::load_str("t", &text).resources.remove(0).resource
    };
    control.store.put(dr("a"), true).expect("create");
    control.store.put(dr("b"), false).expect("update");
    let key = weft_control::store::Key {
        kind: weft_api::Kind::DestinationRule,
        namespace: "default".into(),
        name: "r".into(),
    };
    control.store.delete(&key).expect("delete");

    let mut text = String::new();
    while text.lines().count() < 3 {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("an event in time")
            .expect("frame")
            .expect("ok");
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    let kinds: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("JSON line")["type"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED"]);
    control.stop();
    let _ = std::fs::remove_dir_all(&state);
}
