//! `kubectl get`'s tables (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`): the
//! columns Istio's CRDs print (`additionalPrinterColumns`), each row carrying the object's
//! metadata so kubectl can add NAMESPACE (`-A`) and labels (`-L`, `--show-labels`).

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use weft_api::{Kind, Resource};

/// True when the client asked for a Table (kubectl's `get`).
pub fn wanted(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',')
            .any(|t| t.split(';').map(str::trim).any(|p| p == "as=Table"))
    })
}

/// A column: its name, type, format and the path of its value in the object.
struct Column {
    name: &'static str,
    kind: &'static str,
    description: &'static str,
    path: &'static [&'static str],
}

/// Istio's printer columns for `kind` (NAME first and AGE last, as its CRDs declare).
fn columns(kind: Kind) -> Vec<Column> {
    let col = |name, kind, description, path| Column {
        name,
        kind,
        description,
        path,
    };
    let mut out = vec![col(
        "Name",
        "string",
        "Name must be unique within a namespace.",
        &["metadata", "name"][..],
    )];
    out.extend(match kind {
        Kind::VirtualService => vec![
            col("Gateways", "string", "The names of gateways and sidecars that should apply these routes", &["spec", "gateways"][..]),
            col("Hosts", "string", "The destination hosts to which traffic is being sent", &["spec", "hosts"][..]),
        ],
        Kind::DestinationRule => vec![col("Host", "string", "The name of a service from the service registry", &["spec", "host"][..])],
        Kind::ServiceEntry => vec![
            col("Hosts", "string", "The hosts associated with the ServiceEntry", &["spec", "hosts"][..]),
            col("Location", "string", "Whether the service is external to the mesh or part of the mesh (MESH_EXTERNAL or MESH_INTERNAL)", &["spec", "location"][..]),
            col("Resolution", "string", "Service resolution mode for the hosts (NONE, STATIC, or DNS)", &["spec", "resolution"][..]),
        ],
        Kind::WorkloadEntry => vec![col("Address", "string", "Address associated with the network endpoint.", &["spec", "address"][..])],
        Kind::PeerAuthentication => vec![col("Mode", "string", "Defines the mTLS mode used for peer authentication.", &["spec", "mtls", "mode"][..])],
        Kind::AuthorizationPolicy => vec![col("Action", "string", "The operation to take.", &["spec", "action"][..])],
        // kubectl's columns for Kubernetes' kinds that weft can fill from what it keeps.
        Kind::Service => vec![
            col("Type", "string", "The type of the service.", &["spec", "type"][..]),
            col("Cluster-IP", "string", "The virtual IP of the service.", &["spec", "clusterIP"][..]),
            col("Ports", "string", "The ports of the service.", &["spec", "ports"][..]),
        ],
        Kind::Pod => vec![
            col("Status", "string", "The phase of the pod.", &["status", "phase"][..]),
            col("IP", "string", "The IP of the pod.", &["status", "podIP"][..]),
        ],
        Kind::Deployment => vec![col("Replicas", "integer", "Desired pods.", &["spec", "replicas"][..])],
        Kind::Secret => vec![col("Type", "string", "The type of the secret.", &["type"][..])],
        Kind::EndpointSlice => vec![col("AddressType", "string", "The type of the addresses.", &["addressType"][..])],
        Kind::HttpRoute | Kind::GrpcRoute | Kind::TlsRoute => vec![col("Hostnames", "string", "The route's host names.", &["spec", "hostnames"][..])],
        Kind::GatewayClass => vec![col("Controller", "string", "The controller serving the class.", &["spec", "controllerName"][..])],
        Kind::KubernetesGateway => vec![
            col("Class", "string", "The GatewayClass.", &["spec", "gatewayClassName"][..]),
            col("Address", "string", "The address it listens on.", &["status", "addresses"][..]),
        ],
        Kind::Gateway
        | Kind::Sidecar
        | Kind::RequestAuthentication
        | Kind::Telemetry
        | Kind::RateLimit
        | Kind::ReferenceGrant
        | Kind::TcpRoute
        | Kind::ConfigMap
        | Kind::Namespace => Vec::new(),
    });
    out.push(col(
        "Age",
        "date",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
        &["metadata", "creationTimestamp"][..],
    ));
    out
}

