//! Request paths: normalized once per request (the same path is decided on, routed and
//! sent upstream, so `//admin`, `/a/../admin` or `%2Fadmin` cannot slip past a rule), and
//! Istio's path patterns (`/exact`, `/prefix/*`, `*.suffix`, `*`, `{*}` and `{**}`
//! templates).

use serde::Serialize;

/// Istio's `meshConfig.pathNormalization`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum Normalization {
    /// Untouched.
    None,
    /// RFC 3986: dot segments removed, percent-encoded unreserved characters decoded,
    /// percent-encodings upper-cased.
    Base,
    /// `Base`, then repeated slashes merged.
    MergeSlashes,
    /// `%2F`/`%5C` decoded to `/` and `\` (backslashes to `/`), then `MergeSlashes`.
    /// weft's default: every bypass of the table in the tests is closed.
    #[default]
    DecodeAndMergeSlashes,
}

impl Normalization {
    /// Parses Istio's names (`NONE`, `BASE`, `MERGE_SLASHES`, `DECODE_AND_MERGE_SLASHES`).
    pub fn parse(text: &str) -> Option<Normalization> {
        match text {
            "NONE" => Some(Normalization::None),
            "BASE" => Some(Normalization::Base),
            "MERGE_SLASHES" => Some(Normalization::MergeSlashes),
            "DECODE_AND_MERGE_SLASHES" => Some(Normalization::DecodeAndMergeSlashes),
            _ => None,
        }
    }
}

/// Why a path is refused outright (`400`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadPath {
    /// A NUL byte, raw or `%00`.
    Nul,
    /// Not starting with `/`.
    NotAbsolute,
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Normalizes a request path (without query; a `#fragment` is dropped).
pub fn normalize(path: &str, how: Normalization) -> Result<String, BadPath> {
    let path = path.split('#').next().unwrap_or_default();
    let bytes = path.as_bytes();
    if bytes.contains(&0) {
        return Err(BadPath::Nul);
    }
    if how == Normalization::None {
        return Ok(path.to_string());
    }
    // Percent-decoding of what RFC 3986 says is equivalent, plus slashes when asked.
    let decode_slashes = how == Normalization::DecodeAndMergeSlashes;
    let mut decoded = Vec::with_capacity(bytes.len());
    // Where a `%` that starts no escape was kept as it is.
    let mut stray = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                let b = h * 16 + l;
                if b == 0 {
                    return Err(BadPath::Nul);
                }
                if unreserved(b) || (decode_slashes && (b == b'/' || b == b'\\')) {
                    decoded.push(if b == b'\\' { b'/' } else { b });
                } else {
                    decoded.push(b'%');
                    decoded.extend_from_slice(format!("{b:02X}").as_bytes());
                }
                i += 3;
                continue;
            }
        }
        if bytes[i] == b'%' {
            stray.push(decoded.len());
        }
        // A raw backslash is a separator to many servers: it is one here too.
        let b = bytes[i];
        decoded.push(if b == b'\\' { b'/' } else { b });
        i += 1;
    }
    // A kept `%` that decoding made the start of an escape (`%4%41` -> `%4A`) is written
    // `%25`: a second decoder (the app's) would otherwise see another path than the
    // policies saw. One that still starts no escape stays as it came, as Envoy keeps it.
    for at in stray.into_iter().rev() {
        let pairs = decoded
            .get(at + 1..at + 3)
            .is_some_and(|n| n.iter().all(|b| hex(*b).is_some()));
        if pairs {
            decoded.splice(at + 1..at + 1, *b"25");
        }
    }
    let text = String::from_utf8_lossy(&decoded).into_owned();
    if !text.starts_with('/') {
        return Err(BadPath::NotAbsolute);
    }
    // Dot segments (RFC 3986 5.2.4), keeping empty segments unless merging.
    let merge = matches!(
        how,
        Normalization::MergeSlashes | Normalization::DecodeAndMergeSlashes
    );
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = text[1..].split('/').collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => trailing_slash = i == last,
            ".." => {
                out.pop();
                trailing_slash = i == last;
            }
            "" if merge && i != last => {}
            s => {
                out.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut result = String::with_capacity(text.len());
    for s in &out {
        result.push('/');
        result.push_str(s);
    }
    if result.is_empty() || trailing_slash {
        result.push('/');
    }
    if merge {
        while result.contains("//") {
            result = result.replace("//", "/");
        }
    }
    Ok(result)
}

