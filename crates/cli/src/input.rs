//! Reading the files named by `-f`: files, directories (recursively) and `-` for stdin.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use weft_api::Loaded;
use weft_api::files::config_files;
use weft_api::load::{duplicate_diagnostics, last_wins, load_str};

/// The `-f` and `-o` arguments `validate` and `analyze` share.
#[derive(clap::Args)]
pub struct FileArgs {
    /// Files or directories (read recursively) holding Istio resources; `-` reads standard input.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub output: crate::Output,
}

/// What was read from the inputs.
pub struct Inputs {
    /// Resources and diagnostics; a resource defined in several files is kept once (the last).
    pub loaded: Loaded,
    /// How many files were read.
    pub files: usize,
    /// How many valid resources were read, before later definitions replaced earlier ones.
    pub read: usize,
    /// One note per definition replaced by a later file's.
    pub replaced: Vec<String>,
    /// How many files were Istio's mesh config ConfigMap (read as a mesh config).
    pub mesh_configs: usize,
}

/// Loads every resource from `paths`, in order. A resource defined twice in one
/// file is an error; across files the later definition wins, as `weft apply -f` would.
pub fn load(paths: &[PathBuf]) -> anyhow::Result<Inputs> {
    let files = config_files(paths)?;
    if files.is_empty() {
        bail!(
            "no .yaml, .yml or .json files found in {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut loaded = Loaded::default();
    let mut mesh_configs = 0;
    for f in &files {
        let (name, text) = if f.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading standard input")?;
            ("-".to_string(), text)
        } else {
            let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
            let text = String::from_utf8(bytes)
                .with_context(|| format!("{} is not UTF-8 text", f.display()))?;
            (f.display().to_string(), text)
        };
        if weft_api::mesh_config::is_mesh_config_map(&text) {
            mesh_configs += 1;
            let mesh = weft_api::mesh_config::load_mesh_config(&name, &text);
            loaded.diagnostics.extend(mesh.diagnostics);
            continue;
        }
        loaded.extend(load_str(&name, &text));
    }
    loaded
        .diagnostics
        .extend(duplicate_diagnostics(&loaded.resources));
    let read = loaded.resources.len();
    let (kept, replaced) = last_wins(std::mem::take(&mut loaded.resources));
    loaded.resources = kept;
    Ok(Inputs {
        loaded,
        files: files.len(),
        read,
        replaced,
        mesh_configs,
    })
}
