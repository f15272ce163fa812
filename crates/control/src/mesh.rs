//! The mesh config the control plane pushes: the operator's (`--mesh-config`), or Istio's
//! defaults, with the control plane's own trace store as the tracing provider when the
//! operator names none, so proxies of the control plane trace into it out of the box.

use std::net::SocketAddr;

use weft_api::mesh_config::{
    DefaultProviders, ExtensionProvider, MeshConfig, OpenTelemetryProvider,
};

/// The provider name of the embedded trace store in the pushed mesh config.
pub const TRACE_STORE_PROVIDER: &str = "weft-trace-store";

/// Why a mesh config cannot be used by this control plane.
#[derive(Debug, thiserror::Error)]
pub enum MeshConfigError {
    /// The operator named a provider like the embedded trace store.
    #[error(
        "extensionProviders: the name `{TRACE_STORE_PROVIDER}` is reserved for the control plane's trace store; rename the provider"
    )]
    ReservedName,
    /// The mesh config's trust domain is not the CA's.
    #[error(
        "trustDomain {mesh} is not the certificate authority's trust domain {ca}; make them agree"
    )]
    TrustDomain {
        /// The mesh config's.
        mesh: String,
        /// The CA's.
        ca: String,
    },
}

/// Checks that the mesh config's `trustDomain`, when set, is the CA's `ca` (the CA issues
/// the identities the mesh config names).
pub fn check_trust_domain(mesh: &MeshConfig, ca: &str) -> Result<(), MeshConfigError> {
    match &mesh.trust_domain {
        Some(td) if td != ca => Err(MeshConfigError::TrustDomain {
            mesh: td.clone(),
            ca: ca.to_string(),
        }),
        _ => Ok(()),
    }
}

/// The mesh config pushed to proxies: `operator`'s (Istio's defaults without one) and,
/// when it sets no default tracing provider, the embedded trace store at `trace_store`
/// (the OTLP receiver's address, as proxies reach it) as that provider.
pub fn effective(
    operator: Option<&MeshConfig>,
    trace_store: Option<SocketAddr>,
) -> Result<MeshConfig, MeshConfigError> {
    let mut mesh = operator.cloned().unwrap_or_default();
    if mesh.provider(TRACE_STORE_PROVIDER).is_some() {
        return Err(MeshConfigError::ReservedName);
    }
    let Some(addr) = trace_store else {
        return Ok(mesh);
    };
    if mesh.default_tracing_provider().is_some() {
        return Ok(mesh);
    }
    // A receiver on every address (`0.0.0.0`) is reached on loopback.
    let ip = match addr.ip() {
        ip if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        ip => ip,
    };
    mesh.extension_providers.push(ExtensionProvider {
        name: TRACE_STORE_PROVIDER.into(),
        opentelemetry: Some(OpenTelemetryProvider {
            service: ip.to_string(),
            port: u32::from(addr.port()),
            http: None,
        }),
        ..ExtensionProvider::default()
    });
    let defaults = mesh
        .default_providers
        .get_or_insert_with(DefaultProviders::default);
    defaults.tracing = vec![TRACE_STORE_PROVIDER.into()];
    Ok(mesh)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> MeshConfig {
        weft_api::mesh_config::load_mesh_config("mesh.yaml", text)
            .config
            .expect("valid")
    }

    #[test]
    fn without_a_tracing_provider_proxies_trace_into_the_trace_store() {
        let store = "0.0.0.0:4318".parse().ok();
        let mesh = effective(None, store).expect("as written");
        let export = mesh.trace_export().expect("as written");
        assert_eq!(export.endpoint, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(export.sampling, 1.0);

        let sampled = read("defaultConfig: {tracing: {sampling: 10}}\n");
        let export = effective(Some(&sampled), store)
            .expect("as written")
            .trace_export()
            .expect("as written");
        assert_eq!(
            (export.provider.as_str(), export.sampling),
            (TRACE_STORE_PROVIDER, 10.0)
        );

        let off = read("enableTracing: false\n");
        assert_eq!(
            effective(Some(&off), store)
                .expect("as written")
                .trace_export(),
            None
        );
        assert_eq!(
            effective(None, None).expect("as written").trace_export(),
            None
        );
    }

    #[test]
    fn the_operators_provider_wins_and_the_store_name_is_reserved() {
        let text = "extensionProviders:\n- name: otel\n  opentelemetry: {service: collector, port: 4318}\ndefaultProviders: {tracing: [otel]}\n";
        let mesh = effective(Some(&read(text)), "127.0.0.1:4318".parse().ok()).expect("as written");
        assert_eq!(
            mesh.trace_export().expect("as written").endpoint,
            "http://collector:4318/v1/traces"
        );
        assert_eq!(mesh.extension_providers.len(), 1);

        let taken = read(&text.replace("otel", TRACE_STORE_PROVIDER));
        assert!(effective(Some(&taken), None).is_err());

        let domain = read("trustDomain: prod.example\n");
        assert!(check_trust_domain(&domain, "prod.example").is_ok());
        assert!(check_trust_domain(&domain, "cluster.local").is_err());
        assert!(check_trust_domain(&MeshConfig::default(), "cluster.local").is_ok());
    }
}