/// The Table for `items` of `kind`.
pub fn render(kind: Kind, items: &[Resource], resource_version: u64) -> Value {
    let columns = columns(kind);
    let definitions: Vec<Value> = columns
        .iter()
        .map(|c| {
            let format = if c.name == "Name" { "name" } else { "" };
            json!({"name": c.name, "type": c.kind, "format": format, "description": c.description, "priority": 0})
        })
        .collect();
    let now = SystemTime::now();
    let rows: Vec<Value> = items
        .iter()
        .map(|r| {
            let object = serde_json::to_value(r).unwrap_or_default();
            let cells: Vec<Value> = columns
                .iter()
                .map(|c| {
                    let value = c.path.iter().fold(&object, |v, k| &v[*k]);
                    match (kind, c.name) {
                        (Kind::Service, "Ports") => json!(service_ports(value)),
                        (Kind::Service, "Type") if value.is_null() => json!("ClusterIP"),
                        _ => cell(c.kind, value, now),
                    }
                })
                .collect();
            json!({
                "cells": cells,
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object["metadata"]},
            })
        })
        .collect();
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version.to_string()},
        "columnDefinitions": definitions, "rows": rows,
    })
}

/// A Service's ports as kubectl prints them: `9080/TCP,9090/TCP`.
fn service_ports(ports: &Value) -> String {
    let ports: Vec<String> = ports
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP")))
        .collect();
    if ports.is_empty() {
        "<none>".into()
    } else {
        ports.join(",")
    }
}

/// A cell as the API server prints it: lists joined (`["a","b"]`), dates as ages.
fn cell(kind: &str, value: &Value, now: SystemTime) -> Value {
    match (kind, value) {
        ("date", Value::String(t)) => match parse_rfc3339(t) {
            Some(at) => json!(human_age(now.duration_since(at).unwrap_or_default())),
            None => json!("<unknown>"),
        },
        (_, Value::Null) => json!("<none>"),
        (_, Value::String(s)) => json!(s),
        (_, Value::Array(_)) => json!(value.to_string()),
        (_, other) => json!(other.to_string()),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z`, as the store writes creation times.
fn parse_rfc3339(t: &str) -> Option<SystemTime> {
    let b = t.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || !t.ends_with('Z') {
        return None;
    }
    let n = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Kubernetes' short age: `42s`, `5m10s`, `3h12m`, `2d4h`, `400d`.
pub fn human_age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s}s"),
        120..600 => format!("{}m{}s", s / 60, s % 60).replace("m0s", "m"),
        600..10_800 => format!("{}m", s / 60),
        10_800..28_800 => format!("{}h{}m", s / 3600, (s % 3600) / 60).replace("h0m", "h"),
        28_800..172_800 => format!("{}h", s / 3600),
        172_800..691_200 => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600).replace("d0h", "d"),
        691_200..63_072_000 => format!("{}d", s / 86_400),
        _ => format!("{}y{}d", s / 31_536_000, (s % 31_536_000) / 86_400).replace("y0d", "y"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_carry_istios_columns() {
        let loaded = weft_api::load_str(
            "t.yaml",
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: shop, creationTimestamp: '2020-01-01T00:00:00Z'}\nspec: {hosts: [reviews], gateways: [mesh], http: [{route: [{destination: {host: reviews}}]}]}\n",
        );
        let items: Vec<Resource> = loaded.resources.into_iter().map(|l| l.resource).collect();
        let t = render(Kind::VirtualService, &items, 7);
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .expect("columns")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, ["Name", "Gateways", "Hosts", "Age"]);
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[0], "reviews");
        assert_eq!(cells[1], r#"["mesh"]"#);
        assert_eq!(cells[2], r#"["reviews"]"#);
        assert!(
            cells[3].as_str().expect("age").ends_with('y')
                || cells[3].as_str().expect("age").contains('y')
        );
        assert_eq!(t["rows"][0]["object"]["metadata"]["namespace"], "shop");
    }

    #[test]
    fn creation_times_parse() {
        let t = parse_rfc3339("2020-01-01T00:00:10Z").expect("parses");
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH)
                .expect("after")
                .as_secs(),
            1_577_836_810
        );
        assert!(parse_rfc3339("yesterday").is_none());
    }

    #[test]
    fn ages_read_as_kubectl_prints_them() {
        assert_eq!(human_age(Duration::from_secs(42)), "42s");
        assert_eq!(human_age(Duration::from_secs(310)), "5m10s");
        assert_eq!(human_age(Duration::from_secs(3 * 3600 + 720)), "3h12m");
        assert_eq!(human_age(Duration::from_secs(3 * 86_400)), "3d");
    }

    #[test]
    fn kubectls_accept_header_asks_for_a_table() {
        assert!(wanted(Some(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        )));
        assert!(!wanted(Some("application/json")));
        assert!(!wanted(None));
    }
}
