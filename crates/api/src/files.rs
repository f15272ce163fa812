//! Finding configuration files: files as named, directories recursively (YAML and JSON
//! files, hidden entries skipped, sorted so the order is stable), `-` for standard input.

use std::path::{Path, PathBuf};

/// Extensions read from directories.
pub const EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// A path that could not be read.
#[derive(Debug)]
pub struct FilesError {
    /// The path.
    pub path: PathBuf,
    /// Why.
    pub error: std::io::Error,
}

impl std::fmt::Display for FilesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot read {}: {}", self.path.display(), self.error)
    }
}

impl std::error::Error for FilesError {}

/// Every file named by `paths`, expanding directories.
pub fn config_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, FilesError> {
    let mut out = Vec::new();
    for p in paths {
        collect(p, &mut out)?;
    }
    Ok(out)
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), FilesError> {
    let fail = |error| FilesError {
        path: path.to_path_buf(),
        error,
    };
    if path.as_os_str() == "-" {
        out.push(path.to_path_buf());
        return Ok(());
    }
    if !std::fs::metadata(path).map_err(fail)?.is_dir() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(fail)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(fail)?;
    entries.sort();
    for entry in entries {
        if entry
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'))
        {
            continue;
        }
        if entry.is_dir() {
            collect(&entry, out)?;
        } else if entry
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e))
        {
            out.push(entry);
        }
    }
    Ok(())
}
