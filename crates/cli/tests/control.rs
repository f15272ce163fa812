//! `weft control` with `weft apply/get/delete`, as a user runs them: real processes,
//! the resource API, validation answers, optimistic concurrency, and kill -9 durability.

use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use weft_testkit::client::{Send, via_proxy};
use weft_testkit::{eventually, free_port};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

struct Control {
    child: Child,
    addr: std::net::SocketAddr,
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_control(state: &std::path::Path, port: u16) -> Control {
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "control",
            "--otlp",
            "127.0.0.1:0",
            "--query",
            "127.0.0.1:0",
            "--dashboard",
            "127.0.0.1:0",
            "--api",
            &addr.to_string(),
            "--xds",
            "127.0.0.1:0",
            "--state-dir",
        ])
        .arg(state)
        .stderr(Stdio::null())
        .spawn()
        .expect("weft control starts");
    eventually(
        "the control plane listens",
        Duration::from_secs(10),
        || async { tokio::net::TcpStream::connect(addr).await.ok().map(|_| ()) },
    )
    .await;
    Control { child, addr }
}

fn weft(server: std::net::SocketAddr, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .arg("--server")
        .arg(server.to_string())
        .current_dir(ROOT)
        .output()
        .expect("weft runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_get_delete_validation_conflicts_and_durability() {
    let state = std::env::temp_dir().join(format!("weft-control-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let port = free_port();
    let control = start_control(&state, port).await;
    let server = control.addr;

    let applied = weft(server, &["apply", "-f", "examples/recommendation/"]);
    assert!(applied.status.success(), "{}", text(&applied));
    let out = text(&applied);
    for line in [
        "serviceentry.networking.istio.io/recommendation-service created",
        "serviceentry.networking.istio.io/bff-service created",
        "destinationrule.networking.istio.io/recommendation-service created",
        "virtualservice.networking.istio.io/recommendation-service created",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    let again = weft(
        server,
        &[
            "apply",
            "-f",
            "examples/recommendation/virtual-service.yaml",
        ],
    );
    assert!(
        text(&again)
            .contains("virtualservice.networking.istio.io/recommendation-service unchanged"),
        "{}",
        text(&again)
    );
    let fault = weft(
        server,
        &[
            "apply",
            "-f",
            "examples/recommendation/virtual-service-fault.yaml",
        ],
    );
    assert!(
        text(&fault)
            .contains("virtualservice.networking.istio.io/recommendation-service configured"),
        "{}",
        text(&fault)
    );

    let listed = weft(server, &["get", "vs"]);
    assert!(listed.status.success());
    assert!(
        text(&listed).starts_with("NAME") && text(&listed).contains("recommendation-service"),
        "{}",
        text(&listed)
    );
    let yaml = weft(
        server,
        &["get", "dr", "recommendation-service", "-o", "yaml"],
    );
    let reread = weft_api::load_str("get.yaml", &String::from_utf8_lossy(&yaml.stdout));
    assert!(
        !reread.has_errors() && reread.resources.len() == 1,
        "`get -o yaml` output applies again: {:?}",
        reread.diagnostics
    );
    let json = weft(
        server,
        &[
            "get",
            "virtualservice",
            "recommendation-service",
            "-o",
            "json",
        ],
    );
    let vs: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(vs["metadata"]["generation"], 2, "the spec changed once");
    let rv = vs["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .to_string();

    // An invalid replace answers 422 listing every field error, and nothing changes.
    let item = format!(
        "http://{server}/apis/networking.istio.io/v1/namespaces/default/virtualservices/recommendation-service"
    );
    let bad = r#"{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "recommendation-service"},
      "spec": {"hosts": ["recommendation-service"], "http": [{"route": [{"destination": {"host": "recommendation-service"}, "weight": -1},
      {"destination": {"host": "recommendation-service", "subset": "Bad_Subset"}}]}]}}"#;
    let invalid = via_proxy(
        server,
        Send {
            method: "PUT",
            url: &item,
            body: bad,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(invalid.status, 422);
    let status: serde_json::Value = serde_json::from_str(&invalid.body).expect("Status");
    assert_eq!(status["reason"], "Invalid");
    let fields: Vec<&str> = status["details"]["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .filter_map(|c| c["field"].as_str())
        .collect();
    assert!(
        fields.contains(&"spec.http[0].route[0].weight")
            && fields.contains(&"spec.http[0].route[1].destination.subset"),
        "{fields:?}"
    );
    let unchanged = weft(
        server,
        &["get", "vs", "recommendation-service", "-o", "json"],
    );
    let after: serde_json::Value = serde_json::from_slice(&unchanged.stdout).expect("JSON");
    assert_eq!(
        after["metadata"]["resourceVersion"].as_str(),
        Some(rv.as_str()),
        "nothing changed"
    );

    // A stale update answers 409.
    let mut stale = after.clone();
    stale["metadata"]["resourceVersion"] = serde_json::Value::String("1".into());
    stale["spec"]["http"][0]["timeout"] = serde_json::Value::String("2s".into());
    let conflict = via_proxy(
        server,
        Send {
            method: "PUT",
            url: &item,
            body: &stale.to_string(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(conflict.status, 409, "{}", conflict.body);

    // kill -9: every accepted resource is still there after a restart.
    drop(control);
    let control = start_control(&state, port).await;
    let survived = weft(control.addr, &["get", "se", "-A"]);
    assert!(
        text(&survived).contains("bff-service")
            && text(&survived).contains("recommendation-service"),
        "{}",
        text(&survived)
    );

    let deleted = weft(
        control.addr,
        &[
            "delete",
            "-f",
            "examples/recommendation/virtual-service.yaml",
        ],
    );
    assert!(
        text(&deleted)
            .contains("virtualservice.networking.istio.io/recommendation-service deleted"),
        "{}",
        text(&deleted)
    );
    let gone = weft(control.addr, &["get", "vs", "recommendation-service"]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(text(&gone).contains("not found"), "{}", text(&gone));
    drop(control);
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_resources_are_served_like_istios_crd() {
    let state = std::env::temp_dir().join(format!(
        "weft-control-telemetry-test-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&state);
    let control = start_control(&state, free_port()).await;
    let server = control.addr;
    let applied = weft(server, &["apply", "-f", "examples/telemetry/"]);
    assert!(applied.status.success(), "{}", text(&applied));
    assert!(
        text(&applied).contains("telemetry.telemetry.istio.io/mesh-default created"),
        "{}",
        text(&applied)
    );
    let listed = weft(server, &["get", "telemetry", "-A"]);
    let out = text(&listed);
    assert!(
        out.contains("istio-system") && out.contains("mesh-default"),
        "{out}"
    );
    assert!(out.contains("recommendation-tracing"), "{out}");
    // Discovery as Istio's CRD publishes it: both versions, the short name, the categories.
    let group = weft_testkit::client::admin_get(server, "/apis/telemetry.istio.io/v1alpha1").await;
    let body: serde_json::Value = serde_json::from_str(&group.body).expect("json");
    let resource = &body["resources"][0];
    assert_eq!(resource["name"], "telemetries", "{body}");
    assert_eq!(resource["kind"], "Telemetry");
    assert_eq!(resource["shortNames"][0], "telemetry");
    // A filter that does not compile is refused with the field and the parser's position.
    let bad = std::env::temp_dir().join(format!("weft-bad-telemetry-{}.yaml", std::process::id()));
    std::fs::write(
        &bad,
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: bad}\nspec:\n  accessLogging:\n  - filter: {expression: 'response.code >='}\n",
    )
    .expect("write");
    let refused = weft(server, &["apply", "-f", bad.to_str().expect("path")]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("spec.accessLogging[0].filter.expression")
            && text(&refused).contains("at 1:17"),
        "{}",
        text(&refused)
    );
    let _ = std::fs::remove_file(&bad);
    let _ = std::fs::remove_dir_all(&state);
}
