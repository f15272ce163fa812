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

impl ClientTlsSettings {
    fn mode_name(&self) -> &'static str {
        match self.mode {
            ClientTlsMode::Disable => "DISABLE",
            ClientTlsMode::Simple => "SIMPLE",
            ClientTlsMode::Mutual => "MUTUAL",
            ClientTlsMode::IstioMutual => "ISTIO_MUTUAL",
        }
    }
}

// Istio's rules (`validateTLS` in pkg/config/validation): what it refuses is refused, what it
// accepts but never uses is accepted with a warning saying so.
impl Validate for ClientTlsSettings {
    fn validate(&self, v: &mut Validator) {
        let client_files = self.client_certificate.is_some() || self.private_key.is_some();
        let originates = matches!(self.mode, ClientTlsMode::Simple | ClientTlsMode::Mutual);
        if self.insecure_skip_verify == Some(true) {
            match self.mode {
                ClientTlsMode::Simple
                    if self.ca_certificates.is_some()
                        || self.credential_name.is_some()
                        || !self.subject_alt_names.is_empty() =>
                {
                    v.error("cannot specify caCertificates, credentialName or subjectAltNames when insecureSkipVerify is true");
                }
                ClientTlsMode::Mutual
                    if self.ca_certificates.is_some() || !self.subject_alt_names.is_empty() =>
                {
                    v.error("cannot specify caCertificates or subjectAltNames when insecureSkipVerify is true");
                }
                _ => {}
            }
        }
        match self.mode {
            ClientTlsMode::Disable | ClientTlsMode::IstioMutual => {
                let set: Vec<&str> = [
                    ("clientCertificate", self.client_certificate.is_some()),
                    ("privateKey", self.private_key.is_some()),
                    ("caCertificates", self.ca_certificates.is_some()),
                    ("credentialName", self.credential_name.is_some()),
                    ("caCrl", self.ca_crl.is_some()),
                ]
                .into_iter()
                .filter_map(|(name, set)| set.then_some(name))
                .collect();
                if !set.is_empty() {
                    v.warn(format!(
                        "{} has no effect with mode {}",
                        set.join(", "),
                        self.mode_name()
                    ));
                }
            }
            ClientTlsMode::Mutual => {
                if self.credential_name.is_none() {
                    if self.client_certificate.is_none() {
                        v.error("client certificate required for mutual tls (clientCertificate)");
                    }
                    if self.private_key.is_none() {
                        v.error("private key required for mutual tls (privateKey)");
                    }
                }
            }
            ClientTlsMode::Simple => {
                if client_files {
                    v.warn("clientCertificate and privateKey have no effect with mode SIMPLE (no client certificate is sent); use MUTUAL to send one");
                }
            }
        }
        if originates && self.credential_name.is_some() {
            if client_files || self.ca_certificates.is_some() || self.ca_crl.is_some() {
                v.error("cannot specify client certificates, CA certificate or CA CRL if credentialName is set");
            }
            // weft reads certificates from files; there are no Kubernetes secrets to name.
            v.error_at(
                "credentialName",
                "not supported: weft has no Kubernetes secrets; give clientCertificate, privateKey and caCertificates as files",
            );
        }
        if originates && self.ca_crl.is_some() {
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
