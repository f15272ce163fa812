//! Reading YAML and JSON text into positioned trees and typed values.

pub mod de;
pub mod node;
mod scalar;

pub use de::{DeError, ReadContext, from_node, suggest};
pub use node::{Node, NodeValue, Pos, SyntaxError, parse_documents};
