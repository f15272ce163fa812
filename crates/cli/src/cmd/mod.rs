//! One module per subcommand.

pub mod analyze;
pub mod proxy;
pub mod validate;
