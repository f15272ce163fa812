//! `weft demo`: the seed scenario as a narrated walkthrough. It starts the mesh with
//! `weft up`, calls bff-service, shows which recommendation-service version answered as
//! a bar chart, applies the 10/90 rule, the fault rule, deletes them, and stops the mesh.

use std::io::{IsTerminal, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context, bail};

use super::up::{StateArgs, UpArgs};

/// Arguments of `weft demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Run straight through, without waiting for Enter between steps.
    #[arg(long)]
    no_pause: bool,
    /// Calls per step.
    #[arg(long, default_value_t = 100)]
    calls: u32,
    /// The mesh manifest.
    #[arg(
        short = 'f',
        long = "filename",
        default_value = "examples/up/recommendation.yaml"
    )]
    file: PathBuf,
    /// The directory holding the seed's Istio resources.
    #[arg(long, default_value = "examples/recommendation")]
    rules: PathBuf,
    /// Where the demo mesh keeps its state and logs.
    #[arg(long, default_value = ".weft/demo")]
    state_dir: PathBuf,
    /// The control plane's resource API.
    #[arg(long, default_value = "127.0.0.1:15014")]
    api: SocketAddr,
    /// The control plane's proxy stream.
    #[arg(long, default_value = "127.0.0.1:15010")]
    xds: SocketAddr,
    /// How workloads join the mesh (see `weft up --mode`).
    #[arg(long, default_value = "auto", value_parser = ["auto", "namespace", "loopback"])]
    mode: String,
    /// Where the ingress gateway listens (default: the manifest's, 127.0.0.1:8000).
    #[arg(long)]
    ingress: Option<SocketAddr>,
    /// The control plane's OTLP trace receiver.
    #[arg(long, default_value = "127.0.0.1:4318")]
    otlp: SocketAddr,
    /// The control plane's Jaeger query API.
    #[arg(long, default_value = "127.0.0.1:16686")]
    query: SocketAddr,
    /// The control plane's dashboard.
    #[arg(long, default_value = "127.0.0.1:15080")]
    dashboard: SocketAddr,
    /// Leave the mesh running at the end (stop it with `weft down --state-dir <state dir>`).
    #[arg(long)]
    keep: bool,
}

/// Stops the demo's mesh however the demo ends.
struct MeshGuard(PathBuf);

impl Drop for MeshGuard {
    fn drop(&mut self) {
        println!("\n▸ stopping the mesh");
        if let Err(e) = super::up::down(&StateArgs {
            state_dir: self.0.clone(),
        }) {
            eprintln!("error: stopping the mesh: {e:#}");
        }
    }
}

/// What `calls` calls to bff-service's `/api` got.
#[derive(Default)]
struct Tally {
    v1: u32,
    v2: u32,
    /// Answers with status 5xx (the fault), by status.
    failed: std::collections::BTreeMap<u16, u32>,
}

impl Tally {
    fn print(&self, calls: u32) {
        let width = 50.0;
        let bar =
            |n: u32| "█".repeat((f64::from(n) / f64::from(calls.max(1)) * width).round() as usize);
        println!("    v1   {:>4} {}", self.v1, bar(self.v1));
        println!("    v2   {:>4} {}", self.v2, bar(self.v2));
        for (status, n) in &self.failed {
            println!("    {status:<4} {n:>4} {}", bar(*n));
        }
    }
}

/// One GET of bff-service's `/api` through the ingress gateway: (status, body).
fn call(ingress: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(ingress)
        .with_context(|| format!("calling bff-service through the ingress at {ingress}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET /api HTTP/1.1\r\nhost: {ingress}\r\nconnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bff-service answered something that is not HTTP: {answer:?}"))?;
    Ok((status, answer))
}

fn tally(bff: &str, calls: u32) -> anyhow::Result<Tally> {
    let mut t = Tally::default();
    for _ in 0..calls {
        let (status, body) = call(bff)?;
        if status != 200 {
            *t.failed.entry(status).or_default() += 1;
        } else if body.contains(r#""version": "v1""#) {
            t.v1 += 1;
        } else if body.contains(r#""version": "v2""#) {
            t.v2 += 1;
        } else {
            bail!("bff-service answered 200 without a version: {body}");
        }
    }
    Ok(t)
}