/// One of Istio's path patterns.
#[derive(Debug, Clone, Serialize)]
pub enum PathPattern {
    /// `*`, `/a*`, `*.js`, `/exact`.
    Simple(super::Pattern),
    /// A template: `{*}` matches one whole segment, `{**}` any remainder (zero or more
    /// characters, slashes included), literal text around them.
    Template(#[serde(with = "regex_text")] regex::Regex),
}

impl PartialEq for PathPattern {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (PathPattern::Simple(a), PathPattern::Simple(b)) => a == b,
            (PathPattern::Template(a), PathPattern::Template(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

mod regex_text {
    pub fn serialize<S: serde::Serializer>(r: &regex::Regex, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(r.as_str())
    }
}

/// The anchored regex of a template.
fn template(text: &str) -> String {
    let mut out = String::from("^");
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("{**}") {
            out.push_str(".*");
            rest = after;
        } else if let Some(after) = rest.strip_prefix("{*}") {
            out.push_str("[^/]+");
            rest = after;
        } else {
            let next = rest.find('{').filter(|i| *i > 0).unwrap_or(rest.len());
            let (literal, after) = rest.split_at(next.max(1).min(rest.len()));
            out.push_str(&regex::escape(literal));
            rest = after;
        }
    }
    out.push('$');
    out
}

impl PathPattern {
    /// Compiles a pattern.
    pub fn new(text: &str) -> PathPattern {
        if text.contains("{*}") || text.contains("{**}") {
            match regex::Regex::new(&template(text)) {
                Ok(r) => PathPattern::Template(r),
                // Escaped literals and two fixed classes always compile; never match if not.
                Err(_) => PathPattern::Simple(super::Pattern::Exact(String::from("\0"))),
            }
        } else {
            PathPattern::Simple(super::Pattern::new(text, false))
        }
    }

    /// True when `path` (normalized, no query) matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::Simple(p) => p.matches(path),
            PathPattern::Template(r) => r.is_match(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `path_normalization` fuzz target (fuzz/regressions/path_normalization).
    #[test]
    fn a_bare_percent_cannot_pair_with_a_decoded_escape() {
        for how in [
            Normalization::Base,
            Normalization::MergeSlashes,
            Normalization::DecodeAndMergeSlashes,
        ] {
            let once = normalize("/%7Eus+r/%4%412", how).expect("normalizes");
            assert_eq!(once, "/~us+r/%254A2", "{how:?}");
            assert_eq!(
                normalize(&once, how).as_deref(),
                Ok(once.as_str()),
                "{how:?}"
            );
            // A `%` that still starts no escape stays as it came, as Envoy keeps it.
            assert_eq!(normalize("/a%", how).as_deref(), Ok("/a%"), "{how:?}");
            assert_eq!(normalize("/a%zz", how).as_deref(), Ok("/a%zz"), "{how:?}");
        }
    }

    #[test]
    fn the_bypass_table_normalizes_to_the_protected_path() {
        use Normalization::*;
        for (raw, want) in [
            ("/admin", "/admin"),
            ("//admin", "/admin"),
            ("/a/../admin", "/admin"),
            ("/./admin", "/admin"),
            ("/%2Fadmin", "/admin"),
            ("/%2fadmin", "/admin"),
            ("/%61dmin", "/admin"),
            ("/%2e%2e/admin", "/admin"),
            ("/x/%2E%2E/admin", "/admin"),
            ("/admin#frag", "/admin"),
            ("/admin/", "/admin/"),
            ("/%5Cadmin", "/admin"),
            ("/admin/.", "/admin/"),
        ] {
            assert_eq!(
                normalize(raw, DecodeAndMergeSlashes).as_deref(),
                Ok(want),
                "{raw}"
            );
        }
        assert_eq!(
            normalize("/adm%00in", DecodeAndMergeSlashes),
            Err(BadPath::Nul)
        );
        assert_eq!(normalize("/a%2Fb", Base).as_deref(), Ok("/a%2Fb"));
        assert_eq!(normalize("/a//b", Base).as_deref(), Ok("/a//b"));
        assert_eq!(normalize("/a//b", MergeSlashes).as_deref(), Ok("/a/b"));
        assert_eq!(normalize("/a/%7e", Base).as_deref(), Ok("/a/~"));
        assert_eq!(normalize("/a b%zz", Base).as_deref(), Ok("/a b%zz"));
        assert_eq!(normalize("/x\\..\\admin", Base).as_deref(), Ok("/admin"));
        assert_eq!(normalize("/../..", Base).as_deref(), Ok("/"));
    }

    #[test]
    fn istio_path_patterns() {
        let m = |pattern: &str, path: &str| PathPattern::new(pattern).matches(path);
        assert!(m("/admin", "/admin") && !m("/admin", "/admin/x"));
        assert!(m("/admin/*", "/admin/x") && !m("/admin/*", "/other"));
        assert!(m("*.js", "/a/b.js") && m("*", "/anything"));
        assert!(m("/foo/{*}/bar", "/foo/x/bar") && !m("/foo/{*}/bar", "/foo/x/y/bar"));
        assert!(m("/foo/{**}", "/foo/x/y") && !m("/foo/{**}", "/foo"));
        assert!(m("/admin/{**}", "/admin/") && m("/admin/{**}", "/admin/x/"));
        assert!(m("/foo/{**}/", "/foo/a/b/") && !m("/foo/{**}/", "/foo/a"));
        assert!(m("/{**}.html", "/a/b.html") && m("/a/{*}.txt", "/a/x.txt"));
        assert!(!m("/foo/{*}", "/foo/") && !m("/foo/{*}", "/foo/a/b"));
    }
}
