//! The mesh's certificate authority: a root generated on first start (or supplied by the
//! operator), kept with owner-only permissions, that signs short-lived SPIFFE certificates
//! (`spiffe://<trust-domain>/ns/<ns>/sa/<sa>`) for proxies that prove who they are with a
//! bootstrap token. Keys never leave the proxies: they send a CSR.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use weft_proto::ca::certificate_service_server::CertificateService;
use weft_proto::ca::{CertificateRequest, CertificateResponse};

/// Why the CA could not start.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Reading or writing the CA's files.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// A key or certificate could not be read or made.
    #[error("{0}")]
    Crypto(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CaError + '_ {
    move |error| CaError::Io {
        path: path.display().to_string(),
        error,
    }
}

/// Who a bootstrap token stands for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenIdentity {
    /// Namespace.
    pub namespace: String,
    /// Service account.
    pub service_account: String,
    /// The proxy that first used it (later requests must come from it).
    pub bound_to: Option<String>,
}

/// The CA.
pub struct Ca {
    trust_domain: String,
    ttl: Duration,
    root_pem: String,
    /// The signing certificate and any intermediates up to the root, sent after each leaf
    /// (empty when the root signs).
    chain: Vec<String>,
    /// Other roots proxies trust (the previous root while a rotation overlaps).
    extra_roots: Vec<String>,
    issuer: rcgen::Certificate,
    issuer_key: KeyPair,
    /// By the SHA-256 of the token (hex): the tokens themselves are never kept.
    tokens: Mutex<HashMap<String, TokenIdentity>>,
    /// Where the tokens are kept across restarts (`tokens.json`, owner-only), so proxies
    /// reconnecting to a restarted control plane are still known.
    tokens_file: PathBuf,
    issued: Mutex<std::collections::BTreeMap<String, Issued>>,
}

/// The key a token is kept under: its SHA-256, hex.
fn token_key(token: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The tokens kept in `path` (none when it does not exist; an unreadable file is said
/// and ignored: its proxies ask for tokens again, nothing else is lost).
fn load_tokens(path: &Path) -> HashMap<String, TokenIdentity> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
            tracing::warn!(file = %path.display(), "the kept bootstrap tokens do not read ({e}); starting without them");
            HashMap::new()
        }),
        Err(_) => HashMap::new(),
    }
}

/// The latest certificate issued to a proxy (for `weft describe workload`; the CLI
/// reads `/debug/certificates` as these).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Issued {
    /// The proxy's id.
    pub node_id: String,
    /// The identity certified.
    pub identity: String,
    /// Validity end (seconds since the epoch).
    pub not_after: i64,
    /// When it was issued (seconds since the epoch).
    pub issued_at: i64,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("trust_domain", &self.trust_domain)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// Where the operator's own CA is, when supplied.
#[derive(Debug, Clone)]
pub struct SuppliedRoot {
    /// The signing CA certificate (PEM): a root, or an intermediate followed by any
    /// further intermediates up to `root` (Istio's `ca-cert.pem` + `cert-chain.pem`).
    pub cert: PathBuf,
    /// Its key (PEM, PKCS#8).
    pub key: PathBuf,
    /// The root `cert` chains to, when `cert` is an intermediate.
    pub root: Option<PathBuf>,
}

/// Splits a PEM bundle into its certificates, each checked to be one.
pub fn pem_certificates(bundle: &str) -> Result<Vec<String>, CaError> {
    let mut out = Vec::new();
    let mut rest = bundle;
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let end_marker = "-----END CERTIFICATE-----";
        let Some(end) = rest[start..].find(end_marker) else {
            return Err(CaError::Crypto(
                "an unterminated certificate in the bundle".into(),
            ));
        };
        let pem = &rest[start..start + end + end_marker.len()];
        x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .map_err(|e| CaError::Crypto(format!("a certificate in the bundle: {e}")))?;
        out.push(format!("{pem}\n"));
        rest = &rest[start + end + end_marker.len()..];
    }
    Ok(out)
}

fn write_private(path: &Path, text: &str) -> Result<(), CaError> {
    write_private_file(path, text).map_err(io(path))
}

