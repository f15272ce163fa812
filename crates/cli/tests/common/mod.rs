//! What the `weft up` tests (up.rs, dashboard.rs) share: running the binary from the
//! repository root, root detection, and stopping a mesh however a test ends (free ports
//! come from `weft_testkit::free_port`).

use std::path::PathBuf;
use std::process::Command;

/// The repository root (the manifests' paths are relative to it).
pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// Runs `weft args` in the repository root and waits for it.
pub fn weft(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .current_dir(ROOT)
        .output()
        .expect("weft runs")
}

/// True when the tests run as root (CI), where nothing they need may be skipped.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs `weft down` on the state directory however the test ends, then removes it.
pub struct Down(pub PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = weft(&["down", "--state-dir", &self.0.to_string_lossy()]);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
