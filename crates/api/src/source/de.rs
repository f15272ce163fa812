//! A serde deserializer over [`Node`] that knows the field path and position of
//! every value it reads.
//!
//! It records the position of each field path (so later validation errors can
//! name a line), and it collects *every* unknown field of a struct instead of
//! stopping at the first one (each with a did-you-mean suggestion).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use super::node::{Node, NodeValue, Pos};
use super::scalar::{Number, bool_value, is_bool_text, is_null_text, number};

/// An error met while reading a node into a typed value.
#[derive(Debug, Clone, PartialEq)]
pub struct DeError {
    /// What went wrong.
    pub message: String,
    /// The field path where it went wrong, once known.
    pub path: Option<String>,
    /// The position where it went wrong, once known.
    pub pos: Option<Pos>,
}

impl DeError {
    fn at(mut self, path: &str, pos: Pos) -> Self {
        if self.path.is_none() {
            self.path = Some(path.to_string());
            self.pos = Some(pos);
        }
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            path: None,
            pos: None,
        }
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let mut message = format!(
            "unknown value `{variant}`, expected one of {}",
            expected.join(", ")
        );
        if let Some(s) = suggest(variant, expected) {
            message.push_str(&format!(" (did you mean `{s}`?)"));
        }
        de::Error::custom(message)
    }

    fn missing_field(field: &'static str) -> Self {
        de::Error::custom(format!("missing required field `{field}`"))
    }
}

/// What reading a document learned besides the typed value.
#[derive(Debug, Default)]
pub struct ReadContext {
    /// Position of every field path seen.
    pub positions: HashMap<String, Pos>,
    /// Errors that did not stop reading (unknown fields).
    pub errors: Vec<DeError>,
    /// Unknown fields are passed over, not reported: for Kubernetes' own kinds, of which
    /// weft reads a part and keeps the rest as written.
    pub lenient: bool,
}

/// Reads `node` (found at `path`) into `T`.
pub fn from_node<T: de::DeserializeOwned>(
    node: &Node,
    path: &str,
    ctx: &RefCell<ReadContext>,
) -> Result<T, DeError> {
    ctx.borrow_mut()
        .positions
        .entry(path.to_string())
        .or_insert(node.pos);
    let result = T::deserialize(NodeDe {
        node,
        path: path.to_string(),
        ctx,
    });
    ctx.borrow_mut().errors.sort_by_key(|e| e.pos);
    result
}

/// The closest known name to `input`, if any is close enough to be a likely typo.
pub fn suggest<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| {
            (
                strsim::jaro_winkler(&input.to_ascii_lowercase(), &c.to_ascii_lowercase()),
                *c,
            )
        })
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

struct NodeDe<'a> {
    node: &'a Node,
    path: String,
    ctx: &'a RefCell<ReadContext>,
}

fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl<'a> NodeDe<'a> {
    fn child(&self, node: &'a Node, path: String, pos: Pos) -> NodeDe<'a> {
        self.ctx
            .borrow_mut()
            .positions
            .entry(path.clone())
            .or_insert(pos);
        NodeDe {
            node,
            path,
            ctx: self.ctx,
        }
    }

    fn fail(&self, expected: &str) -> DeError {
        DeError {
            message: format!("expected {expected}, got {}", self.node.describe()),
            path: Some(self.path.clone()),
            pos: Some(self.node.pos),
        }
    }

    /// The scalar's text when it is a plain scalar (number, bool or null candidates).
    fn plain(&self) -> Option<&'a str> {
        match &self.node.value {
            NodeValue::Scalar(s) if s.plain => Some(&s.text),
            _ => None,
        }
    }

    fn string(&self) -> Result<&'a str, DeError> {
        match &self.node.value {
            NodeValue::Scalar(s) if !s.plain => Ok(&s.text),
            NodeValue::Scalar(s)
                if is_null_text(&s.text) || is_bool_text(&s.text) || number(&s.text).is_some() =>
            {
                Err(DeError {
                    message: format!(
                        "expected a string, got {} (quote it: \"{}\")",
                        self.node.describe(),
                        s.text
                    ),
                    path: Some(self.path.clone()),
                    pos: Some(self.node.pos),
                })
            }
            NodeValue::Scalar(s) => Ok(&s.text),
            _ => Err(self.fail("a string")),
        }
    }

    fn integer<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let text = self.plain().ok_or_else(|| self.fail("an integer"))?;
        let (path, pos) = (self.path.clone(), self.node.pos);
        let value = number(text).and_then(Number::integer);
        if let Some(v) = value.and_then(|v| i64::try_from(v).ok()) {
            return visitor.visit_i64(v).map_err(|e: DeError| e.at(&path, pos));
        }
        if let Some(v) = value.and_then(|v| u64::try_from(v).ok()) {
            return visitor.visit_u64(v).map_err(|e: DeError| e.at(&path, pos));
        }
        Err(self.fail("an integer"))
    }
}