/// Writes `text` to `path` readable by its owner only, atomically (a temporary file,
/// synced, then renamed over `path`).
pub fn write_private_file(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl Ca {
    /// Loads the root from `dir` (`root-cert.pem`, `root-key.pem`), creating it on first
    /// start, or uses the operator's.
    pub fn open(
        dir: &Path,
        trust_domain: &str,
        ttl: Duration,
        supplied: Option<&SuppliedRoot>,
        extra_roots: Vec<String>,
    ) -> Result<Ca, CaError> {
        let mut chain = Vec::new();
        let mut root_pem = None;
        let (cert_pem, key_pem) = match supplied {
            Some(s) => {
                let bundle = std::fs::read_to_string(&s.cert).map_err(io(&s.cert))?;
                let certs = pem_certificates(&bundle)
                    .map_err(|e| CaError::Crypto(format!("{}: {e}", s.cert.display())))?;
                let Some(signing) = certs.first().cloned() else {
                    return Err(CaError::Crypto(format!(
                        "{}: no certificate",
                        s.cert.display()
                    )));
                };
                match &s.root {
                    Some(root) => {
                        let text = std::fs::read_to_string(root).map_err(io(root))?;
                        let roots = pem_certificates(&text)
                            .map_err(|e| CaError::Crypto(format!("{}: {e}", root.display())))?;
                        let [root_cert] = roots.as_slice() else {
                            return Err(CaError::Crypto(format!(
                                "{}: exactly one root certificate expected",
                                root.display()
                            )));
                        };
                        check_chain(&certs, root_cert)
                            .map_err(|e| CaError::Crypto(format!("{}: {e}", s.cert.display())))?;
                        root_pem = Some(root_cert.clone());
                        chain = certs;
                    }
                    None if certs.len() > 1 => {
                        return Err(CaError::Crypto(format!(
                            "{} holds a chain: name its root with --ca-root",
                            s.cert.display()
                        )));
                    }
                    None => {}
                }
                (
                    signing,
                    std::fs::read_to_string(&s.key).map_err(io(&s.key))?,
                )
            }
            None => {
                std::fs::create_dir_all(dir).map_err(io(dir))?;
                let (cert_path, key_path) = (dir.join("root-cert.pem"), dir.join("root-key.pem"));
                if cert_path.exists() && key_path.exists() {
                    (
                        std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?,
                        std::fs::read_to_string(&key_path).map_err(io(&key_path))?,
                    )
                } else {
                    let (cert, key) = new_root(trust_domain)?;
                    write_private(&key_path, &key)?;
                    write_private(&cert_path, &cert)?;
                    tracing::info!(dir = %dir.display(), "created the mesh's root CA");
                    (cert, key)
                }
            }
        };
        let issuer_key =
            KeyPair::from_pem(&key_pem).map_err(|e| CaError::Crypto(format!("CA key: {e}")))?;
        let params = CertificateParams::from_ca_cert_pem(&cert_pem)
            .map_err(|e| CaError::Crypto(format!("CA certificate: {e}")))?;
        let issuer = params
            .self_signed(&issuer_key)
            .map_err(|e| CaError::Crypto(format!("CA certificate: {e}")))?;
        // A key that does not belong to the certificate would sign certificates nobody
        // can verify: refuse it now.
        let (_, parsed) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|e| CaError::Crypto(format!("CA certificate: {e}")))?;
        let parsed = parsed
            .parse_x509()
            .map_err(|e| CaError::Crypto(format!("CA certificate: {e}")))?;
        if parsed.public_key().subject_public_key.data.as_ref() != issuer_key.public_key_raw() {
            return Err(CaError::Crypto(
                "the CA key does not belong to the CA certificate".into(),
            ));
        }
        let ca = Ca {
            trust_domain: trust_domain.to_string(),
            ttl,
            root_pem: root_pem.unwrap_or(cert_pem.clone()),
            chain,
            extra_roots,
            issuer,
            issuer_key,
            tokens: Mutex::new(load_tokens(&dir.join("tokens.json"))),
            tokens_file: dir.join("tokens.json"),
            issued: Mutex::new(std::collections::BTreeMap::new()),
        };
        ca.self_test(&cert_pem)?;
        Ok(ca)
    }

    /// Issues a throwaway certificate and checks it links to the signing certificate as a
    /// verifier will (issuer name byte for byte, signature): a CA certificate whose name
    /// rcgen cannot reproduce (repeated attributes) would otherwise sign certificates no
    /// proxy accepts.
    fn self_test(&self, signing_pem: &str) -> Result<(), CaError> {
        let fail = |what: String| CaError::Crypto(format!("CA self-test: {what}"));
        let key = KeyPair::generate().map_err(|e| fail(e.to_string()))?;
        let csr = CertificateParams::new(Vec::<String>::new())
            .and_then(|p| p.serialize_request(&key))
            .and_then(|c| c.pem())
            .map_err(|e| fail(e.to_string()))?;
        let (leaf, _) = self.sign(&csr, "weft-self-test", "ca").map_err(fail)?;
        let der = |pem: &str| {
            x509_parser::pem::parse_x509_pem(pem.as_bytes())
                .map(|(_, p)| p.contents)
                .map_err(|e| fail(e.to_string()))
        };
        let (leaf_der, signing_der) = (der(&leaf)?, der(signing_pem)?);
        let (_, leaf) =
            x509_parser::parse_x509_certificate(&leaf_der).map_err(|e| fail(e.to_string()))?;
        let (_, signing) =
            x509_parser::parse_x509_certificate(&signing_der).map_err(|e| fail(e.to_string()))?;
        if leaf.issuer().as_raw() != signing.subject().as_raw() {
            return Err(fail(format!(
                "certificates signed by {} would not name it as their issuer byte for byte (repeated name attributes are not supported)",
                signing.subject()
            )));
        }
        leaf.verify_signature(Some(signing.public_key()))
            .map_err(|e| fail(format!("a certificate it signed does not verify: {e}")))
    }

    /// The latest certificate of every proxy.
    pub fn issued(&self) -> Vec<Issued> {
        self.issued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The root certificate (PEM).
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// Every root proxies trust: the signing root, then the extra ones.
    pub fn roots(&self) -> Vec<String> {
        std::iter::once(self.root_pem.clone())
            .chain(self.extra_roots.iter().cloned())
            .collect()
    }

    /// Writes `tokens` to the tokens file (a failure is logged: the tokens still work
    /// until the next restart).
    fn keep(&self, tokens: &HashMap<String, TokenIdentity>) {
        let text = serde_json::to_string(tokens).unwrap_or_else(|_| "{}".into());
        let written = self
            .tokens_file
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| write_private_file(&self.tokens_file, &text));
        if let Err(e) = written {
            tracing::warn!(file = %self.tokens_file.display(), "the bootstrap tokens are not kept ({e}); they work until the control plane restarts");
        }
    }

    /// Issues a bootstrap token for a workload identity: 32 bytes from the OS's randomness
    /// (never a guessable fallback), hex-encoded.
    pub fn issue_token(&self, namespace: &str, service_account: &str) -> Result<String, CaError> {
        let mut bytes = [0u8; 32];
        {
            use std::io::Read;
            let urandom = Path::new("/dev/urandom");
            std::fs::File::open(urandom)
                .and_then(|mut f| f.read_exact(&mut bytes))
                .map_err(io(urandom))?;
        }
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.insert(
            token_key(&token),
            TokenIdentity {
                namespace: namespace.to_string(),
                service_account: service_account.to_string(),
                bound_to: None,
            },
        );
        self.keep(&tokens);
        Ok(token)
    }

    /// The identity behind `token`, binding it to `node` on first use; refuses unknown
    /// tokens and tokens another proxy already used.
    pub fn authenticate(&self, token: &str, node: &str) -> Result<TokenIdentity, String> {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let Some(id) = tokens.get_mut(&token_key(token)) else {
            return Err("unknown bootstrap token".into());
        };
        match &id.bound_to {
            Some(bound) if bound != node => Err(format!(
                "bootstrap token for {}/{} is already used by proxy {bound}",
                id.namespace, id.service_account
            )),
            Some(_) => Ok(id.clone()),
            None => {
                id.bound_to = Some(node.to_string());
                let who = id.clone();
                self.keep(&tokens);
                Ok(who)
            }
        }
    }

    /// Signs `csr_pem` for `namespace`/`service_account`.
    pub fn sign(
        &self,
        csr_pem: &str,
        namespace: &str,
        service_account: &str,
    ) -> Result<(String, String), String> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| format!("not a CSR: {e}"))?;
        let identity = format!(
            "spiffe://{}/ns/{namespace}/sa/{service_account}",
            self.trust_domain
        );
        // The CSR's own names are ignored: the certificate says who the token proved.
        let p = &mut csr.params;
        p.subject_alt_names = vec![SanType::URI(
            identity
                .clone()
                .try_into()
                .map_err(|e| format!("identity {identity}: {e:?}"))?,
        )];
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.is_ca = IsCa::NoCa;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let now = time::OffsetDateTime::now_utc();
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(86_400).max(1);
        // A little backdating for clock skew, never a large share of a short life.
        p.not_before = now - time::Duration::seconds((ttl / 10).min(60));
        p.not_after = now + time::Duration::seconds(ttl);
        let cert = csr
            .signed_by(&self.issuer, &self.issuer_key)
            .map_err(|e| format!("signing: {e}"))?;
        Ok((cert.pem(), identity))
    }
}

