//! `weft validate -f PATH... [--mesh-config FILE]`

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;
use weft_api::Diagnostic;

use crate::{Output, input};

/// Arguments of `weft validate`.
#[derive(clap::Args)]
pub struct Args {
    /// Files or directories (read recursively) holding Istio resources; `-` reads standard
    /// input. A file that is Istio's mesh config ConfigMap (`data.mesh`) is read as one.
    #[arg(short = 'f', long = "filename", num_args = 1.., required_unless_present = "mesh_config")]
    pub files: Vec<PathBuf>,
    /// Istio's mesh config (its YAML, or Istio's ConfigMap with it under `data.mesh`),
    /// as `weft control --mesh-config` reads it.
    #[arg(long)]
    pub mesh_config: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Serialize)]
struct Report<'a> {
    valid: bool,
    files: usize,
    resources: usize,
    mesh_configs: usize,
    errors: usize,
    warnings: usize,
    diagnostics: &'a [Diagnostic],
}

/// Runs `weft validate`: 0 when every resource is valid, 1 otherwise.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let (mut diagnostics, mut files, read, mut mesh_configs) = if args.files.is_empty() {
        (Vec::new(), 0, 0, 0)
    } else {
        let inputs = input::load(&args.files)?;
        (
            inputs.loaded.diagnostics,
            inputs.files,
            inputs.read,
            inputs.mesh_configs,
        )
    };
    if let Some(path) = &args.mesh_config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mesh = weft_api::mesh_config::load_mesh_config(&path.display().to_string(), &text);
        diagnostics.extend(mesh.diagnostics);
        files += 1;
        mesh_configs += 1;
    }
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let report = Report {
        valid: errors == 0,
        files,
        resources: read,
        mesh_configs,
        errors,
        warnings: diagnostics.len() - errors,
        diagnostics: &diagnostics,
    };
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Text => {
            for d in &diagnostics {
                println!("{d}");
            }
            let mesh = match mesh_configs {
                0 => String::new(),
                1 => " and a mesh config".to_string(),
                n => format!(" and {n} mesh configs"),
            };
            if report.valid {
                println!(
                    "✔ {} resources{mesh} in {} files are valid ({} warnings)",
                    report.resources, files, report.warnings
                );
            } else {
                println!(
                    "✘ {} errors, {} warnings in {} files",
                    errors, report.warnings, files
                );
            }
        }
    }
    Ok(if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
