//! IST0171 NegativeConditionStatus: the status conditions Istio's condition analyzer
//! reports when written into the analyzed files (as `kubectl get -o yaml` shows them): a
//! Service's or ServiceEntry's `istio.io/WaypointBound`, an AuthorizationPolicy's
//! `ZtunnelAccepted` or `WaypointAccepted`, with status `False`, and an
//! AuthorizationPolicy's `WaypointAccepted` with reason `PartiallyInvalid`. (The Gateway
//! API's conditions come with its kinds.)

use serde_json::Value;
use weft_api::Resource;

use super::{Context, Finding, codes, finding, involved};

/// The condition types reported when `False`, by kind.
fn negative(resource: &Resource) -> &'static [&'static str] {
    match resource {
        Resource::Service(_) | Resource::ServiceEntry(_) => &["istio.io/WaypointBound"],
        Resource::AuthorizationPolicy(_) => &["ZtunnelAccepted", "WaypointAccepted"],
        _ => &[],
    }
}

fn status(resource: &Resource) -> Option<&Value> {
    match resource {
        Resource::Service(s) => s.fields.get("status"),
        Resource::ServiceEntry(o) => o.status.as_ref(),
        Resource::AuthorizationPolicy(o) => o.status.as_ref(),
        _ => None,
    }
}

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    for r in ctx.resources {
        let types = negative(&r.resource);
        let Some(Value::Array(conditions)) = status(&r.resource).and_then(|s| s.get("conditions"))
        else {
            continue;
        };
        for c in conditions {
            let text = |key: &str| c.get(key).and_then(Value::as_str).unwrap_or_default();
            let (kind, state, reason) = (text("type"), text("status"), text("reason"));
            let partially = matches!(r.resource, Resource::AuthorizationPolicy(_))
                && kind == "WaypointAccepted"
                && reason == "PartiallyInvalid";
            if (types.contains(&kind) && state == "False") || partially {
                out.push(finding(
                    codes::NEGATIVE_CONDITION_STATUS,
                    format!(
                        "Negative condition {kind}: reason {reason:?}, message {:?}",
                        text("message")
                    ),
                    vec![involved(r, "status")],
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{codes_of, run};

    fn policy(condition: &str) -> String {
        format!(
            "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: deny-all}}
spec: {{}}
status:
  conditions: [{condition}]
"
        )
    }

    #[test]
    fn a_negative_condition_is_reported_with_its_reason() {
        let f = run(&policy(
            "{type: WaypointAccepted, status: \"False\", reason: Invalid, message: no waypoint}",
        ));
        assert_eq!(codes_of(&f), vec!["IST0171"], "{f:?}");
        assert_eq!(
            f[0].message,
            "Negative condition WaypointAccepted: reason \"Invalid\", message \"no waypoint\""
        );
        let f = run(&policy(
            "{type: WaypointAccepted, status: \"True\", reason: PartiallyInvalid}",
        ));
        assert_eq!(codes_of(&f), vec!["IST0171"], "partially invalid: {f:?}");
        let f = run("apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{name: http, port: 80}]}
status:
  conditions: [{type: istio.io/WaypointBound, status: \"False\", reason: WaypointNotFound}]
");
        assert!(codes_of(&f).contains(&"IST0171"), "{f:?}");
    }

    #[test]
    fn true_and_unlisted_conditions_are_clean() {
        for condition in [
            "{type: WaypointAccepted, status: \"True\", reason: Accepted}",
            "{type: Reconciled, status: \"False\"}",
        ] {
            assert!(!codes_of(&run(&policy(condition))).contains(&"IST0171"));
        }
    }
}