fn weft(args: &[&str], file: Option<&PathBuf>) -> anyhow::Result<()> {
    let mut cmd = Command::new(std::env::current_exe()?);
    if let Some(token) = crate::credentials::handed_over() {
        cmd.env("WEFT_TOKEN", token);
    }
    cmd.args(args);
    if let Some(file) = file {
        cmd.arg(file);
    }
    let shown: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    println!("  $ weft {}", shown.join(" "));
    if !cmd.status()?.success() {
        bail!("`weft {}` failed", shown.join(" "));
    }
    Ok(())
}

/// Runs the walkthrough.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let pause = !args.no_pause && std::io::stdin().is_terminal();
    let step = |text: &str| {
        println!("\n── {text}");
        if pause {
            print!("   (Enter to continue) ");
            let _ = std::io::stdout().flush();
            let _ = std::io::stdin().read_line(&mut String::new());
        }
    };
    let server = args.api.to_string();
    let calls = args.calls;

    step(
        "1. Start the mesh: a control plane, bff-service, recommendation-service v1 and v2, each app beside its own sidecar",
    );
    super::up::up(&UpArgs {
        file: args.file.clone(),
        mode: args.mode.clone(),
        state_dir: args.state_dir.clone(),
        api: args.api,
        xds: args.xds,
        ingress: args.ingress,
        otlp: args.otlp,
        query: args.query,
        dashboard: args.dashboard,
    })?;
    let guard = MeshGuard(args.state_dir.clone());
    let state =
        super::up::state::State::load(&args.state_dir)?.context("the mesh wrote no state file")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let ids = state.proxy_ids();
    // Every sidecar has what was just applied before the next calls.
    let settle = || super::up::wait_for_config(&runtime, &server, &ids);
    let bff = state
        .ingress
        .as_ref()
        .map(|i| i.address.clone())
        .context("the mesh has no ingress gateway")?;

    step(&format!(
        "2. No routing rule yet: {calls} calls to bff-service spread evenly over v1 and v2"
    ));
    tally(&bff, calls)?.print(calls);

    step("3. A VirtualService splits traffic 10/90 between the subsets v1 and v2");
    weft(
        &["apply", "--server", &server, "-f"],
        Some(&args.rules.join("virtual-service.yaml")),
    )?;
    settle();
    tally(&bff, calls)?.print(calls);

    step("4. A fault rule aborts every call to recommendation-service with HTTP 500");
    weft(
        &["apply", "--server", &server, "-f"],
        Some(&args.rules.join("virtual-service-fault.yaml")),
    )?;
    settle();
    tally(&bff, calls)?.print(calls);

    step("5. Delete the rules: the even split is back");
    weft(
        &[
            "delete",
            "--server",
            &server,
            "virtualservice",
            "recommendation-service",
        ],
        None,
    )?;
    settle();
    tally(&bff, calls)?.print(calls);

    step("6. Every call was traced: search the traces, then look at one that failed");
    // Proxies send spans in batches, at least every half second.
    std::thread::sleep(Duration::from_millis(1200));
    let query = args.query.to_string();
    weft(
        &[
            "traces",
            "--query",
            &query,
            "--service",
            "bff-service",
            "--limit",
            "5",
        ],
        None,
    )?;
    let failed = Command::new(std::env::current_exe()?)
        .args([
            "traces",
            "--query",
            &query,
            "--tags",
            "error=true",
            "--limit",
            "1",
        ])
        .output()?;
    let id = String::from_utf8_lossy(&failed.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next().map(str::to_string));
    if let Some(id) = id {
        weft(&["traces", "--query", &query, "show", &id], None)?;
    }

    let dashboard = format!("http://{}/", args.dashboard);
    if args.keep {
        println!(
            "\n── 7. The mesh stays up. The dashboard: {dashboard} (the graph, these traces, the charts, the traffic editor)\n   bff-service's page: http://{bff}/\n   Stop it with: weft down --state-dir {}",
            args.state_dir.display()
        );
        std::mem::forget(guard);
        return Ok(ExitCode::SUCCESS);
    }
    if pause {
        step(&format!(
            "7. Open the dashboard, {dashboard}: the graph of these calls, their traces, the charts, the traffic editor (Enter stops the mesh)"
        ));
    } else {
        println!(
            "\nThe dashboard: run `weft demo --keep` (or `weft up -f {}`) and open {dashboard}; bff-service's page is at http://{bff}/.",
            args.file.display()
        );
    }
    drop(guard);
    Ok(ExitCode::SUCCESS)
}