/// Checks that each certificate of `chain` is signed by the next, and the last by `root`.
fn check_chain(chain: &[String], root: &str) -> Result<(), String> {
    let parse = |pem: &str| -> Result<Vec<u8>, String> {
        x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .map(|(_, p)| p.contents)
            .map_err(|e| e.to_string())
    };
    let ders = chain
        .iter()
        .map(|c| parse(c))
        .chain(std::iter::once(parse(root)))
        .collect::<Result<Vec<_>, _>>()?;
    for pair in ders.windows(2) {
        let (_, child) =
            x509_parser::parse_x509_certificate(&pair[0]).map_err(|e| e.to_string())?;
        let (_, parent) =
            x509_parser::parse_x509_certificate(&pair[1]).map_err(|e| e.to_string())?;
        child
            .verify_signature(Some(parent.public_key()))
            .map_err(|e| {
                format!(
                    "{} is not signed by {} ({e})",
                    child.subject(),
                    parent.subject()
                )
            })?;
    }
    Ok(())
}

fn new_root(trust_domain: &str) -> Result<(String, String), CaError> {
    let key = KeyPair::generate().map_err(|e| CaError::Crypto(e.to_string()))?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::OrganizationName, trust_domain);
    params
        .distinguished_name
        .push(DnType::CommonName, "weft root CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + time::Duration::days(3650);
    let cert = params
        .self_signed(&key)
        .map_err(|e| CaError::Crypto(e.to_string()))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The gRPC service.
#[derive(Debug, Clone)]
pub struct Service(pub Arc<Ca>);

#[tonic::async_trait]
impl CertificateService for Service {
    async fn create_certificate(
        &self,
        request: tonic::Request<CertificateRequest>,
    ) -> Result<tonic::Response<CertificateResponse>, tonic::Status> {
        let r = request.into_inner();
        let id = self.0.authenticate(&r.token, &r.node_id).map_err(|e| {
            tracing::warn!(proxy = %r.node_id, "certificate refused: {e}");
            tonic::Status::unauthenticated(e)
        })?;
        let (cert, identity) = self
            .0
            .sign(&r.csr, &id.namespace, &id.service_account)
            .map_err(tonic::Status::invalid_argument)?;
        tracing::info!(proxy = %r.node_id, %identity, "certificate issued");
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let ttl = i64::try_from(self.0.ttl.as_secs()).unwrap_or(i64::MAX);
        if let Ok(mut issued) = self.0.issued.lock() {
            // Bounded by the tokens: one entry per proxy that proved itself.
            issued.insert(
                r.node_id.clone(),
                Issued {
                    node_id: r.node_id.clone(),
                    identity: identity.clone(),
                    not_after: now.saturating_add(ttl),
                    issued_at: now,
                },
            );
        }
        Ok(tonic::Response::new(CertificateResponse {
            cert_chain: std::iter::once(cert)
                .chain(self.0.chain.iter().cloned())
                .collect(),
            roots: self.0.roots(),
            identity,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// Bootstrap tokens outlive a restart of the control plane (a reconnecting gateway is
    /// still proven, a renewal still signed), with their binding to the first proxy; the
    /// file holds their hashes only, readable by its owner only.
    #[test]
    fn tokens_and_their_bindings_are_kept_across_a_restart() {
        let dir = std::env::temp_dir().join(format!(
            "weft-ca-tokens-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let open = || {
            Ca::open(
                &dir,
                "cluster.local",
                Duration::from_secs(3600),
                None,
                Vec::new(),
            )
            .expect("the CA opens")
        };
        let token = {
            let ca = open();
            let token = ca.issue_token("istio-system", "ingress").expect("a token");
            ca.authenticate(&token, "router~ingress.istio-system")
                .expect("bound");
            token
        };
        let ca = open();
        let who = ca
            .authenticate(&token, "router~ingress.istio-system")
            .expect("still known after the restart");
        assert_eq!(
            (who.namespace.as_str(), who.service_account.as_str()),
            ("istio-system", "ingress")
        );
        let other = ca.authenticate(&token, "router~thief.istio-system");
        assert!(other.expect_err("bound").contains("already used"));
        let file = dir.join("tokens.json");
        let text = std::fs::read_to_string(&file).expect("kept");
        assert!(!text.contains(&token), "the token itself is not written");
        let mode = std::fs::metadata(&file).expect("file").permissions().mode();
        assert_eq!(mode & 0o077, 0, "owner-only: {mode:o}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