macro_rules! forward_integer {
    ($($method:ident)*) => {
        $(fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
            self.integer(visitor)
        })*
    };
}

impl<'a> de::Deserializer<'a> for NodeDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let (path, pos) = (self.path.clone(), self.node.pos);
        let result = match &self.node.value {
            NodeValue::Scalar(s) if !s.plain => visitor.visit_str(&s.text),
            NodeValue::Scalar(s) if is_null_text(&s.text) => visitor.visit_unit(),
            NodeValue::Scalar(s) if is_bool_text(&s.text) => {
                visitor.visit_bool(bool_value(&s.text).unwrap_or_default())
            }
            NodeValue::Scalar(s) => match number(&s.text) {
                Some(Number::Int(i)) => visitor.visit_i64(i),
                Some(Number::Uint(u)) => visitor.visit_u64(u),
                Some(Number::Float(f)) => visitor.visit_f64(f),
                None => visitor.visit_str(&s.text),
            },
            NodeValue::Seq(_) => return self.deserialize_seq(visitor),
            NodeValue::Map(_) => return self.deserialize_map(visitor),
        };
        result.map_err(|e: DeError| e.at(&path, pos))
    }

    fn deserialize_bool<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.plain() {
            Some(t) if is_bool_text(t) => {
                let (path, pos) = (self.path.clone(), self.node.pos);
                visitor
                    .visit_bool(bool_value(t).unwrap_or_default())
                    .map_err(|e: DeError| e.at(&path, pos))
            }
            _ => Err(self.fail("a boolean (true or false)")),
        }
    }

    forward_integer!(deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128);

    fn deserialize_f32<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.plain().and_then(number).map(Number::float) {
            Some(v) if v.is_finite() => {
                let (path, pos) = (self.path.clone(), self.node.pos);
                visitor.visit_f64(v).map_err(|e: DeError| e.at(&path, pos))
            }
            _ => Err(self.fail("a number")),
        }
    }

    fn deserialize_char<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let text = self.string()?;
        visitor
            .visit_str(text)
            .map_err(|e: DeError| e.at(&self.path, self.node.pos))
    }

    fn deserialize_string<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            visitor.visit_unit()
        } else {
            Err(self.fail("null"))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let items: &'a [Node] = match &self.node.value {
            NodeValue::Seq(items) => items,
            _ if self.node.is_null() => &[],
            _ => return Err(self.fail("a list")),
        };
        let (path, pos) = (self.path.clone(), self.node.pos);
        visitor
            .visit_seq(Items {
                parent: &self,
                items: items.iter().enumerate(),
            })
            .map_err(|e: DeError| e.at(&path, pos))
    }

    fn deserialize_tuple<V: Visitor<'a>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let entries: Vec<&'a (Node, Node)> = match &self.node.value {
            NodeValue::Map(entries) => entries.iter().collect(),
            _ if self.node.is_null() => Vec::new(),
            _ => return Err(self.fail("a mapping")),
        };
        let (path, pos) = (self.path.clone(), self.node.pos);
        visitor
            .visit_map(Entries {
                parent: &self,
                entries: entries.into_iter(),
                value: None,
            })
            .map_err(|e: DeError| e.at(&path, pos))
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let all: &'a [(Node, Node)] = match &self.node.value {
            NodeValue::Map(entries) => entries,
            _ if self.node.is_null() => &[],
            _ => return Err(self.fail("a mapping")),
        };
        let mut known = Vec::with_capacity(all.len());
        for entry in all {
            let key = entry.0.as_str().unwrap_or_default();
            if fields.contains(&key) {
                known.push(entry);
                continue;
            }
            if self.ctx.borrow().lenient {
                continue;
            }
            let mut message = format!("unknown field `{key}`");
            if let Some(s) = suggest(key, fields) {
                message.push_str(&format!(" (did you mean `{s}`?)"));
            } else if !fields.is_empty() {
                message.push_str(&format!("; known fields: {}", fields.join(", ")));
            }
            self.ctx.borrow_mut().errors.push(DeError {
                message,
                path: Some(child_path(&self.path, key)),
                pos: Some(entry.0.pos),
            });
        }
        let (path, pos) = (self.path.clone(), self.node.pos);
        visitor
            .visit_map(Entries {
                parent: &self,
                entries: known.into_iter(),
                value: None,
            })
            .map_err(|e: DeError| e.at(&path, pos))
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let text = self.string()?;
        let (path, pos) = (self.path.clone(), self.node.pos);
        visitor
            .visit_enum(IntoDeserializer::<DeError>::into_deserializer(text))
            .map_err(|e: DeError| e.at(&path, pos))
    }

    fn deserialize_identifier<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct Items<'p, 'a, I> {
    parent: &'p NodeDe<'a>,
    items: I,
}

