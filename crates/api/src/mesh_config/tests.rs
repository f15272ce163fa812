use super::*;

fn lines(loaded: &LoadedMeshConfig) -> Vec<String> {
    loaded.diagnostics.iter().map(ToString::to_string).collect()
}

const MESH: &str = "\
enableTracing: true
defaultConfig:
  tracing:
    sampling: 25
extensionProviders:
- name: otel
  opentelemetry:
    service: otel-collector.observability.svc.cluster.local
    port: 4318
    http:
      path: /v1/traces
      timeout: 2s
      headers:
      - name: x-tenant
        value: shop
defaultProviders:
  tracing: [otel]
  metrics: [prometheus]
accessLogFile: /dev/stdout
accessLogEncoding: JSON
trustDomain: cluster.local
rootNamespace: istio-system
";

#[test]
fn istio_mesh_config_reads_with_its_defaults_applied() {
    let loaded = load_mesh_config("mesh.yaml", MESH);
    assert!(loaded.diagnostics.is_empty(), "{:?}", lines(&loaded));
    let mesh = loaded.config.expect("as written");
    assert_eq!(
        mesh.trace_export(),
        Some(TraceExport {
            provider: "otel".into(),
            endpoint: "http://otel-collector.observability.svc.cluster.local:4318/v1/traces".into(),
            protocol: TraceProtocol::Otlp,
            sampling: 25.0,
        })
    );

    assert_eq!(
        mesh.access_log(),
        Some(("/dev/stdout", AccessLogEncoding::Json))
    );

    let empty = load_mesh_config("mesh.yaml", "")
        .config
        .expect("as written");
    assert!(empty.tracing_enabled());
    assert_eq!(empty.sampling(), DEFAULT_SAMPLING);
    assert_eq!(empty.trace_export(), None);
    assert_eq!(empty.access_log(), None);

    let off = load_mesh_config(
        "mesh.yaml",
        &MESH.replace("enableTracing: true", "enableTracing: false"),
    );
    assert_eq!(off.config.expect("as written").trace_export(), None);
}

#[test]
fn istio_config_map_form_reads_with_positions_in_the_file() {
    let indented: String = MESH.lines().map(|l| format!("    {l}\n")).collect();
    let map = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: istio\n  namespace: istio-system\ndata:\n  mesh: |-\n{indented}"
    );
    assert!(is_mesh_config_map(&map));
    let loaded = load_mesh_config("istio.yaml", &map);
    assert!(loaded.diagnostics.is_empty(), "{:?}", lines(&loaded));
    assert_eq!(loaded.config.expect("as written").sampling(), 25.0);

    // Line 8 of the file is line 1 of the mesh text; its errors point into the file.
    let bad = map.replace("sampling: 25", "sampling: 250");
    let loaded = load_mesh_config("istio.yaml", &bad);
    assert_eq!(
        lines(&loaded),
        [
            "istio.yaml:11:9: data.mesh: defaultConfig.tracing.sampling: must be a percentage in [0, 100] (got 250)"
        ]
    );
    assert!(loaded.config.is_none());
}

#[test]
fn istio_fields_weft_does_not_implement_are_refused_by_name() {
    let text = "\
meshMTLS:
  minProtocolVersion: TLSV1_3
defaultConfig:
  discoveryAddress: istiod.istio-system.svc:15012
  tracing:
    zipkin: {address: zipkin:9411}
extensionProviders:
- name: ls
  lightstep: {address: lightstep:8080}
- name: authz
  envoyExtAuthzHttp: {service: authz, port: 9000, includeHeadersInCheck: [x-user]}
";
    let loaded = load_mesh_config("mesh.yaml", text);
    let got = lines(&loaded);
    assert_eq!(got.len(), 5, "{got:#?}");
    assert!(
        got[0].starts_with("mesh.yaml:1:1: meshMTLS: weft does not implement meshConfig.meshMTLS"),
        "{got:#?}"
    );
    assert!(got[1].starts_with(
        "mesh.yaml:4:3: defaultConfig.discoveryAddress: weft does not implement meshConfig.defaultConfig.discoveryAddress (use weft proxy --control)"
    ), "{got:#?}");
    assert!(
        got[2].contains("meshConfig.defaultConfig.tracing.zipkin"),
        "{got:#?}"
    );
    assert!(got[3].starts_with(
        "mesh.yaml:9:3: extensionProviders[0].lightstep: weft does not implement meshConfig.extensionProviders[0].lightstep (weft exports traces as OTLP or Zipkin only"
    ), "{got:#?}");
    assert!(
        got[4].contains("meshConfig.extensionProviders[1].envoyExtAuthzHttp.includeHeadersInCheck (deprecated in Istio: use includeRequestHeadersInCheck)"),
        "{got:#?}"
    );
    assert!(loaded.config.is_none());
}

