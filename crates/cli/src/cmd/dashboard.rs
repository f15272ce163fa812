//! `weft dashboard`: where the control plane's dashboard is, opened in a browser when
//! one can be started here (as `istioctl dashboard` does).

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use super::up::state::State;

/// Arguments of `weft dashboard`.
#[derive(clap::Args)]
pub struct Args {
    /// The dashboard's address (default: the one `weft up` started, else 127.0.0.1:15080).
    #[arg(long)]
    address: Option<String>,
    /// Where `weft up` keeps its state.
    #[arg(long, default_value = ".weft/up")]
    state_dir: PathBuf,
    /// Only print the URL.
    #[arg(long)]
    no_browser: bool,
}

/// Prints the URL, checks that something answers there, and opens a browser.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let address = match &args.address {
        Some(a) => a.clone(),
        None => State::load(&args.state_dir)?
            .map(|s| s.dashboard)
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "127.0.0.1:15080".into()),
    };
    let url = format!("http://{address}/");
    println!("{url}");
    let reachable = address
        .parse::<std::net::SocketAddr>()
        .ok()
        .is_some_and(|a| {
            std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(1)).is_ok()
        });
    if !reachable {
        eprintln!(
            "error: nothing answers at {address}: start the mesh with `weft up` (or `weft control`)"
        );
        return Ok(ExitCode::from(1));
    }
    let graphical =
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    if !args.no_browser && (graphical || cfg!(target_os = "macos")) {
        let opened = Command::new(opener)
            .arg(&url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .is_ok();
        if !opened {
            eprintln!("(no browser could be started with {opener}; open the URL yourself)");
        }
    }
    Ok(ExitCode::SUCCESS)
}
