//! One module per subcommand.

pub mod analyze;
pub mod check;
pub mod control;
pub mod dashboard;
pub mod demo;
pub mod kubeconfig;
pub mod prometheus;
pub mod proxy;
pub mod resources;
pub mod top;
pub mod traces;
pub mod up;
pub mod validate;