#[test]
fn fields_istio_does_not_have_are_unknown_with_a_suggestion() {
    let loaded = load_mesh_config(
        "mesh.yaml",
        "enableTraceing: false\nrootNamespace: istio-system\n",
    );
    assert_eq!(
        lines(&loaded),
        [
            "mesh.yaml:1:1: enableTraceing: unknown field `enableTraceing` (did you mean `enableTracing`?)"
        ]
    );
}

#[test]
fn providers_are_checked() {
    let text = "\
extensionProviders:
- name: otel
  opentelemetry: {service: '', port: 70000}
- name: otel
  opentelemetry: {service: collector, port: 4318, http: {path: traces}}
- name: metrics
  prometheus: {}
- name: nothing
defaultProviders:
  tracing: [jaeger]
  metrics: [prometheus, otel]
  accessLogging: [envoy, otel, files]
";
    let loaded = load_mesh_config("mesh.yaml", text);
    let fields: Vec<String> = loaded
        .diagnostics
        .iter()
        .map(|d| format!("{}: {}", d.field.clone().unwrap_or_default(), d.message))
        .collect();
    assert_eq!(
        fields,
        [
            "extensionProviders[0].opentelemetry.service: the collector's host is required (e.g. otel-collector.observability.svc.cluster.local)",
            "extensionProviders[0].opentelemetry.port: port number must be in 1..65535 (got 70000)",
            "extensionProviders[1].name: provider `otel` is defined twice (first in extensionProviders[0])",
            "extensionProviders[1].opentelemetry.http.path: must start with / (got \"traces\")",
            "extensionProviders[3]: provider `nothing` names no kind: weft implements opentelemetry, zipkin, prometheus, envoyFileAccessLog, envoyExtAuthzHttp and envoyExtAuthzGrpc",
            "defaultProviders.tracing[0]: provider `jaeger` is not defined in extensionProviders (defined: otel, otel, metrics, nothing)",
            "defaultProviders.metrics[1]: provider `otel` is not a metrics provider (a prometheus one)",
            "defaultProviders.accessLogging[1]: provider `otel` is not an access log provider (an envoyFileAccessLog one)",
            "defaultProviders.accessLogging[2]: provider `files` is not defined in extensionProviders (defined: otel, otel, metrics, nothing)",
        ]
    );
    assert!(loaded.config.is_none());
}

#[test]
fn access_log_file_trust_domain_and_root_namespace_are_checked() {
    let loaded = load_mesh_config(
        "mesh.yaml",
        "accessLogFile: logs/access.log\ntrustDomain: Not_A_Domain\nrootNamespace: mesh-root\n",
    );
    let fields: Vec<String> = loaded
        .diagnostics
        .iter()
        .map(|d| format!("{}: {}", d.field.clone().unwrap_or_default(), d.message))
        .collect();
    assert_eq!(
        fields,
        [
            "accessLogFile: must be /dev/stdout, /dev/stderr or an absolute path (got \"logs/access.log\")",
            "trustDomain: must be a DNS name like cluster.local (got \"Not_A_Domain\")",
            "rootNamespace: weft does not implement a root namespace other than istio-system (got \"mesh-root\")",
        ]
    );
}

#[test]
fn what_is_pushed_reads_back_as_json() {
    let mesh = load_mesh_config("mesh.yaml", MESH)
        .config
        .expect("as written");
    let json = serde_json::to_string(&mesh).expect("as written");
    let again = load_mesh_config("pushed", &json);
    assert!(again.diagnostics.is_empty(), "{:?}", lines(&again));
    assert_eq!(again.config.expect("as written"), mesh);
}

