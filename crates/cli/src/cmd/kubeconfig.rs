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
    #[arg(long, default_value = ".weft/up")]
    state_dir: PathBuf,
}

/// The kubeconfig's path in `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("kubeconfig")
}

/// The kubeconfig for the API at `api` (`host:port`): one cluster, user and context
/// named `weft`, namespace `default`.
pub fn render(api: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: weft\n  cluster:\n    server: http://{api}\ncontexts:\n- name: weft\n  context:\n    cluster: weft\n    user: weft\n    namespace: default\ncurrent-context: weft\nusers:\n- name: weft\n  user: {{}}\n"
    )
}

/// Writes the kubeconfig for `api` into `state_dir` (readable by its owner only).
pub fn write(state_dir: &Path, api: &str) -> anyhow::Result<PathBuf> {
    let file = path(state_dir);
    std::fs::write(&file, render(api)).with_context(|| format!("writing {}", file.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
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
        let k = super::render("127.0.0.1:15014");
        assert!(k.contains("server: http://127.0.0.1:15014\n"), "{k}");
        assert!(k.contains("current-context: weft\n"), "{k}");
    }
}
