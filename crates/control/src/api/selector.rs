//! Kubernetes label selectors (`app=reviews,version!=v1,tier in (a,b),!canary,env`) and
//! field selectors (`metadata.name=x`, `metadata.namespace!=y`) over stored resources.

use std::collections::BTreeMap;

use weft_api::Resource;

/// One requirement of a label selector.
#[derive(Debug, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector: every requirement must hold.
#[derive(Debug, PartialEq)]
pub struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    /// Parses `text`; the error names the requirement that does not parse.
    pub fn parse(text: &str) -> Result<LabelSelector, String> {
        let mut out = Vec::new();
        for part in split_top(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let bad = || format!("labelSelector: cannot read {part:?}");
            let requirement = if let Some(key) = part.strip_prefix('!') {
                Requirement::NotExists(key.trim().to_string())
            } else if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, set)) = part.split_once(" notin ") {
                Requirement::NotIn(k.trim().into(), set_of(set).ok_or_else(bad)?)
            } else if let Some((k, set)) = part.split_once(" in ") {
                Requirement::In(k.trim().into(), set_of(set).ok_or_else(bad)?)
            } else if part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            {
                Requirement::Exists(part.to_string())
            } else {
                return Err(bad());
            };
            out.push(requirement);
        }
        Ok(LabelSelector(out))
    }

    /// True when `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, set) => labels.get(k).is_some_and(|v| set.contains(v)),
            Requirement::NotIn(k, set) => labels.get(k).is_none_or(|v| !set.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
        })
    }
}

/// Splits at commas outside parentheses.
fn split_top(text: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn set_of(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_string()).collect())
}

/// A parsed field selector over `metadata.name` and `metadata.namespace`.
#[derive(Debug)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses `text`; only the fields every kind supports in Kubernetes are accepted.
    pub fn parse(text: &str) -> Result<FieldSelector, String> {
        let mut out = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, true, v)
            } else {
                return Err(format!("fieldSelector: cannot read {part:?}"));
            };
            let field = field.trim();
            if field != "metadata.name" && field != "metadata.namespace" {
                return Err(format!(
                    "field label not supported: {field} (metadata.name and metadata.namespace are)"
                ));
            }
            out.push((field.to_string(), equal, value.trim().to_string()));
        }
        Ok(FieldSelector(out))
    }

    /// True when `r` satisfies every requirement.
    pub fn matches(&self, r: &Resource) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let actual = if field == "metadata.name" {
                r.name()
            } else {
                r.namespace()
            };
            (actual == value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_label_requirement_kind() {
        let s = LabelSelector::parse("app=reviews,version!=v1,tier in (web, api),!canary,env")
            .expect("parses");
        let good = labels(&[
            ("app", "reviews"),
            ("version", "v2"),
            ("tier", "api"),
            ("env", "x"),
        ]);
        assert!(s.matches(&good));
        let mut canary = good.clone();
        canary.insert("canary".into(), "yes".into());
        assert!(!s.matches(&canary));
        let mut v1 = good.clone();
        v1.insert("version".into(), "v1".into());
        assert!(!s.matches(&v1));
        let notin = LabelSelector::parse("tier notin (web)").expect("parses");
        assert!(notin.matches(&labels(&[])));
        assert!(!notin.matches(&labels(&[("tier", "web")])));
        assert!(LabelSelector::parse("a in b").is_err());
    }

    #[test]
    fn field_selectors_name_and_namespace_only() {
        assert!(FieldSelector::parse("metadata.name=reviews,metadata.namespace!=x").is_ok());
        let e = FieldSelector::parse("spec.host=x").expect_err("refused");
        assert!(e.contains("spec.host"), "{e}");
    }
}