impl<'a, I: Iterator<Item = (usize, &'a Node)>> de::SeqAccess<'a> for Items<'_, 'a, I> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some((i, node)) = self.items.next() else {
            return Ok(None);
        };
        let de = self
            .parent
            .child(node, format!("{}[{i}]", self.parent.path), node.pos);
        let (path, pos) = (de.path.clone(), node.pos);
        seed.deserialize(de)
            .map(Some)
            .map_err(|e: DeError| e.at(&path, pos))
    }
}

struct Entries<'p, 'a, I> {
    parent: &'p NodeDe<'a>,
    entries: I,
    value: Option<&'a (Node, Node)>,
}

impl<'a, I: Iterator<Item = &'a (Node, Node)>> de::MapAccess<'a> for Entries<'_, 'a, I> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(entry);
        let key = entry.0.as_str().unwrap_or_default();
        let path = child_path(&self.parent.path, key);
        let de = NodeDe {
            node: &entry.0,
            path: path.clone(),
            ctx: self.parent.ctx,
        };
        seed.deserialize(de)
            .map(Some)
            .map_err(|e: DeError| e.at(&path, entry.0.pos))
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some(entry) = self.value.take() else {
            return Err(de::Error::custom("value read before its key"));
        };
        let path = child_path(&self.parent.path, entry.0.as_str().unwrap_or_default());
        let de = self.parent.child(&entry.1, path.clone(), entry.0.pos);
        seed.deserialize(de)
            .map_err(|e: DeError| e.at(&path, entry.0.pos))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;
    use crate::source::node::parse_documents;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Inner {
        weight: Option<i32>,
        name: Option<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Outer {
        #[serde(default)]
        route: Vec<Inner>,
        #[serde(default)]
        labels: BTreeMap<String, String>,
    }

    fn read(text: &str) -> (Result<Outer, DeError>, ReadContext) {
        let docs = parse_documents(text).expect("yaml");
        let ctx = RefCell::new(ReadContext::default());
        let r = from_node::<Outer>(&docs[0], "spec", &ctx);
        (r, ctx.into_inner())
    }

    #[test]
    fn booleans_read_as_kubectl_reads_them() {
        #[derive(Debug, Deserialize)]
        struct Flags {
            a: bool,
            b: bool,
            c: bool,
            d: bool,
        }
        let docs = parse_documents("a: yes\nb: Off\nc: 'yes'\nd: TRUE\n").expect("yaml");
        let ctx = RefCell::new(ReadContext::default());
        let e = from_node::<Flags>(&docs[0], "spec", &ctx).expect_err("a quoted 'yes' is a string");
        assert_eq!(e.path.as_deref(), Some("spec.c"));
        let docs = parse_documents("a: yes\nb: Off\nc: n\nd: TRUE\n").expect("yaml");
        let f = from_node::<Flags>(&docs[0], "spec", &ctx).expect("booleans");
        assert!(f.a && !f.b && !f.c && f.d);
        // A string field given kubectl's boolean `on` must be quoted, as kubectl would send `true`.
        let (r, _) = read("route:\n- name: on\n");
        let e = r.expect_err("on is a boolean");
        assert!(e.message.contains("quote it"), "{}", e.message);
    }

    #[test]
    fn numbers_and_strings_read_as_kubectl_reads_them() {
        #[derive(Debug, Deserialize)]
        struct Ports {
            a: u32,
            b: u32,
            c: u32,
            d: i32,
            e: f64,
        }
        let docs = parse_documents("a: 0x1F90\nb: 1_000\nc: 017\nd: 1e3\ne: .5\n").expect("yaml");
        let ctx = RefCell::new(ReadContext::default());
        let p = from_node::<Ports>(&docs[0], "spec", &ctx).expect("go-yaml's integers");
        assert_eq!((p.a, p.b, p.c, p.d, p.e), (8080, 1000, 15, 1000, 0.5));
        // Unquoted IPv6 text and clock-like values are strings (YAML 1.1 sexagesimal is
        // not read by go-yaml), and so are nan and inf.
        let (r, _) = read(
            "labels:\n  ip: 001:db8::1\n  net: 2001:db8::/32\n  at: 1:30\n  nan: nan\n  inf: inf\n",
        );
        let labels = r.expect("strings").labels;
        assert_eq!(labels["ip"], "001:db8::1");
        assert_eq!(labels["net"], "2001:db8::/32");
        assert_eq!(labels["at"], "1:30");
        assert_eq!(labels["nan"], "nan");
        assert_eq!(labels["inf"], "inf");
        // A `:` ending a plain scalar starts a mapping value, for go-yaml as here: `001:db8::`
        // must be quoted.
        assert!(parse_documents("ip: 001:db8::\n").is_err());
        assert!(parse_documents("ip: '001:db8::'\n").is_ok());
        // What kubectl sends as a number must be quoted in a string field.
        for number in ["0x10", "1_000", "1e3", ".5", ".inf"] {
            let (r, _) = read(&format!("labels: {{v: {number}}}\n"));
            let e = r.expect_err(number);
            assert!(e.message.contains("quote it"), "{number}: {}", e.message);
        }
        // So must a key kubectl reads as a boolean (`y` is YAML 1.1's true).
        let (r, _) = read("labels: {y: a}\n");
        assert!(r.expect_err("y").message.contains("quote it"));
        // An integer field refuses a fraction.
        let (r, _) = read("route:\n- weight: 1.5\n");
        assert!(
            r.expect_err("fraction")
                .message
                .contains("expected an integer")
        );
    }

    #[test]
    fn collects_every_unknown_field_with_suggestions() {
        let (r, ctx) = read("route:\n- wieght: 1\n  nmae: x\nlabls: {}\n");
        assert!(r.is_ok());
        let msgs: Vec<_> = ctx
            .errors
            .iter()
            .map(|e| (e.path.clone().unwrap_or_default(), e.message.clone()))
            .collect();
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[0].0, "spec.route[0].wieght");
        assert!(msgs[0].1.contains("did you mean `weight`"));
        assert_eq!(msgs[2].0, "spec.labls");
    }

    #[test]
    fn type_errors_name_path_and_position() {
        let (r, _) = read("route:\n- weight: heavy\n");
        let e = r.expect_err("type error");
        assert_eq!(e.path.as_deref(), Some("spec.route[0].weight"));
        assert_eq!(
            e.pos,
            Some(Pos {
                line: 2,
                column: 11
            })
        );
        assert!(e.message.contains("expected an integer"), "{}", e.message);
    }

    #[test]
    fn unquoted_numbers_are_not_strings() {
        let (r, _) = read("labels: {version: 1}\n");
        let e = r.expect_err("number");
        assert!(e.message.contains("quote it"));
        assert_eq!(e.path.as_deref(), Some("spec.labels.version"));
    }

    #[test]
    fn positions_are_recorded_per_path() {
        let (_, ctx) = read("route:\n- name: a\n- weight: 3\n");
        assert_eq!(
            ctx.positions["spec.route[1].weight"],
            Pos { line: 3, column: 3 }
        );
    }
}
