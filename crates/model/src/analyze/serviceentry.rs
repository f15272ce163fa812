//! ServiceEntry analyzers: IST0134 ServiceEntryAddressesRequired. A ServiceEntry with
//! a TCP port (or one whose protocol is unset) and no `addresses` cannot be told apart
//! from other TCP traffic on that port, so its traffic may go elsewhere.

use weft_api::Resource;

use super::{Context, Finding, codes, finding, involved};

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    for r in ctx.resources {
        let Resource::ServiceEntry(se) = &r.resource else {
            continue;
        };
        if !se.spec.addresses.is_empty() {
            continue;
        }
        for (i, port) in se.spec.ports.iter().enumerate() {
            if port.protocol.is_empty() || port.protocol.eq_ignore_ascii_case("TCP") {
                out.push(finding(
                    codes::SERVICE_ENTRY_ADDRESSES_REQUIRED,
                    "ServiceEntry addresses are required for this protocol.".to_string(),
                    vec![involved(r, &format!("spec.ports[{i}].protocol"))],
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{codes_of, run};

    const ENTRY: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db.example.com]
ADDRESSES  ports: [{number: 5432, name: pg, protocol: PROTOCOL}]
  resolution: DNS
";

    #[test]
    fn a_tcp_service_entry_without_addresses_is_reported() {
        let f = run(&ENTRY.replace("ADDRESSES", "").replace("PROTOCOL", "TCP"));
        assert_eq!(codes_of(&f), vec!["IST0134"], "{f:?}");
        let f = run(&ENTRY
            .replace("ADDRESSES", "  addresses: [240.0.0.9]\n")
            .replace("PROTOCOL", "TCP"));
        assert_eq!(f, vec![]);
        let f = run(&ENTRY.replace("ADDRESSES", "").replace("PROTOCOL", "HTTP"));
        assert_eq!(f, vec![]);
    }
}
