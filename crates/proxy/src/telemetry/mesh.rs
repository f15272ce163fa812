//! What the control plane's mesh config (Istio's MeshConfig) changes in a proxy's
//! telemetry: where spans go and how many are sampled, and the access log. Flags win: a
//! proxy started with `--trace-endpoint` (or `--access-log`) keeps it whatever the mesh
//! config says.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use http::{HeaderName, HeaderValue, Uri};
use weft_api::mesh_config::{AccessLogEncoding, MeshConfig};
use weft_model::telemetry::ProxyTelemetry;

use super::access_log::{AccessLog, Format, Target};
use super::spans::{Exporter, Tracer};
use super::{Sinks, Telemetry};

/// A proxy's telemetry settings, as a mesh config decides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeshSettings {
    /// Tracing; `None`: off.
    pub tracing: Option<TraceSettings>,
    /// The access log; `None`: off.
    pub access_log: Option<(Target, Format)>,
    /// The tracing providers Telemetry resources name, by name.
    pub tracers: BTreeMap<String, TraceSettings>,
    /// The access log providers Telemetry resources name, by name.
    pub file_logs: BTreeMap<String, (Target, Format)>,
}

fn log_target(file: &str, encoding: AccessLogEncoding) -> (Target, Format) {
    let target = match file {
        "/dev/stdout" => Target::Stdout,
        path => Target::File(PathBuf::from(path)),
    };
    let format = match encoding {
        AccessLogEncoding::Text => Format::Text,
        AccessLogEncoding::Json => Format::Json,
    };
    (target, format)
}

impl MeshSettings {
    /// What `mesh` asks for (see [`trace_settings`]), with the providers that the
    /// resolved Telemetry `telemetry` names.
    pub fn of(mesh: &MeshConfig, telemetry: &ProxyTelemetry) -> Result<MeshSettings, String> {
        let encoding = mesh.access_log_encoding.unwrap_or_default();
        let mut tracers = BTreeMap::new();
        let mut file_logs = BTreeMap::new();
        for side in [&telemetry.client, &telemetry.server] {
            if let Some(name) = &side.tracing.provider
                && let Some(s) = provider_trace_settings(mesh, name)?
            {
                tracers.insert(name.clone(), s);
            }
            for name in side.access_log.providers.keys() {
                if let Some(path) = mesh.access_log_provider_path(name) {
                    file_logs.insert(name.clone(), log_target(path, encoding));
                }
            }
        }
        Ok(MeshSettings {
            tracing: trace_settings(mesh)?,
            access_log: mesh
                .access_log()
                .map(|(file, encoding)| log_target(file, encoding)),
            tracers,
            file_logs,
        })
    }
}

/// Settings made ready by [`MeshTelemetry::prepare`] (the access log file is open), to be
/// put in force by [`MeshTelemetry::commit`] once the whole update is accepted.
#[derive(Debug)]
pub struct Prepared {
    settings: MeshSettings,
    /// A new access log to put in force (`Some(None)`: turn it off); `None`: unchanged.
    access_log: Option<Option<Arc<AccessLog>>>,
    /// The providers' access logs (those unchanged kept open).
    file_logs: HashMap<String, Arc<AccessLog>>,
}

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
    match mesh.trace_export() {
        Some(export) => exporter_settings(mesh, export).map(Some),
        None => Ok(None),
    }
}

/// The trace settings of provider `name`, which a Telemetry resource names (tracing on
/// whatever `enableTracing` says, as in Istio); `None` when it is no tracing provider.
fn provider_trace_settings(mesh: &MeshConfig, name: &str) -> Result<Option<TraceSettings>, String> {
    let Some((endpoint, protocol)) = mesh.provider(name).and_then(|p| p.trace_endpoint()) else {
        tracing::warn!(
            provider = name,
            "a Telemetry names a provider that is no tracing provider of the mesh config"
        );
        return Ok(None);
    };
    let export = weft_api::mesh_config::TraceExport {
        provider: name.to_string(),
        endpoint,
        protocol,
        sampling: mesh.sampling(),
    };
    exporter_settings(mesh, export).map(Some)
}

fn exporter_settings(
    mesh: &MeshConfig,
    export: weft_api::mesh_config::TraceExport,
) -> Result<TraceSettings, String> {
    let endpoint: Uri = export.endpoint.parse().map_err(|e| {
        format!(
            "meshConfig: tracing provider `{}`: endpoint {}: {e}",
            export.provider, export.endpoint
        )
    })?;
    let mut exporter = Exporter::new(endpoint);
    exporter.protocol = export.protocol;
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
    Ok(TraceSettings {
        exporter,
        sampling: export.sampling,
    })
}