#[test]
fn a_file_holds_one_mesh_config() {
    let loaded = load_mesh_config(
        "mesh.yaml",
        "enableTracing: true\n---\nenableTracing: false\n",
    );
    assert!(
        lines(&loaded)[0].contains("holds one document"),
        "{:?}",
        lines(&loaded)
    );
    let loaded = load_mesh_config(
        "mesh.yaml",
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: a}\n",
    );
    assert!(lines(&loaded)[0].contains("a ConfigMap with the mesh config under data.mesh"));
}

#[test]
fn ext_authz_providers_are_read_and_checked() {
    let loaded = load_mesh_config(
        "mesh.yaml",
        "extensionProviders:
- name: opa
  envoyExtAuthzGrpc: {service: opa.opa.svc.cluster.local, port: 9191, timeout: 2s, failOpen: true}
- name: http-authz
  envoyExtAuthzHttp:
    service: authz.foo.svc.cluster.local
    port: 8000
    pathPrefix: /check
    statusOnError: \"503\"
    includeRequestHeadersInCheck: [x-ext-authz, \"x-auth-*\"]
    headersToUpstreamOnAllow: [x-user]
    headersToDownstreamOnDeny: [x-reason]
",
    );
    assert!(loaded.diagnostics.is_empty(), "{:#?}", lines(&loaded));
    let config = loaded.config.expect("valid");
    let grpc = config.extension_providers[0]
        .envoy_ext_authz_grpc
        .as_ref()
        .expect("grpc");
    assert!(grpc.fail_open);
    assert_eq!(
        config.extension_providers[1]
            .envoy_ext_authz_http
            .as_ref()
            .expect("http")
            .status_on_error,
        "503"
    );
    let bad = load_mesh_config(
        "mesh.yaml",
        "extensionProviders:
- name: a
  envoyExtAuthzHttp: {service: 'http://authz', port: 0, statusOnError: nope, pathPrefix: check}
",
    );
    let got = lines(&bad);
    for expected in [
        "extensionProviders[0].envoyExtAuthzHttp.service: must be a host name or IP address, not a URL",
        "extensionProviders[0].envoyExtAuthzHttp.port:",
        "extensionProviders[0].envoyExtAuthzHttp.statusOnError: must be an HTTP status code such as 403 (got \"nope\")",
        "extensionProviders[0].envoyExtAuthzHttp.pathPrefix: must start with / (got \"check\")",
    ] {
        assert!(
            got.iter().any(|l| l.contains(expected)),
            "{expected}: {got:#?}"
        );
    }
}

#[test]
fn the_outbound_policy_and_the_default_retry_policy_are_read() {
    let text = "\
outboundTrafficPolicy:
  mode: REGISTRY_ONLY
defaultHttpRetryPolicy:
  attempts: 3
  retryOn: 5xx,connect-failure
  perTryTimeout: 2s
";
    let loaded = load_mesh_config("mesh.yaml", text);
    let config = loaded.config.expect("valid");
    assert_eq!(
        config.outbound_traffic_policy.and_then(|p| p.mode),
        Some(crate::networking::sidecar::OutboundTrafficMode::RegistryOnly)
    );
    let retry = config.default_http_retry_policy.expect("read");
    assert_eq!(retry.attempts, 3);
    assert_eq!(retry.retry_on.as_deref(), Some("5xx,connect-failure"));
    // The retry policy is checked as a VirtualService's `retries`, with positions.
    let bad = load_mesh_config(
        "mesh.yaml",
        "defaultHttpRetryPolicy:\n  attempts: -1\n  retryOn: sometimes\n",
    );
    assert_eq!(
        lines(&bad),
        [
            "mesh.yaml:2:3: defaultHttpRetryPolicy.attempts: must not be negative (got -1)",
            "mesh.yaml:3:3: defaultHttpRetryPolicy.retryOn: \"sometimes\" is not a valid retryOn policy",
        ]
    );
}

#[test]
fn a_zipkin_provider_is_a_tracing_provider() {
    let text = "\
extensionProviders:
- name: zipkin
  zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411, maxTagLength: 64}
defaultProviders: {tracing: [zipkin]}
";
    let loaded = load_mesh_config("mesh.yaml", text);
    let export = loaded
        .config
        .expect("valid")
        .trace_export()
        .expect("tracing");
    assert_eq!(
        export.endpoint,
        "http://zipkin.istio-system.svc.cluster.local:9411/api/v2/spans"
    );
    assert_eq!(
        export.protocol,
        TraceProtocol::Zipkin { max_tag_length: 64 }
    );
    let bad = load_mesh_config(
        "mesh.yaml",
        "extensionProviders:\n- name: z\n  zipkin: {service: 'http://zipkin', port: 0, path: spans, enable64bitTraceId: true}\n",
    );
    let got = lines(&bad);
    assert_eq!(got.len(), 4, "{got:#?}");
    assert!(
        got[0].contains(
            "extensionProviders[0].zipkin.service: must be a host name or IP address, not a URL"
        ),
        "{got:#?}"
    );
    assert!(got.iter().any(|l| l.contains("zipkin.port")), "{got:#?}");
    assert!(
        got.iter()
            .any(|l| l.contains("zipkin.path: must start with /")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|l| l
                .contains("zipkin.enable64bitTraceId: weft does not implement 64-bit trace ids")),
        "{got:#?}"
    );
}

