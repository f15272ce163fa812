//! `weft analyze -f PATH...`

use std::process::ExitCode;

use serde::Serialize;
use weft_api::{Diagnostic, Severity};
use weft_model::analyze::{Finding, analyze};

use crate::{Output, input};

/// Arguments of `weft analyze`.
pub type Args = input::FileArgs;

#[derive(Serialize)]
struct Report<'a> {
    clean: bool,
    replaced: &'a [String],
    diagnostics: &'a [Diagnostic],
    findings: &'a [Finding],
}

/// Runs `weft analyze`: validation first, then cross-resource findings; 1 when any is an error.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let input::Inputs {
        loaded,
        files,
        replaced,
        ..
    } = input::load(&args.files)?;
    let findings = analyze(&loaded.resources);
    let failed = loaded.has_errors() || findings.iter().any(|f| f.severity == Severity::Error);
    let report = Report {
        clean: loaded.diagnostics.is_empty() && findings.is_empty(),
        replaced: &replaced,
        diagnostics: &loaded.diagnostics,
        findings: &findings,
    };
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Text => {
            for note in &replaced {
                println!("Info: {note}; analyzing the later one");
            }
            for d in &loaded.diagnostics {
                println!("{d}");
            }
            for f in &findings {
                println!("{f}");
            }
            if report.clean {
                println!("✔ No validation issues found when analyzing {files} files.");
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
