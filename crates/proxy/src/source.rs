//! Where configuration comes from. Today: Istio YAML files, watched. The control-plane
//! stream (a later issue) plugs in here: whatever the source, it validates, builds a
//! [`Snapshot`] and stores it in the [`SnapshotCell`]; a rejected change keeps the last
//! good configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use weft_api::load::{duplicate_diagnostics, last_wins, load_str};
use weft_api::{Diagnostic, Loaded};
use weft_model::ProxyScope;
use weft_model::translate::SidecarScope;

use crate::snapshot::{Snapshot, SnapshotCell};

/// How often files are checked for changes (SIGHUP reloads at once).
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A path could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        error: std::io::Error,
    },
    /// The resources are invalid.
    #[error("{} invalid: {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Diagnostic>),
    /// The resources could not be translated.
    #[error("{0}")]
    Translate(#[from] weft_model::translate::TranslateError),
}

/// Istio YAML files and directories as a configuration source.
#[derive(Debug, Clone)]
pub struct FileSource {
    /// Files or directories (read recursively).
    pub paths: Vec<PathBuf>,
    /// The proxy's namespace and labels.
    pub scope: ProxyScope,
    /// The local application, for the inbound cluster.
    pub app: Option<SocketAddr>,
}

/// What identifies the state of the files: each path and a hash of its contents
/// (modification times can be too coarse to see two writes in one second).
pub type Fingerprint = Vec<(PathBuf, u64)>;

impl FileSource {
    /// Loads, validates and translates the files into a snapshot following `previous`;
    /// also returns the fingerprint of exactly what was read.
    pub fn load(
        &self,
        previous: Option<&Snapshot>,
    ) -> Result<(Snapshot, Fingerprint), ConfigError> {
        let files = self.read()?;
        let fingerprint = fingerprint(&files);
        Ok((self.build(&files, previous)?, fingerprint))
    }

    /// Reads every file.
    fn read(&self) -> Result<Vec<(PathBuf, String)>, ConfigError> {
        self.files()?
            .into_iter()
            .map(|file| match std::fs::read_to_string(&file) {
                Ok(text) => Ok((file, text)),
                Err(error) => Err(ConfigError::Io {
                    path: file.display().to_string(),
                    error,
                }),
            })
            .collect()
    }

    /// Validates and translates `files` into a snapshot following `previous`.
    fn build(
        &self,
        files: &[(PathBuf, String)],
        previous: Option<&Snapshot>,
    ) -> Result<Snapshot, ConfigError> {
        let mut loaded = Loaded::default();
        for (file, text) in files {
            loaded.extend(load_str(&file.display().to_string(), text));
        }
        loaded
            .diagnostics
            .extend(duplicate_diagnostics(&loaded.resources));
        for w in loaded.diagnostics.iter().filter(|d| !d.is_error()) {
            tracing::warn!("{w}");
        }
        if loaded.has_errors() {
            return Err(ConfigError::Invalid(
                loaded
                    .diagnostics
                    .into_iter()
                    .filter(Diagnostic::is_error)
                    .collect(),
            ));
        }
        let (resources, replaced) = last_wins(loaded.resources);
        for note in replaced {
            tracing::info!("{note}");
        }
        let mut resources: Vec<_> = resources.into_iter().map(|r| r.resource).collect();
        // The Sidecar applying narrows what a sidecar sees, as the control plane narrows
        // what it pushes.
        let sidecar = SidecarScope::of(&resources, &self.scope);
        resources.retain(|r| sidecar.keeps(r));
        let mesh = weft_model::build(&resources, &self.scope)?;
        let version = previous.map_or(1, |p| p.version + 1);
        let source = self
            .paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(",");
        Ok(Snapshot::build(
            mesh,
            self.scope.clone(),
            version,
            source,
            self.app,
            previous,
        ))
    }

    /// Every YAML/JSON file under the paths, sorted within each directory.
    pub fn files(&self) -> Result<Vec<PathBuf>, ConfigError> {
        weft_api::files::config_files(&self.paths).map_err(|e| ConfigError::Io {
            path: e.path.display().to_string(),
            error: e.error,
        })
    }

    /// Reloads on change or SIGHUP until `stop` fires; invalid changes are logged and
    /// refused. `seen` is the fingerprint of the configuration in force.
    pub async fn watch(
        self,
        cell: SnapshotCell,
        mut stop: tokio::sync::watch::Receiver<bool>,
        mut seen: Fingerprint,
    ) {
        let mut hangup = hangup_signal();
        loop {
            let forced = tokio::select! {
                _ = tokio::time::sleep(POLL_INTERVAL) => false,
                _ = recv_hangup(&mut hangup) => true,
                _ = stop.changed() => return,
            };
            let files = match self.read() {
                Ok(files) => files,
                Err(e) => {
                    tracing::error!("configuration change refused, keeping the last good one: {e}");
                    continue;
                }
            };
            let now = fingerprint(&files);
            if !forced && now == seen {
                continue;
            }
            seen = now;
            let current = cell.load();
            match self.build(&files, Some(&current)) {
                Ok(next) => {
                    tracing::info!(version = next.version, "configuration reloaded");
                    cell.store(next);
                }
                Err(e) => tracing::error!(
                    version = current.version,
                    "configuration change refused, keeping the last good one: {e}"
                ),
            }
        }
    }
}

fn fingerprint(files: &[(PathBuf, String)]) -> Fingerprint {
    files
        .iter()
        .map(|(path, text)| (path.clone(), xxhash_rust::xxh64::xxh64(text.as_bytes(), 0)))
        .collect()
}

#[cfg(unix)]
fn hangup_signal() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(unix)]
async fn recv_hangup(s: &mut Option<tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
fn hangup_signal() -> Option<()> {
    None
}

#[cfg(not(unix))]
async fn recv_hangup(_: &mut Option<()>) {
    std::future::pending().await
}
