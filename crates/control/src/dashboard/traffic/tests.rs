use super::*;

fn store() -> (Store, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "weft-traffic-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir).expect("open");
    let dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: rec, namespace: default}\nspec:\n  host: recommendation-service\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n";
    let r = weft_api::load_str("t", dr).resources.remove(0).resource;
    store.put(r, true).expect("put");
    (store, dir)
}

fn invalid(r: Result<Value, Refused>) -> Vec<FieldError> {
    match r {
        Err(Refused::Invalid(e)) => e,
        other => panic!("expected field errors, got {other:?}"),
    }
}

#[test]
fn weights_and_faults_become_the_services_virtual_service() {
    let (store, dir) = store();
    assert_eq!(list(&store)["services"][0]["subsets"], json!(["v1", "v2"]));
    let before = get(&store, "default", "recommendation-service").expect("view");
    assert_eq!(before["virtualService"], Value::Null);
    let after = put(
        &store,
        "default",
        "recommendation-service",
        &json!({"weights": {"v1": 10, "v2": 90}, "fault": {"abort": {"httpStatus": 500, "percentage": 100}}, "resourceVersion": null}),
    )
    .expect("applied");
    assert_eq!(after["weights"], json!({"v1": 10, "v2": 90}));
    assert_eq!(
        after["fault"]["abort"],
        json!({"httpStatus": 500, "percentage": 100.0})
    );
    let stored = store.list(Kind::VirtualService, Some("default"));
    assert_eq!(stored.len(), 1);
    let v = json_of(&stored[0]);
    assert_eq!(
        v["spec"]["http"][0]["route"][1]["destination"]["subset"],
        "v2"
    );
    assert_eq!(v["spec"]["http"][0]["route"][1]["weight"], 90);
    // Writing again, from the version loaded, edits the same VirtualService; from a
    // stale one (or none) it is refused; reset removes it.
    let loaded = after["virtualService"]["resourceVersion"].clone();
    assert!(matches!(
        put(
            &store,
            "default",
            "recommendation-service",
            &json!({"weights": {"v1": 50, "v2": 50}, "resourceVersion": null})
        ),
        Err(Refused::Conflict(_))
    ));
    let again = put(
        &store,
        "default",
        "recommendation-service",
        &json!({"weights": {"v1": 50, "v2": 50}, "resourceVersion": loaded}),
    )
    .expect("again");
    assert!(matches!(
        put(&store, "default", "recommendation-service", &json!({"weights": {"v1": 60, "v2": 40}, "resourceVersion": loaded})),
        Err(Refused::Conflict(m)) if m.contains("changed since")
    ));
    assert_eq!(store.list(Kind::VirtualService, None).len(), 1);
    let version = again["virtualService"]["resourceVersion"]
        .as_str()
        .map(str::to_string);
    assert!(matches!(
        reset(&store, "default", "recommendation-service", None),
        Err(Refused::Conflict(_))
    ));
    let reset = reset(
        &store,
        "default",
        "recommendation-service",
        version.as_deref(),
    )
    .expect("reset");
    assert_eq!(reset["virtualService"], Value::Null);
    assert!(store.list(Kind::VirtualService, None).is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn invalid_values_name_their_field() {
    let (store, dir) = store();
    let put = |mut form: Value| {
        form["resourceVersion"] = Value::Null;
        super::put(&store, "default", "recommendation-service", &form)
    };
    let e = invalid(put(json!({"weights": {"v1": -5, "v2": 105}})));
    let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, vec!["weights.v1", "weights.v2"], "{e:?}");
    let e = invalid(put(json!({"weights": {"v1": 10, "v2": 80}})));
    assert_eq!(e[0].field, "weights");
    assert!(e[0].message.contains("add up to 90"), "{e:?}");
    let e = invalid(put(json!({"weights": {"v9": 100}})));
    assert_eq!(e[0].field, "weights.v9");
    let e = invalid(put(
        json!({"weights": null, "fault": {"abort": {"httpStatus": 700}, "delay": {"fixedDelay": "soon", "percentage": 150}}}),
    ));
    let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "fault.abort.httpStatus",
            "fault.delay.fixedDelay",
            "fault.delay.percentage"
        ],
        "{e:?}"
    );
    assert!(
        store.list(Kind::VirtualService, None).is_empty(),
        "nothing written"
    );
    assert!(matches!(
        super::get(&store, "default", "nope"),
        Err(Refused::NotFound(_))
    ));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_virtual_service_with_matches_is_shown_not_edited() {
    let (store, dir) = store();
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: default}\nspec:\n  hosts: [recommendation-service]\n  http:\n  - match: [{uri: {prefix: /a}}]\n    route: [{destination: {host: recommendation-service, subset: v1}}]\n  - route: [{destination: {host: recommendation-service, subset: v2}}]\n";
    store
        .put(
            weft_api::load_str("t", vs).resources.remove(0).resource,
            true,
        )
        .expect("put");
    let view = get(&store, "default", "recommendation-service").expect("view");
    assert_eq!(view["editable"], false);
    assert!(
        view["reason"]
            .as_str()
            .is_some_and(|r| r.contains("2 HTTP rules"))
    );
    assert!(matches!(
        put(
            &store,
            "default",
            "recommendation-service",
            &json!({"weights": {"v1": 100}, "resourceVersion": view["virtualService"]["resourceVersion"]})
        ),
        Err(Refused::Conflict(_))
    ));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn what_the_editor_cannot_show_it_does_not_touch() {
    let (store, dir) = store();
    let vs = |spec: &str| {
        let text = format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: r, namespace: default}}\nspec:\n  hosts: [recommendation-service]\n{spec}"
        );
        let r = weft_api::load_str("t", &text).resources.remove(0).resource;
        let _ = store.delete(&Key::of(&r));
        store.put(r, true).expect("put");
        get(&store, "default", "recommendation-service").expect("view")
    };
    for (spec, why) in [
        (
            "  http:\n  - route: [{destination: {host: recommendation-service, subset: v1}, headers: {request: {set: {x: \"y\"}}}}]\n",
            "sets headers on route 0",
        ),
        (
            "  http:\n  - route: [{destination: {host: recommendation-service, subset: v1, port: {number: 8080}}}]\n",
            "destination.port",
        ),
        (
            "  http:\n  - route: [{destination: {host: reviews}}]\n",
            "another host",
        ),
        (
            "  http:\n  - fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 10}}}\n    route: [{destination: {host: recommendation-service}}]\n",
            "fault.abort.grpcStatus",
        ),
        (
            "  gateways: [mesh, bff-gateway]\n  http:\n  - route: [{destination: {host: recommendation-service}}]\n",
            "gateways",
        ),
    ] {
        let view = vs(spec);
        assert_eq!(view["editable"], false, "{spec}");
        assert!(
            view["reason"].as_str().is_some_and(|r| r.contains(why)),
            "{why}: {view}"
        );
    }
    // A timeout on the rule stays through an edit and through reset.
    let view = vs(
        "  http:\n  - timeout: 3s\n    route: [{destination: {host: recommendation-service}}]\n",
    );
    assert_eq!(view["editable"], true, "{view}");
    assert_eq!(
        view["weights"],
        Value::Null,
        "one route to the host is no split"
    );
    let rv = view["virtualService"]["resourceVersion"].clone();
    let after = put(
        &store,
        "default",
        "recommendation-service",
        &json!({"weights": {"v1": 10, "v2": 90}, "resourceVersion": rv}),
    )
    .expect("put");
    let stored = json_of(&store.list(Kind::VirtualService, None)[0]);
    assert_eq!(stored["spec"]["http"][0]["timeout"], "3s", "{stored}");
    let rv = after["virtualService"]["resourceVersion"]
        .as_str()
        .map(str::to_string);
    let reset = reset(&store, "default", "recommendation-service", rv.as_deref()).expect("reset");
    assert_eq!(reset["weights"], Value::Null);
    let stored = json_of(&store.list(Kind::VirtualService, None)[0]);
    assert_eq!(stored["spec"]["http"][0]["timeout"], "3s", "{stored}");
    assert_eq!(
        stored["spec"]["http"][0]["route"][0]["destination"]["subset"],
        Value::Null
    );
    // A VirtualService of the service's name made for other hosts is not overwritten.
    let _ = store.delete(&Key::of(&store.list(Kind::VirtualService, None)[0]));
    let other = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: recommendation-service, namespace: default}\nspec:\n  hosts: [shop.example.com]\n  http:\n  - route: [{destination: {host: shop.example.com}}]\n";
    store
        .put(
            weft_api::load_str("t", other).resources.remove(0).resource,
            true,
        )
        .expect("put");
    assert!(matches!(
        put(&store, "default", "recommendation-service", &json!({"weights": {"v1": 10, "v2": 90}, "resourceVersion": null})),
        Err(Refused::Conflict(m)) if m.contains("other hosts")
    ));
    assert_eq!(
        service_of_host("api.example.com", "shop"),
        ("shop".to_string(), "api.example.com".to_string())
    );
    assert_eq!(
        service_of_host("reviews.bookinfo.svc.cluster.local", "shop"),
        ("bookinfo".to_string(), "reviews".to_string())
    );
    let _ = std::fs::remove_dir_all(dir);
}
