//! Istio's `ZipkinTracingProvider`: spans exported as Zipkin's JSON v2 (`POST
//! /api/v2/spans`), to Zipkin itself, Jaeger's Zipkin receiver, an OpenTelemetry
//! collector's zipkin receiver or weft's own trace store.

use serde::{Deserialize, Serialize};

use crate::validate::{Validator, checks};

/// Zipkin's span API, the default `path`.
pub const DEFAULT_PATH: &str = "/api/v2/spans";

/// Istio's default `maxTagLength`.
pub const DEFAULT_MAX_TAG_LENGTH: u32 = 256;

/// `extensionProviders[].zipkin`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZipkinProvider {
    /// The collector's host (`zipkin.istio-system.svc.cluster.local`, an IP).
    #[serde(default)]
    pub service: String,
    /// The collector's port (Zipkin's is 9411).
    #[serde(default)]
    pub port: u32,
    /// Tag values longer than this are cut (Istio's default 256; 0 keeps the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tag_length: Option<u32>,
    /// 64-bit trace ids for new traces; weft's are 128-bit (W3C), so only `false`.
    #[serde(
        default,
        rename = "enable64bitTraceId",
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_64bit_trace_id: Option<bool>,
    /// The span API's path (default `/api/v2/spans`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl ZipkinProvider {
    /// `http://<service>:<port><path or /api/v2/spans>`.
    pub fn endpoint(&self) -> String {
        let path = self
            .path
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or(DEFAULT_PATH);
        super::http_endpoint(&self.service, self.port, path)
    }

    /// The longest tag value exported.
    pub fn max_tag_length(&self) -> u32 {
        self.max_tag_length
            .filter(|l| *l > 0)
            .unwrap_or(DEFAULT_MAX_TAG_LENGTH)
    }

    pub(super) fn check(&self, v: &mut Validator) {
        super::check_service(v, &self.service, "zipkin.istio-system.svc.cluster.local");
        checks::port_number(v, "port", self.port);
        if let Some(p) = &self.path
            && !p.is_empty()
            && !p.starts_with('/')
        {
            v.error_at("path", format!("must start with / (got {p:?})"));
        }
        if self.enable_64bit_trace_id == Some(true) {
            v.error_at(
                "enable64bitTraceId",
                "weft does not implement 64-bit trace ids: its trace ids are 128-bit (W3C trace context), which Zipkin accepts",
            );
        }
    }
}
