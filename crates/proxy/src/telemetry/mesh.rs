//! What the control plane's mesh config (Istio's MeshConfig) changes in a proxy's
//! telemetry: where spans go and how many are sampled. Flags win: a proxy started with
//! `--trace-endpoint` keeps it whatever the mesh config says.

use std::sync::{Arc, Mutex};

use http::{HeaderName, HeaderValue, Uri};
use weft_api::mesh_config::MeshConfig;

use super::Telemetry;
use super::spans::{Exporter, Tracer};

/// How a proxy traces, as a mesh config decides.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSettings {
    /// Where and how spans are exported.
    pub exporter: Exporter,
    /// Percent of new traces sampled.
    pub sampling: f64,
}

/// The trace settings `mesh` asks for: `None` with `enableTracing: false` or without a
/// default tracing provider. An endpoint or header that is not valid HTTP is an error
/// (the update is refused).
pub fn trace_settings(mesh: &MeshConfig) -> Result<Option<TraceSettings>, String> {
    let Some(export) = mesh.trace_export() else {
        return Ok(None);
    };
    let endpoint: Uri = export.endpoint.parse().map_err(|e| {
        format!(
            "meshConfig: tracing provider `{}`: endpoint {}: {e}",
            export.provider, export.endpoint
        )
    })?;
    let mut exporter = Exporter::new(endpoint);
    let http = mesh
        .provider(&export.provider)
        .and_then(|p| p.opentelemetry.as_ref())
        .and_then(|o| o.http.as_ref());
    if let Some(http) = http {
        if let Some(timeout) = http.timeout {
            exporter.timeout = timeout.get();
        }
        for h in &http.headers {
            let name = HeaderName::try_from(h.name.as_str())
                .map_err(|e| format!("meshConfig: header {:?}: {e}", h.name))?;
            let value = HeaderValue::try_from(h.value.as_str())
                .map_err(|e| format!("meshConfig: header {:?}: {e}", h.name))?;
            exporter.headers.push((name, value));
        }
    }
    Ok(Some(TraceSettings {
        exporter,
        sampling: export.sampling,
    }))
}

/// Applies pushed mesh configs to one proxy's tracer.
#[derive(Debug)]
pub struct MeshTelemetry {
    telemetry: Arc<Telemetry>,
    /// The proxy was started with `--trace-endpoint`: the mesh config does not change it.
    flag_wins: bool,
    /// The span resource (service name, workload, node id).
    resource: Vec<(&'static str, String)>,
    /// The settings of the tracer in force, so an unchanged push keeps it.
    in_force: Mutex<Option<TraceSettings>>,
}

impl MeshTelemetry {
    /// Applies mesh configs to `telemetry`, whose spans carry `resource`; `flag_wins`
    /// when the proxy's own flags set tracing.
    pub fn new(
        telemetry: Arc<Telemetry>,
        flag_wins: bool,
        resource: Vec<(&'static str, String)>,
    ) -> MeshTelemetry {
        MeshTelemetry {
            telemetry,
            flag_wins,
            resource,
            in_force: Mutex::new(None),
        }
    }

    /// Makes `settings` (from [`trace_settings`]; `None`: no tracing) the tracing in force,
    /// unless flags set it. Requests already started finish with the tracer they had.
    pub fn apply(&self, settings: Option<TraceSettings>) {
        if self.flag_wins {
            return;
        }
        let mut in_force = self.in_force.lock().unwrap_or_else(|e| e.into_inner());
        if *in_force == settings {
            return;
        }
        let tracer = settings.as_ref().map(|s| {
            tracing::info!(endpoint = %s.exporter.endpoint, sampling = s.sampling, "tracing as the mesh config says");
            Arc::new(Tracer::start(
                s.exporter.clone(),
                s.sampling,
                self.resource.clone(),
                self.telemetry.spans.clone(),
            ))
        });
        if tracer.is_none() {
            tracing::info!("the mesh config turns tracing off");
        }
        self.telemetry.tracer.store(tracer);
        *in_force = settings;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mesh(text: &str) -> MeshConfig {
        weft_api::mesh_config::load_mesh_config("mesh.yaml", text)
            .config
            .expect("valid")
    }

    #[test]
    fn the_default_provider_gives_endpoint_headers_timeout_and_sampling() {
        let text = "\
defaultConfig: {tracing: {sampling: 50}}
extensionProviders:
- name: otel
  opentelemetry:
    service: collector
    port: 4318
    http: {path: /otlp/v1/traces, timeout: 2s, headers: [{name: x-tenant, value: shop}]}
defaultProviders: {tracing: [otel]}
";
        let s = trace_settings(&mesh(text))
            .expect("as written")
            .expect("as written");
        assert_eq!(s.exporter.endpoint, "http://collector:4318/otlp/v1/traces");
        assert_eq!(s.exporter.timeout, std::time::Duration::from_secs(2));
        assert_eq!(s.exporter.headers[0].0, "x-tenant");
        assert_eq!(s.sampling, 50.0);
        let off = text.replace("defaultConfig", "enableTracing: false\ndefaultConfig");
        assert_eq!(trace_settings(&mesh(&off)).expect("as written"), None);
        assert_eq!(
            trace_settings(&MeshConfig::default()).expect("as written"),
            None
        );
    }
}
