//! `weft prometheus-config`: a Prometheus configuration scraping every proxy of the mesh
//! `weft up` started, through file-based service discovery (the targets file can be
//! rewritten while Prometheus runs; it rereads it).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};

use super::up::state::{INGRESS_NAMESPACE, INGRESS_WORKLOAD, State};

/// Arguments of `weft prometheus-config`.
#[derive(clap::Args)]
pub struct Args {
    /// Where `weft up` keeps its state.
    #[arg(long, default_value = ".weft/up")]
    state_dir: PathBuf,
    /// Where to write `prometheus.yml` and `weft-targets.json` (default: <state-dir>/prometheus).
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// How often Prometheus scrapes (Prometheus duration, e.g. 15s).
    #[arg(long, default_value = "5s")]
    scrape_interval: String,
}

/// Writes the configuration and the targets file.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let Some(state) = State::load(&args.state_dir)? else {
        bail!(
            "no mesh is up (no state in {}); start one with `weft up`",
            args.state_dir.display()
        );
    };
    if !valid_duration(&args.scrape_interval) {
        bail!(
            "--scrape-interval {:?} is not a Prometheus duration like 5s or 1m",
            args.scrape_interval
        );
    }
    let dir = args
        .output
        .clone()
        .unwrap_or_else(|| args.state_dir.join("prometheus"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    let mut groups = Vec::new();
    for w in &state.workloads {
        if w.stats.is_empty() {
            continue;
        }
        groups.push(serde_json::json!({
            "targets": [w.stats],
            "labels": {"weft_workload": w.name, "weft_namespace": w.namespace, "weft_role": "sidecar"},
        }));
    }
    if let Some(i) = state.ingress.as_ref().filter(|i| !i.stats.is_empty()) {
        groups.push(serde_json::json!({
            "targets": [i.stats],
            "labels": {"weft_workload": INGRESS_WORKLOAD, "weft_namespace": INGRESS_NAMESPACE, "weft_role": "gateway"},
        }));
    }
    if groups.is_empty() {
        bail!(
            "the mesh in {} has no stats listeners (started by an older weft?)",
            args.state_dir.display()
        );
    }
    let targets = dir.join("weft-targets.json");
    std::fs::write(&targets, serde_json::to_vec_pretty(&groups)?)
        .with_context(|| format!("writing {}", targets.display()))?;
    let config = format!(
        "# Written by `weft prometheus-config` for the mesh in {state_dir}.
global:
  scrape_interval: {interval}
  evaluation_interval: {interval}
scrape_configs:
  - job_name: weft-proxies
    metrics_path: /stats/prometheus
    file_sd_configs:
      - files: ['{targets}']
        refresh_interval: 5s
",
        state_dir = args.state_dir.display(),
        interval = args.scrape_interval,
        targets = targets.display(),
    );
    let file = dir.join("prometheus.yml");
    std::fs::write(&file, config).with_context(|| format!("writing {}", file.display()))?;
    println!(
        "wrote {} and {} ({} targets)",
        file.display(),
        targets.display(),
        groups.len()
    );
    println!(
        "  prometheus --config.file={} --storage.tsdb.path={}",
        file.display(),
        dir.join("data").display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Prometheus's duration syntax: digits and a unit, possibly several (`1m30s`).
fn valid_duration(text: &str) -> bool {
    let mut rest = text;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let Some(unit) = ["ms", "s", "m", "h", "d", "w", "y"]
            .into_iter()
            .find(|u| rest.starts_with(u))
        else {
            return false;
        };
        rest = &rest[unit.len()..];
    }
    true
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_follow_prometheus() {
        for ok in ["5s", "1m30s", "100ms", "2h"] {
            assert!(super::valid_duration(ok), "{ok}");
        }
        for bad in ["", "5", "s", "5 s", "1.5s", "5sec"] {
            assert!(!super::valid_duration(bad), "{bad}");
        }
    }
}
