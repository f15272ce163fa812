//! `--suppress "CODE=Kind name"`, as istioctl takes it: silences one code on the
//! resources it names. The name is a glob (`*` for any run of characters) matched
//! against istioctl's `name.namespace` and against weft's `namespace/name`.

use std::fmt;
use std::str::FromStr;

use super::Finding;

/// One `CODE=Kind name` suppression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    code: String,
    kind: String,
    name: String,
}

/// Why a suppression could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadSuppression(String);

impl fmt::Display for BadSuppression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "suppression {:?} is not of the form CODE=Kind name (e.g. \"IST0102=Namespace default\" or \"IST0101=VirtualService *.default\")",
            self.0
        )
    }
}

impl std::error::Error for BadSuppression {}

impl FromStr for Suppression {
    type Err = BadSuppression;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadSuppression(s.to_string());
        let (code, resource) = s.split_once('=').ok_or_else(bad)?;
        let (kind, name) = resource.trim().split_once(' ').ok_or_else(bad)?;
        let (code, kind, name) = (code.trim(), kind.trim(), name.trim());
        if code.is_empty() || kind.is_empty() || name.is_empty() {
            return Err(bad());
        }
        Ok(Suppression {
            code: code.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
        })
    }
}

/// Glob match where `*` stands for any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(tail) = text.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .filter(|i| tail.is_char_boundary(*i))
                .any(|i| glob(rest, &tail[i..]))
        }
    }
}

impl Suppression {
    /// True when this suppression silences `finding` (matched on the resource to fix).
    pub fn matches(&self, finding: &Finding) -> bool {
        let Some(first) = finding.resources.first() else {
            return false;
        };
        let r = &first.resource;
        glob(&self.code, finding.code)
            && self.kind.eq_ignore_ascii_case(&r.kind)
            && ((r.namespace.is_empty() && glob(&self.name, &r.name))
                || glob(&self.name, &format!("{}.{}", r.name, r.namespace))
                || glob(&self.name, &format!("{}/{}", r.namespace, r.name)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Finding, Involved, Level};
    use super::*;
    use weft_api::diag::ResourceRef;

    fn f(code: &'static str, kind: &str, ns: &str, name: &str) -> Finding {
        Finding {
            code,
            name: "X",
            level: Level::Error,
            message: String::new(),
            resources: vec![Involved {
                resource: ResourceRef {
                    kind: kind.into(),
                    namespace: ns.into(),
                    name: name.into(),
                },
                file: "-".into(),
                line: 1,
            }],
        }
    }

    #[test]
    fn suppressions_match_code_kind_and_a_glob_on_the_name() {
        let s: Suppression = "IST0101=VirtualService *.default"
            .parse()
            .expect("a suppression");
        assert!(s.matches(&f("IST0101", "VirtualService", "default", "reviews")));
        assert!(!s.matches(&f("IST0101", "VirtualService", "prod", "reviews")));
        assert!(!s.matches(&f("IST0130", "VirtualService", "default", "reviews")));
        assert!(!s.matches(&f("IST0101", "Gateway", "default", "reviews")));
        let s: Suppression = "IST0101=VirtualService default/rev*"
            .parse()
            .expect("a suppression");
        assert!(s.matches(&f("IST0101", "VirtualService", "default", "reviews")));
        assert!(!s.matches(&f("IST0101", "VirtualService", "default", "ratings")));
        // A cluster-scoped resource is named alone, as in istioctl.
        let s: Suppression = "IST0102=Namespace frod".parse().expect("a suppression");
        assert!(s.matches(&f("IST0102", "Namespace", "", "frod")));
        assert!(!s.matches(&f("IST0102", "Namespace", "", "bar")));
    }

    #[test]
    fn malformed_suppressions_are_refused() {
        for bad in ["IST0101", "IST0101=VirtualService", "=Gateway x"] {
            assert!(bad.parse::<Suppression>().is_err(), "{bad}");
        }
    }
}
