//! A YAML document as a tree whose every node remembers where it was written.
//!
//! Built from `saphyr-parser` events. Limits guard against hostile input: nesting
//! depth and the number of nodes produced by alias expansion ("billion laughs").

use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use super::scalar::{is_bool_text, is_null_text, number};

/// Deepest nesting accepted; Istio resources are a dozen levels deep at most.
const MAX_DEPTH: usize = 64;
/// Most nodes one input may expand to, aliases included.
const MAX_NODES: usize = 1_000_000;

/// A position in a source text, 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// Line, counting from 1.
    pub line: usize,
    /// Column, counting from 1.
    pub column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

impl Pos {
    fn of(span: &Span) -> Pos {
        Pos {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

/// A scalar as written: its text and whether it was quoted (quoted scalars are
/// always strings; plain ones may be numbers, booleans or null).
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    /// The scalar's text.
    pub text: String,
    /// True for plain (unquoted, non-block) scalars.
    pub plain: bool,
}

/// One node of a document.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    /// A scalar (string, number, boolean or null, decided by the reader).
    Scalar(Scalar),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order. Keys are scalars.
    Map(Vec<(Node, Node)>),
}

/// A node with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What the node holds.
    pub value: NodeValue,
    /// Where the node starts.
    pub pos: Pos,
}

impl Node {
    /// The value under `key` when this node is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            NodeValue::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text of a scalar node.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::Scalar(s) => Some(&s.text),
            _ => None,
        }
    }

    /// True for a plain `null`, `~` or empty scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, NodeValue::Scalar(s) if s.plain && is_null_text(&s.text))
    }

    /// A short name of the node's kind for error messages.
    pub fn describe(&self) -> &'static str {
        match &self.value {
            NodeValue::Scalar(s) if !s.plain => "a string",
            NodeValue::Scalar(s) if is_null_text(&s.text) => "null",
            NodeValue::Scalar(s) if is_bool_text(&s.text) => "a boolean",
            NodeValue::Scalar(s) if number(&s.text).is_some() => "a number",
            NodeValue::Scalar(_) => "a string",
            NodeValue::Seq(_) => "a list",
            NodeValue::Map(_) => "a mapping",
        }
    }
}

/// A syntax error with the parser's position.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    /// Where the parser stopped.
    pub pos: Pos,
    /// The parser's explanation.
    pub message: String,
}

/// Parses every document in `text`. Documents that hold nothing (an empty `---`
/// section) are dropped.
pub fn parse_documents(text: &str) -> Result<Vec<Node>, SyntaxError> {
    let mut builder = Builder {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        nodes: 0,
    };
    builder.documents()
}

struct Builder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), SyntaxError> {
        match self.parser.next_event() {
            Some(Ok(ev)) => Ok(ev),
            Some(Err(e)) => Err(SyntaxError {
                pos: Pos {
                    line: e.marker().line(),
                    column: e.marker().col() + 1,
                },
                message: e.info().to_string(),
            }),
            None => Err(SyntaxError {
                pos: Pos::default(),
                message: "unexpected end of input".into(),
            }),
        }
    }

    fn documents(&mut self) -> Result<Vec<Node>, SyntaxError> {
        let mut docs = Vec::new();
        loop {
            let (ev, span) = self.next()?;
            match ev {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::StreamEnd => return Ok(docs),
                Event::DocumentStart(_) => {
                    self.anchors.clear();
                    let (ev, span) = self.next()?;
                    let node = self.node(ev, span, 0)?;
                    if !node.is_null() {
                        docs.push(node);
                    }
                }
                other => {
                    return Err(SyntaxError {
                        pos: Pos::of(&span),
                        message: format!("unexpected {other:?}"),
                    });
                }
            }
        }
    }

    fn count(&mut self, n: usize, span: &Span) -> Result<(), SyntaxError> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(SyntaxError {
                pos: Pos::of(span),
                message: format!("document expands to more than {MAX_NODES} nodes (alias bomb?)"),
            });
        }
        Ok(())
    }

    fn node(&mut self, ev: Event<'a>, span: Span, depth: usize) -> Result<Node, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(SyntaxError {
                pos: Pos::of(&span),
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
            });
        }
        self.count(1, &span)?;
        let pos = Pos::of(&span);
        let (node, anchor) = match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let plain = style == ScalarStyle::Plain;
                (
                    Node {
                        value: NodeValue::Scalar(Scalar {
                            text: text.into_owned(),
                            plain,
                        }),
                        pos,
                    },
                    anchor,
                )
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (ev, span) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(ev, span, depth + 1)?);
                }
                (
                    Node {
                        value: NodeValue::Seq(items),
                        pos,
                    },
                    anchor,
                )
            }
            Event::MappingStart(anchor, _) => {
                let mut entries: Vec<(Node, Node)> = Vec::new();
                loop {
                    let (ev, kspan) = self.next()?;
                    if matches!(ev, Event::MappingEnd) {
                        break;
                    }
                    let key = self.node(ev, kspan, depth + 1)?;
                    let (ev, vspan) = self.next()?;
                    let value = self.node(ev, vspan, depth + 1)?;
                    if key.as_str() == Some("<<") {
                        return Err(SyntaxError {
                            pos: key.pos,
                            message: "merge keys (<<) are not supported".into(),
                        });
                    }
                    if key.as_str().is_none() {
                        return Err(SyntaxError {
                            pos: key.pos,
                            message: "mapping keys must be scalars".into(),
                        });
                    }
                    if let Some((first, _)) =
                        entries.iter().find(|(k, _)| k.as_str() == key.as_str())
                    {
                        return Err(SyntaxError {
                            pos: key.pos,
                            message: format!(
                                "duplicate key `{}` (first at line {})",
                                key.as_str().unwrap_or_default(),
                                first.pos.line
                            ),
                        });
                    }
                    entries.push((key, value));
                }
                (
                    Node {
                        value: NodeValue::Map(entries),
                        pos,
                    },
                    anchor,
                )
            }
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(&id).cloned() else {
                    return Err(SyntaxError {
                        pos,
                        message: "alias to an unknown anchor".into(),
                    });
                };
                self.count(size(&target), &span)?;
                return Ok(Node { pos, ..target });
            }
            other => {
                return Err(SyntaxError {
                    pos,
                    message: format!("unexpected {other:?}"),
                });
            }
        };
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }
}

fn size(node: &Node) -> usize {
    match &node.value {
        NodeValue::Scalar(_) => 1,
        NodeValue::Seq(items) => 1 + items.iter().map(size).sum::<usize>(),
        NodeValue::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| size(k) + size(v))
                .sum::<usize>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let docs = parse_documents("a: 1\nb:\n  c: x\n").expect("parses");
        let c = docs[0].get("b").and_then(|b| b.get("c")).expect("c");
        assert_eq!(c.pos, Pos { line: 3, column: 6 });
    }

    #[test]
    fn several_documents_and_empty_ones() {
        let docs = parse_documents("---\na: 1\n---\n---\nb: 2\n").expect("parses");
        assert_eq!(docs.len(), 2);
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let err = parse_documents("a: 1\na: 2\n").expect_err("duplicate");
        assert_eq!(err.pos.line, 2);
        assert!(err.message.contains("duplicate key `a`"));
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = parse_documents(&text).expect_err("bomb");
        assert!(err.message.contains("more than"));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(parse_documents(&text).is_err());
    }

    #[test]
    fn json_is_yaml() {
        let docs = parse_documents(r#"{"kind": "List", "items": [{"a": 1}]}"#).expect("parses");
        assert_eq!(docs[0].get("kind").and_then(Node::as_str), Some("List"));
    }
}
