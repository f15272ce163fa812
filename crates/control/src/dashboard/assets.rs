//! The page's files, embedded at build time from `crates/control/dashboard/dist/`
//! (built from `crates/control/dashboard/src/` by its `build.sh`; no Node.js is needed
//! to build weft, and CI checks that the bundle matches its sources).

/// `index.html`.
pub const INDEX: &[u8] = include_bytes!("../../dashboard/dist/index.html");
/// The bundled script.
pub const APP_JS: &[u8] = include_bytes!("../../dashboard/dist/app.js");
/// The bundled styles.
pub const APP_CSS: &[u8] = include_bytes!("../../dashboard/dist/app.css");