/// Applies pushed mesh configs to one proxy's tracer and access log.
#[derive(Debug)]
pub struct MeshTelemetry {
    telemetry: Arc<Telemetry>,
    /// The proxy was started with `--trace-endpoint`: the mesh config does not change it.
    trace_flag: bool,
    /// The proxy was started with `--access-log`: the mesh config does not change it.
    access_log_flag: bool,
    /// The span resource (service name, workload, node id).
    resource: Vec<(&'static str, String)>,
    /// The settings in force, so an unchanged push keeps the tracer and the log.
    in_force: Mutex<MeshSettings>,
}

impl MeshTelemetry {
    /// Applies mesh configs to `telemetry`, whose spans carry `resource`; `trace_flag` and
    /// `access_log_flag` when the proxy's own flags set them.
    pub fn new(
        telemetry: Arc<Telemetry>,
        trace_flag: bool,
        access_log_flag: bool,
        resource: Vec<(&'static str, String)>,
    ) -> MeshTelemetry {
        MeshTelemetry {
            telemetry,
            trace_flag,
            access_log_flag,
            resource,
            in_force: Mutex::new(MeshSettings::default()),
        }
    }

    /// Readies `settings`: opens a new access log file when it changes (an error refuses
    /// the update). Nothing changes until [`MeshTelemetry::commit`].
    pub fn prepare(&self, settings: MeshSettings) -> Result<Prepared, String> {
        let in_force = self.in_force.lock().unwrap_or_else(|e| e.into_inner());
        let access_log = match &settings.access_log {
            _ if self.access_log_flag => None,
            wanted if *wanted == in_force.access_log => None,
            None => Some(None),
            Some((target, format)) => {
                let log = AccessLog::start(target, *format)
                    .map_err(|e| format!("meshConfig.accessLogFile: {target:?}: {e}"))?;
                Some(Some(Arc::new(log)))
            }
        };
        let current = self.telemetry.sinks.load();
        let mut file_logs = HashMap::new();
        // With `--access-log` the flag's log takes every provider's lines.
        let named = (!self.access_log_flag).then_some(&settings.file_logs);
        for (name, (target, format)) in named.into_iter().flatten() {
            let log = match current.file_logs.get(name) {
                Some(log) if in_force.file_logs.get(name) == Some(&(target.clone(), *format)) => {
                    log.clone()
                }
                _ => Arc::new(
                    AccessLog::start(target, *format)
                        .map_err(|e| format!("access log provider `{name}`: {target:?}: {e}"))?,
                ),
            };
            file_logs.insert(name.clone(), log);
        }
        Ok(Prepared {
            settings,
            access_log,
            file_logs,
        })
    }

    /// Puts prepared settings in force. Requests already started finish with the tracer
    /// and access log they had.
    pub fn commit(&self, prepared: Prepared) {
        let mut in_force = self.in_force.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.telemetry.sinks.load_full();
        let access_log = match prepared.access_log {
            Some(log) => {
                tracing::info!(access_log = ?prepared.settings.access_log, "access log as the mesh config says");
                log
            }
            None => current.access_log.clone(),
        };
        let tracing = &prepared.settings.tracing;
        let tracer = if !self.trace_flag && *tracing != in_force.tracing {
            match tracing {
                Some(s) => {
                    tracing::info!(endpoint = %s.exporter.endpoint, sampling = s.sampling, "tracing as the mesh config says");
                    Some(Arc::new(Tracer::start(
                        s.exporter.clone(),
                        s.sampling,
                        self.resource.clone(),
                        self.telemetry.spans.clone(),
                    )))
                }
                None => {
                    tracing::info!("the mesh config turns tracing off");
                    None
                }
            }
        } else {
            current.tracer.clone()
        };
        // With `--trace-endpoint` the flag's tracer takes every provider's spans.
        let named = (!self.trace_flag).then_some(&prepared.settings.tracers);
        let tracers = named
            .into_iter()
            .flatten()
            .map(|(name, s)| {
                let tracer = match current.tracers.get(name) {
                    Some(t) if in_force.tracers.get(name) == Some(s) => t.clone(),
                    _ => {
                        tracing::info!(provider = %name, endpoint = %s.exporter.endpoint, "tracing to a provider a Telemetry names");
                        Arc::new(Tracer::start(
                            s.exporter.clone(),
                            s.sampling,
                            self.resource.clone(),
                            self.telemetry.spans.clone(),
                        ))
                    }
                };
                (name.clone(), tracer)
            })
            .collect();
        self.telemetry.sinks.store(Arc::new(Sinks {
            tracer,
            access_log,
            tracers,
            file_logs: prepared.file_logs,
            flag_tracer: self.trace_flag,
            flag_log: self.access_log_flag,
        }));
        *in_force = prepared.settings;
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
