//! TLS from the client proxy toward the upstream.

use serde::{Deserialize, Serialize};

use crate::validate::{Validate, Validator, checks};

/// TLS toward the upstream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientTlsSettings {
    /// TLS mode.
    #[serde(default)]
    pub mode: ClientTlsMode,
    /// Client certificate file (MUTUAL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    /// Client key file (MUTUAL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// CA certificates file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
    /// Name of a secret holding the credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<String>,
    /// Accepted server identities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    /// SNI to send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Skip server certificate verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
    /// Certificate revocation list file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_crl: Option<String>,
}

/// Client TLS modes.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClientTlsMode {
    /// Plaintext.
    #[default]
    Disable,
    /// TLS with server verification.
    Simple,
    /// TLS with client certificates given by the user.
    Mutual,
    /// Mesh mTLS with identities from the mesh CA.
    IstioMutual,
}

impl Validate for ClientTlsSettings {
    fn validate(&self, v: &mut Validator) {
        let has_files = self.client_certificate.is_some()
            || self.private_key.is_some()
            || self.ca_certificates.is_some();
        match self.mode {
            ClientTlsMode::Disable | ClientTlsMode::IstioMutual => {
                if has_files || self.credential_name.is_some() {
                    v.error(format!(
                        "certificates and credentialName cannot be set with mode {}",
                        if self.mode == ClientTlsMode::Disable {
                            "DISABLE"
                        } else {
                            "ISTIO_MUTUAL"
                        }
                    ));
                }
            }
            ClientTlsMode::Mutual => {
                if self.credential_name.is_none()
                    && (self.client_certificate.is_none() || self.private_key.is_none())
                {
                    v.error("MUTUAL mode needs clientCertificate and privateKey");
                }
            }
            ClientTlsMode::Simple => {
                if self.client_certificate.is_some() || self.private_key.is_some() {
                    v.error("SIMPLE mode does not use clientCertificate or privateKey; use MUTUAL");
                }
            }
        }
        if self.credential_name.is_some() && has_files {
            v.error("credentialName cannot be combined with certificate files");
        }
        // weft reads certificates from files; there are no Kubernetes secrets to name.
        if self.credential_name.is_some() {
            v.error_at(
                "credentialName",
                "not supported: weft has no Kubernetes secrets; give clientCertificate, privateKey and caCertificates as files",
            );
        }
        if self.ca_crl.is_some() {
            v.error_at(
                "caCrl",
                "not supported: certificate revocation lists are not checked; remove the field",
            );
        }
        if let Some(sni) = &self.sni {
            v.field("sni", |v| checks::wildcard_host(v, sni));
        }
    }
}
