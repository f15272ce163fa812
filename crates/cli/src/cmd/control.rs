//! `weft control`: the control plane.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// Arguments of `weft control`.
#[derive(clap::Args)]
pub struct Args {
    /// Where resources are persisted (one JSON file each, written atomically).
    #[arg(long, default_value = ".weft/state")]
    state_dir: PathBuf,
    /// The resource API address.
    #[arg(long, default_value = "127.0.0.1:15014")]
    api: SocketAddr,
    /// The proxy stream (delta xDS over gRPC) address.
    #[arg(long, default_value = "127.0.0.1:15010")]
    xds: SocketAddr,
    /// How long a disconnected proxy's registered workload is kept.
    #[arg(long, value_parser = weft_api::duration::parse_duration, default_value = "10s")]
    registration_grace: std::time::Duration,
}

/// Runs the control plane until SIGTERM or SIGINT.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let control = match weft_control::start(weft_control::ControlOptions {
            state_dir: args.state_dir,
            api: args.api,
            xds: args.xds,
            registration_grace: args.registration_grace,
        })
        .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("{e}");
                return Ok(ExitCode::from(1));
            }
        };
        super::proxy::terminate().await;
        control.stop();
        Ok(ExitCode::SUCCESS)
    })
}
