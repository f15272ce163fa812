//! The kubeconfig of a `weft up` mesh, so `kubectl` (and any Kubernetes client) talks to
//! its control plane: `weft up` writes `<state-dir>/kubeconfig`, `weft kubeconfig` prints
//! its path (`export KUBECONFIG=$(weft kubeconfig)`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use super::up::state::State;

/// Arguments of `weft kubeconfig`.
#[derive(clap::Args)]
pub struct Args {
    /// Where `weft up` keeps its state.
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
}

/// `weft up`'s default state directory.
pub const DEFAULT_STATE_DIR: &str = ".weft/up";

/// The kubeconfig's path in `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("kubeconfig")
}

/// The kubeconfig for the API at `api` (`host:port`, HTTPS with the API's CA `ca_pem`):
/// one cluster, user (with the API's bearer `token`) and context named `weft`, namespace
/// `default`.
pub fn render(api: &str, token: &str, ca_pem: &str) -> String {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: weft\n  cluster:\n    server: https://{api}\n    certificate-authority-data: {ca}\ncontexts:\n- name: weft\n  context:\n    cluster: weft\n    user: weft\n    namespace: default\ncurrent-context: weft\nusers:\n- name: weft\n  user:\n    token: {token}\n"
    )
}

/// Writes the kubeconfig into `state_dir` (readable by its owner only: it holds the token).
pub fn write(state_dir: &Path, api: &str, token: &str, ca_pem: &str) -> anyhow::Result<PathBuf> {
    let file = path(state_dir);
    write_private(&file, &render(api, token, ca_pem))?;
    Ok(file)
}

/// Writes `text` to `file`, readable and writable by its owner only, atomically.
pub fn write_private(file: &Path, text: &str) -> anyhow::Result<()> {
    weft_control::ca::write_private_file(file, text)
        .with_context(|| format!("writing {}", file.display()))
}

/// Prints the kubeconfig's path when a mesh is up.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let file = path(&args.state_dir);
    let up = State::load(&args.state_dir)?.is_some_and(|s| s.is_up());
    if !up || !file.exists() {
        eprintln!(
            "no mesh is up in {} (start one with weft up)",
            args.state_dir.display()
        );
        return Ok(ExitCode::from(1));
    }
    println!("{}", file.canonicalize().unwrap_or(file).display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_context_on_the_api() {
        let k = super::render("127.0.0.1:15014", "0123456789abcdef0123", "PEM");
        assert!(k.contains("server: https://127.0.0.1:15014\n"), "{k}");
        assert!(k.contains("certificate-authority-data: UEVN\n"), "{k}");
        assert!(k.contains("token: 0123456789abcdef0123\n"), "{k}");
        assert!(k.contains("current-context: weft\n"), "{k}");
    }
}
