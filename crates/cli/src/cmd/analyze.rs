//! `weft analyze -f PATH...`: validation and cross-resource analysis, with istioctl
//! analyze's output formats (`-o log|json|yaml`), thresholds, `--suppress` and exit codes.

use std::process::ExitCode;

use clap::ValueEnum;
use serde_json::{Value, json};
use weft_api::Diagnostic;
use weft_model::analyze::{Finding, Level, Suppression, analyze_with_mesh, schema_findings};

use crate::input;

/// istioctl analyze's exit code when a message reaches the failure threshold.
pub const EXIT_FOUND_ISSUES: u8 = 79;

/// Where Istio documents each IST code.
const DOCS: &str = "https://istio.io/latest/docs/reference/config/analysis";

/// Output formats, named as istioctl names them.
#[derive(Clone, Copy, Default, ValueEnum)]
pub enum Format {
    /// One line per message: `Error [IST0101] (VirtualService default/r f.yaml:3) ...`.
    #[default]
    Log,
    /// A JSON array of messages.
    Json,
    /// A YAML list of messages.
    Yaml,
}

/// A message level as a command-line value (`Info`, `Warning`, `Error`, any case).
#[derive(Clone, Copy, ValueEnum)]
#[value(rename_all = "PascalCase")]
pub enum Threshold {
    /// Info and worse.
    Info,
    /// Warning and worse.
    Warning,
    /// Errors only.
    Error,
}

impl From<Threshold> for Level {
    fn from(t: Threshold) -> Level {
        match t {
            Threshold::Info => Level::Info,
            Threshold::Warning => Level::Warning,
            Threshold::Error => Level::Error,
        }
    }
}

/// Arguments of `weft analyze`.
#[derive(clap::Args)]
pub struct Args {
    /// Files or directories (read recursively) holding Istio resources; `-` reads standard input.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub files: Vec<std::path::PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub output: Format,
    /// The least severe level of message shown.
    #[arg(long, value_enum, ignore_case = true, default_value = "Info")]
    pub output_threshold: Threshold,
    /// The least severe level of message that makes the exit code 79.
    #[arg(long, value_enum, ignore_case = true, default_value = "Error")]
    pub failure_threshold: Threshold,
    /// Silence a code on a resource: `CODE=Kind name`, the name a glob on
    /// `name.namespace` or `namespace/name` (e.g. "IST0101=VirtualService *.default"). Repeatable.
    #[arg(short = 'S', long = "suppress", value_name = "CODE=Kind name")]
    pub suppress: Vec<Suppression>,
    /// Istio's mesh config (its YAML, or Istio's ConfigMap) the resources are analyzed
    /// against, as istioctl analyzes against the cluster's: enables IST0157.
    #[arg(long)]
    pub mesh_config: Option<std::path::PathBuf>,
}

/// A finding as istioctl's JSON and YAML outputs give it.
fn message(f: &Finding) -> Value {
    let mut m = json!({
        "code": f.code,
        "name": f.name,
        "level": f.level.as_str(),
        "message": f.message,
    });
    if let Some(first) = f.resources.first() {
        m["origin"] = json!(first.resource.to_string());
        m["reference"] = json!(format!("{}:{}", first.file, first.line));
    }
    if f.code.starts_with("IST") {
        m["documentationUrl"] = json!(format!("{DOCS}/{}/", f.code.to_ascii_lowercase()));
    }
    m
}

/// Runs `weft analyze`. Exit 0 when clean; 79 (istioctl's) when a message reaches the
/// failure threshold; 1 when a file could not be read as resources at all.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let input::Inputs {
        loaded,
        files,
        replaced,
        ..
    } = input::load(&args.files)?;
    // Diagnostics outside any resource (YAML syntax, unknown kinds) are not messages.
    let unreadable: Vec<&Diagnostic> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.resource.is_none())
        .collect();
    let mut findings = schema_findings(&loaded.diagnostics);
    // As istioctl, the other analyzers see the resources the schema check reports too.
    let mut analyzed = loaded.resources.clone();
    analyzed.extend(loaded.invalid.iter().cloned());
    let mesh = match &args.mesh_config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
            let loaded =
                weft_api::mesh_config::load_mesh_config(&path.display().to_string(), &text);
            match loaded.config {
                Some(config) => Some(config),
                None => {
                    let errors: Vec<String> =
                        loaded.diagnostics.iter().map(|d| d.to_string()).collect();
                    anyhow::bail!("the mesh config has errors:\n{}", errors.join("\n"));
                }
            }
        }
        None => None,
    };
    findings.extend(analyze_with_mesh(&analyzed, mesh.as_ref()));
    findings.retain(|f| !args.suppress.iter().any(|s| s.matches(f)));
    let failure = Level::from(args.failure_threshold);
    let failed = findings.iter().any(|f| f.level >= failure);
    let threshold = Level::from(args.output_threshold);
    let shown: Vec<&Finding> = findings.iter().filter(|f| f.level >= threshold).collect();
    match args.output {
        Format::Log => {
            for note in &replaced {
                println!("Info: {note}; analyzing the later one");
            }
            for d in &unreadable {
                println!("{d}");
            }
            for f in &shown {
                println!("{f}");
            }
            if shown.is_empty() && unreadable.is_empty() {
                println!("✔ No validation issues found when analyzing {files} files.");
            }
        }
        Format::Json | Format::Yaml => {
            for d in &unreadable {
                eprintln!("{d}");
            }
            let list = Value::Array(shown.iter().map(|f| message(f)).collect());
            match args.output {
                Format::Json => println!("{}", serde_json::to_string_pretty(&list)?),
                _ if shown.is_empty() => println!("[]"),
                _ => print!("{}", crate::yaml::to_yaml(&list)),
            }
        }
    }
    if failed {
        eprintln!(
            "Error: Analyzers found issues when analyzing {files} files.\nSee {DOCS} for more information about causes and resolutions."
        );
        return Ok(ExitCode::from(EXIT_FOUND_ISSUES));
    }
    Ok(if unreadable.iter().any(|d| d.is_error()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
