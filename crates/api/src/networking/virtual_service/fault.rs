//! Fault injection in an HTTP rule: delays and aborts.

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::networking::common::Percent;
use crate::validate::{Validate, Validator, checks};

/// Fault injection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpFaultInjection {
    /// Delay requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Delay>,
    /// Abort requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<Abort>,
}

/// Delay fault.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delay {
    /// Fixed delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_delay: Option<Duration>,
    /// Exponential delay (not supported by Istio either).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exponential_delay: Option<Duration>,
    /// Share of requests delayed; absent means 0 %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
    /// Deprecated integer form of `percentage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<i32>,
}

/// Abort fault.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Abort {
    /// HTTP status to answer with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<i32>,
    /// gRPC status name to answer with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<String>,
    /// HTTP/2 error (not supported by Istio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_error: Option<String>,
    /// Share of requests aborted; absent means 0 %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
    /// Deprecated integer percent, from releases before `percentage` (the seed scenario's form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<i32>,
}

impl Validate for HttpFaultInjection {
    fn validate(&self, v: &mut Validator) {
        if self.delay.is_none() && self.abort.is_none() {
            v.error("a fault needs an abort or a delay");
        }
        v.optional("delay", &self.delay);
        v.optional("abort", &self.abort);
    }
}

fn deprecated_percent(v: &mut Validator, percent: Option<i32>, percentage: &Option<Percent>) {
    let Some(p) = percent else { return };
    v.field("percent", |v| {
        v.warn(format!(
            "the integer percent is deprecated; use percentage: {{value: {p}}}"
        ));
        if !(0..=100).contains(&p) {
            v.error(format!("must be in 0..100 (got {p})"));
        }
        if percentage.is_some() {
            v.error("percent and percentage cannot both be set");
        }
    });
}

impl Validate for Delay {
    fn validate(&self, v: &mut Validator) {
        if self.exponential_delay.is_some() {
            v.error_at(
                "exponentialDelay",
                "exponentialDelay is not supported (as in Istio); use fixedDelay",
            );
        } else if self.fixed_delay.is_none() {
            // Istio accepts it and leaves the delay out of the route.
            v.warn("delay configured without fixedDelay: no request is delayed");
        }
        checks::duration_at_least(v, "fixedDelay", &self.fixed_delay, checks::ONE_MS);
        v.optional("percentage", &self.percentage);
        deprecated_percent(v, self.percent, &self.percentage);
    }
}

impl Validate for Abort {
    fn validate(&self, v: &mut Validator) {
        let kinds = [
            self.http_status.is_some(),
            self.grpc_status.is_some(),
            self.http2_error.is_some(),
        ];
        match kinds.iter().filter(|k| **k).count() {
            // Istio's warning; the abort is left out of the route.
            0 => v.warn("abort configured, but error type not set: no request is aborted (set httpStatus or grpcStatus)"),
            1 => {}
            _ => v.error("only one of httpStatus, grpcStatus or http2Error may be set"),
        }
        if let Some(status) = self.http_status {
            if !(200..=600).contains(&status) {
                v.error_at("httpStatus", format!("must be in 200..600 (got {status})"));
            }
        }
        if let Some(name) = &self.grpc_status {
            if !checks::GRPC_STATUS_NAMES.contains(&name.as_str()) {
                let mut msg = format!("unknown gRPC status {name:?}");
                if let Some(s) = crate::source::suggest(name, checks::GRPC_STATUS_NAMES) {
                    msg.push_str(&format!(" (did you mean {s:?}?)"));
                }
                v.error_at("grpcStatus", msg);
            }
        }
        if self.http2_error.is_some() {
            v.error_at(
                "http2Error",
                "http2Error aborts are not supported (as in Istio); use httpStatus or grpcStatus",
            );
        }
        v.optional("percentage", &self.percentage);
        deprecated_percent(v, self.percent, &self.percentage);
    }
}
