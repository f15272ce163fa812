//! weft's control plane. Today: the resource store ([`store`], persisted crash-safely)
//! and the Kubernetes-style resource API ([`api`]) that `weft apply/get/delete` use.
//! Pushing configuration to proxies comes next (see the open issues).

pub mod api;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::store::{Store, StoreError};

/// How to run the control plane.
#[derive(Debug, Clone)]
pub struct ControlOptions {
    /// Where resources are persisted.
    pub state_dir: PathBuf,
    /// The resource API address (Istio's 15014).
    pub api: SocketAddr,
}

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The state directory could not be opened.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The API address could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
}

/// A started control plane.
#[derive(Debug)]
pub struct RunningControl {
    /// The API's bound address.
    pub api: SocketAddr,
    /// The store.
    pub store: Arc<Store>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningControl {
    /// Stops serving.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Opens the store and serves the API.
pub async fn start(opts: ControlOptions) -> Result<RunningControl, StartError> {
    let store = Arc::new(Store::open(&opts.state_dir)?);
    let listener = TcpListener::bind(opts.api)
        .await
        .map_err(|error| StartError::Bind {
            addr: opts.api,
            error,
        })?;
    let api = listener.local_addr().unwrap_or(opts.api);
    let served = store.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let store = served.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let store = store.clone();
                    async move { Ok::<_, std::convert::Infallible>(api::handle(store, req).await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    tracing::info!(%api, state_dir = %opts.state_dir.display(), "control plane ready");
    Ok(RunningControl { api, store, task })
}
