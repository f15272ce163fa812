//! `weft validate -f PATH...`

use std::process::ExitCode;

use serde::Serialize;
use weft_api::Diagnostic;

use crate::{Output, input};

/// Arguments of `weft validate`.
pub type Args = input::FileArgs;

#[derive(Serialize)]
struct Report<'a> {
    valid: bool,
    files: usize,
    resources: usize,
    errors: usize,
    warnings: usize,
    diagnostics: &'a [Diagnostic],
}

/// Runs `weft validate`: 0 when every resource is valid, 1 otherwise.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let input::Inputs {
        loaded,
        files,
        read,
        ..
    } = input::load(&args.files)?;
    let errors = loaded.diagnostics.iter().filter(|d| d.is_error()).count();
    let report = Report {
        valid: errors == 0,
        files,
        resources: read,
        errors,
        warnings: loaded.diagnostics.len() - errors,
        diagnostics: &loaded.diagnostics,
    };
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Text => {
            for d in &loaded.diagnostics {
                println!("{d}");
            }
            if report.valid {
                println!(
                    "✔ {} resources in {} files are valid ({} warnings)",
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
