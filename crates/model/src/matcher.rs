//! Compiled request matchers: what one `match` entry of an HTTP rule asks.

use std::fmt;

use serde::{Serialize, Serializer};
use weft_api::networking::StringMatch;

/// A compiled RE2 regex, serialized as the pattern the user wrote.
#[derive(Clone)]
pub struct Regex {
    pattern: String,
    regex: regex::Regex,
}

impl Regex {
    /// Compiles `pattern` to match whole strings only, as Istio's matches do.
    pub fn whole(pattern: &str) -> Result<Self, String> {
        let regex = weft_api::validate::checks::compile_regex(pattern)?;
        Ok(Regex {
            pattern: pattern.to_string(),
            regex,
        })
    }

    /// Compiles `pattern` to find matches anywhere (for substitutions), within the same limits.
    pub fn unanchored(pattern: &str) -> Result<Self, String> {
        weft_api::validate::checks::compile_regex(pattern)?;
        let regex = regex::RegexBuilder::new(pattern)
            .size_limit(weft_api::validate::checks::REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Regex {
            pattern: pattern.to_string(),
            regex,
        })
    }

    /// True when the regex matches `s` (the whole of it, for [`Regex::whole`]).
    pub fn is_match(&self, s: &str) -> bool {
        self.regex.is_match(s)
    }

    /// The compiled regex.
    pub fn regex(&self) -> &regex::Regex {
        &self.regex
    }
}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}/", self.pattern)
    }
}

impl PartialEq for Regex {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl Serialize for Regex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.pattern)
    }
}

/// A compiled `StringMatch`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StringMatcher {
    /// Equal to the string.
    Exact(String),
    /// Starts with the string.
    Prefix(String),
    /// A path that is the string or continues it with `/` (the Gateway API's PathPrefix,
    /// Envoy's `path_separated_prefix`: `/foo` matches `/foo` and `/foo/bar`, not
    /// `/foobar`); written without a trailing `/`.
    SegmentPrefix(String),
    /// The regex matches the whole value.
    Regex(Regex),
    /// Any value (`{}` or the pseudo-regex `*`).
    Present,
}

impl StringMatcher {
    /// Compiles an Istio `StringMatch`; `ignore_case` applies to exact and prefix.
    pub fn compile(m: &StringMatch, ignore_case: bool) -> Result<Self, String> {
        let fold = |s: &String| {
            if ignore_case {
                s.to_ascii_lowercase()
            } else {
                s.clone()
            }
        };
        Ok(match (&m.exact, &m.prefix, &m.regex) {
            (Some(e), _, _) => StringMatcher::Exact(fold(e)),
            (_, Some(p), _) => StringMatcher::Prefix(fold(p)),
            (_, _, Some(r)) if r == "*" => StringMatcher::Present,
            (_, _, Some(r)) => StringMatcher::Regex(Regex::whole(r)?),
            _ => StringMatcher::Present,
        })
    }

    /// True when `value` matches. `ignore_case` folds `value` for exact/prefix.
    pub fn matches(&self, value: &str, ignore_case: bool) -> bool {
        match self {
            StringMatcher::Exact(e) if ignore_case => value.eq_ignore_ascii_case(e),
            StringMatcher::Exact(e) => value == e,
            StringMatcher::Prefix(p) if ignore_case => {
                value.len() >= p.len()
                    && value.is_char_boundary(p.len())
                    && value[..p.len()].eq_ignore_ascii_case(p)
            }
            StringMatcher::Prefix(p) => value.starts_with(p.as_str()),
            StringMatcher::SegmentPrefix(p) => value
                .strip_prefix(p.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
            StringMatcher::Regex(r) => r.is_match(value),
            StringMatcher::Present => true,
        }
    }

    /// True for a plain `prefix: /` (matches every path).
    pub fn is_root_prefix(&self) -> bool {
        matches!(self, StringMatcher::Prefix(p) if p == "/")
    }
}

/// A header (or query parameter) condition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NamedMatcher {
    /// Lower-cased header name, or the query parameter name.
    pub name: String,
    /// What the value must match.
    pub matcher: StringMatcher,
}

/// The request as the router sees it. Header names are looked up lower-case.
pub trait RequestHeaders {
    /// The value of header `name` (lower-case); several values are joined by `,` as Envoy does.
    fn header(&self, name: &str) -> Option<std::borrow::Cow<'_, str>>;

    /// The values of the verified JWT's claim at `path` (each string of a list claim), for
    /// a gateway's claim routing; none without a verified token.
    fn claim(&self, _path: &[&str]) -> Vec<String> {
        Vec::new()
    }
}

/// Whether header condition `h` holds: a header's (joined) value, or for an
/// `@request.auth.claims` key one of the claim's values, as Envoy's metadata list match.
fn header_holds<H: RequestHeaders + ?Sized>(h: &NamedMatcher, headers: &H) -> bool {
    match weft_api::networking::virtual_service::routing_claim(&h.name) {
        Some(path) => headers
            .claim(&path)
            .iter()
            .any(|v| h.matcher.matches(v, false)),
        None => headers
            .header(&h.name)
            .is_some_and(|v| h.matcher.matches(&v, false)),
    }
}

