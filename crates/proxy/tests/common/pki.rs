//! Certificates for TLS tests (a CA signing PEM files) and the curl client that checks
//! them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A CA, and certificates it signs, written as PEM files.
pub struct Pki {
    dir: PathBuf,
    ca: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Pki {
    pub fn new(dir: &Path, name: &str) -> Pki {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} CA"));
        let ca = params.self_signed(&key).expect("ca");
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write");
        Pki { dir, ca, key }
    }

    pub fn ca_file(&self) -> String {
        self.dir.join("ca.pem").display().to_string()
    }

    /// Signs a certificate for `names` (DNS, or `spiffe://` URIs); returns the paths of
    /// the certificate and key files.
    pub fn issue(&self, file: &str, names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0].to_string());
        for n in names {
            params
                .subject_alt_names
                .push(if n.starts_with("spiffe://") {
                    rcgen::SanType::URI((*n).try_into().expect("uri"))
                } else {
                    rcgen::SanType::DnsName((*n).try_into().expect("dns"))
                });
        }
        let cert = params.signed_by(&key, &self.ca, &self.key).expect("sign");
        let (c, k) = (
            self.dir.join(format!("{file}.pem")),
            self.dir.join(format!("{file}-key.pem")),
        );
        std::fs::write(&c, cert.pem()).expect("write");
        std::fs::write(&k, key.serialize_pem()).expect("write");
        (c.display().to_string(), k.display().to_string())
    }
}

/// A Secret `ns/name` holding the PEM files `entries` (Secret key, file path) as `data`.
#[allow(dead_code)]
pub fn secret(ns: &str, name: &str, secret_type: &str, entries: &[(&str, &str)]) -> String {
    use base64::Engine;
    let data: Vec<String> = entries
        .iter()
        .map(|(key, path)| {
            let pem = std::fs::read(path).expect("read PEM");
            format!(
                "  {key}: {}\n",
                base64::engine::general_purpose::STANDARD.encode(pem)
            )
        })
        .collect();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\ntype: {secret_type}\ndata:\n{}---\n",
        data.concat()
    )
}

/// Runs a client command to its end, off the runtime's threads.
pub async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("client runs"))
        .await
        .expect("joined")
}

/// `curl` to `https://host:PORT/path` at the gateway's `addr`, trusting `ca`; extra args.
pub async fn curl(addr: SocketAddr, url: &str, ca: Option<&str>, extra: &[&str]) -> Output {
    let host = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split(['/', ':']).next())
        .expect("host");
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "5",
        "-o",
        "-",
        "-w",
        "\n%{http_code} %{redirect_url}",
    ])
    .arg("--resolve")
    .arg(format!("{host}:{}:{}", addr.port(), addr.ip()))
    .args(extra);
    if let Some(ca) = ca {
        cmd.args(["--cacert", ca]);
    }
    cmd.arg(url.replace("PORT", &addr.port().to_string()));
    run(cmd).await
}

pub fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