#[test]
fn the_body_in_a_check_needs_a_size_limit() {
    let text = "extensionProviders:
- name: grpc
  envoyExtAuthzGrpc: {service: authz, port: 9000, clearRouteCache: true, includeRequestBodyInCheck: {maxRequestBytes: 0}}
- name: http
  envoyExtAuthzHttp:
    service: authz
    port: 8000
    headersToDownstreamOnAllow: [x-note]
    includeRequestBodyInCheck: {maxRequestBytes: 4096, allowPartialMessage: true}
";
    let loaded = load_mesh_config("mesh.yaml", text);
    let got = lines(&loaded);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(
        got[0].contains("extensionProviders[0].envoyExtAuthzGrpc.includeRequestBodyInCheck.maxRequestBytes: must be at least 1"),
        "{got:#?}"
    );
    let fixed = text.replace("maxRequestBytes: 0", "maxRequestBytes: 1");
    let config = load_mesh_config("mesh.yaml", &fixed).config.expect("valid");
    let http = config.extension_providers[1]
        .envoy_ext_authz_http
        .as_ref()
        .expect("http");
    assert_eq!(http.headers_to_downstream_on_allow, ["x-note"]);
    let body = http.include_request_body_in_check.as_ref().expect("body");
    assert_eq!(
        (body.max_request_bytes, body.allow_partial_message),
        (4096, true)
    );
}

#[test]
fn file_access_log_providers_are_read() {
    let loaded = load_mesh_config(
        "mesh.yaml",
        "extensionProviders:\n- name: file\n  envoyFileAccessLog: {path: /var/log/access.log}\n- name: bad\n  envoyFileAccessLog: {path: logs/a.log}\n- name: fmt\n  envoyFileAccessLog: {path: /dev/stdout, logFormat: {text: x}}\ndefaultProviders: {accessLogging: [file]}\n",
    );
    let fields: Vec<String> = loaded
        .diagnostics
        .iter()
        .map(|d| format!("{}: {}", d.field.clone().unwrap_or_default(), d.message))
        .collect();
    assert_eq!(fields.len(), 2, "{fields:#?}");
    assert!(fields[0].starts_with("extensionProviders[1].envoyFileAccessLog.path: must be"));
    assert!(fields[1].contains("logFormat"), "{fields:#?}");
    let ok = load_mesh_config(
        "mesh.yaml",
        "extensionProviders:\n- name: file\n  envoyFileAccessLog: {path: /var/log/access.log}\n",
    )
    .config
    .expect("valid");
    assert_eq!(
        ok.access_log_provider_path("file"),
        Some("/var/log/access.log")
    );
    assert_eq!(ok.access_log_provider_path("envoy"), Some("/dev/stdout"));
    assert_eq!(ok.access_log_provider_path("otel"), None);
}
