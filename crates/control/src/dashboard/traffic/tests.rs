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
        &json!({"weights": {"v1": 10, "v2": 90}, "fault": {"abort": {"httpStatus": 500, "percentage": 100}}}),
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
    // Writing again edits the same VirtualService; reset removes it.
    put(
        &store,
        "default",
        "recommendation-service",
        &json!({"weights": {"v1": 50, "v2": 50}}),
    )
    .expect("again");
    assert_eq!(store.list(Kind::VirtualService, None).len(), 1);
    let reset = reset(&store, "default", "recommendation-service").expect("reset");
    assert_eq!(reset["virtualService"], Value::Null);
    assert!(store.list(Kind::VirtualService, None).is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn invalid_values_name_their_field() {
    let (store, dir) = store();
    let put = |form: Value| super::put(&store, "default", "recommendation-service", &form);
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
            &json!({"weights": {"v1": 100}})
        ),
        Err(Refused::Conflict(_))
    ));
    let _ = std::fs::remove_dir_all(dir);
}