/// Joins several values of one header with `,`, as Envoy matches them; one value is borrowed.
pub fn join_values<'a>(
    mut values: impl Iterator<Item = &'a str>,
) -> Option<std::borrow::Cow<'a, str>> {
    let first = values.next()?;
    let Some(second) = values.next() else {
        return Some(std::borrow::Cow::Borrowed(first));
    };
    let mut joined = format!("{first},{second}");
    for v in values {
        joined.push(',');
        joined.push_str(v);
    }
    Some(std::borrow::Cow::Owned(joined))
}

impl RequestHeaders for [(&str, &str)] {
    fn header(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        join_values(
            self.iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v),
        )
    }
}

/// The parts of a request the routing decision reads.
pub struct Request<'a, H: RequestHeaders + ?Sized> {
    /// `:authority` or `Host`.
    pub authority: &'a str,
    /// Path including the query string.
    pub path: &'a str,
    /// Method.
    pub method: &'a str,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// Headers.
    pub headers: &'a H,
}

impl<H: RequestHeaders + ?Sized> Request<'_, H> {
    /// The path without the query string.
    pub fn path_only(&self) -> &str {
        self.path.split_once('?').map_or(self.path, |(p, _)| p)
    }

    /// The first value of query parameter `name` (not percent-decoded, as Envoy compares raw values).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        let (_, query) = self.path.split_once('?')?;
        query
            .split('&')
            .find_map(|pair| match pair.split_once('=') {
                Some((k, v)) if k == name => Some(v),
                None if pair == name => Some(""),
                _ => None,
            })
    }
}

/// One compiled `match` entry: every condition must hold.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct RequestMatch {
    /// Match name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Path condition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<StringMatcher>,
    /// Exact/prefix path comparison ignores ASCII case.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ignore_uri_case: bool,
    /// Scheme condition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<StringMatcher>,
    /// Method condition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatcher>,
    /// Authority condition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority: Option<StringMatcher>,
    /// Headers that must match.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<NamedMatcher>,
    /// Headers that must not match.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub without_headers: Vec<NamedMatcher>,
    /// Query parameters that must match.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<NamedMatcher>,
}

impl RequestMatch {
    /// True when every condition holds for `req`.
    pub fn matches<H: RequestHeaders + ?Sized>(&self, req: &Request<'_, H>) -> bool {
        let opt =
            |m: &Option<StringMatcher>, v: &str| m.as_ref().is_none_or(|m| m.matches(v, false));
        self.uri
            .as_ref()
            .is_none_or(|m| m.matches(req.path_only(), self.ignore_uri_case))
            && opt(&self.method, req.method)
            && opt(&self.scheme, req.scheme)
            && opt(&self.authority, req.authority)
            && self.headers.iter().all(|h| header_holds(h, req.headers))
            && self
                .without_headers
                .iter()
                .all(|h| !header_holds(h, req.headers))
            && self.query_params.iter().all(|q| {
                req.query_param(&q.name)
                    .is_some_and(|v| q.matcher.matches(v, false))
            })
    }

    /// True when the entry matches every request.
    pub fn is_catch_all(&self) -> bool {
        self.uri.as_ref().is_none_or(StringMatcher::is_root_prefix)
            && self.scheme.is_none()
            && self.method.is_none()
            && self.authority.is_none()
            && self.headers.is_empty()
            && self.without_headers.is_empty()
            && self.query_params.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sm(exact: Option<&str>, prefix: Option<&str>, regex: Option<&str>) -> StringMatch {
        StringMatch {
            exact: exact.map(Into::into),
            prefix: prefix.map(Into::into),
            regex: regex.map(Into::into),
        }
    }

    #[test]
    fn string_matchers() {
        let re = StringMatcher::compile(&sm(None, None, Some(r"\d+")), false).expect("compiles");
        assert!(re.matches("123", false) && !re.matches("a123", false));
        let prefix = StringMatcher::compile(&sm(None, Some("/Api"), None), true).expect("compiles");
        assert!(
            prefix.matches("/api/v1", true)
                && prefix.matches("/API", true)
                && !prefix.matches("/ap", true)
        );
        assert!(
            StringMatcher::compile(&sm(None, None, Some("*")), false).expect("compiles")
                == StringMatcher::Present
        );
        let plain_prefix =
            StringMatcher::compile(&sm(None, Some("/foo"), None), false).expect("compiles");
        assert!(
            plain_prefix.matches("/foobar", false),
            "VirtualService prefixes are plain string prefixes"
        );
    }

    #[test]
    fn query_params_and_joined_headers() {
        let headers: &[(&str, &str)] = &[("X-A", "1"), ("x-a", "2")];
        let req = Request {
            authority: "a",
            path: "/p?x=1&flag&y=2",
            method: "GET",
            scheme: "http",
            headers,
        };
        assert_eq!(req.query_param("y"), Some("2"));
        assert_eq!(req.query_param("flag"), Some(""));
        assert_eq!(req.query_param("z"), None);
        assert_eq!(req.headers.header("x-a").as_deref(), Some("1,2"));
        assert_eq!(req.path_only(), "/p");
    }
}
