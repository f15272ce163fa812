//! URL query strings, as every endpoint of the control plane reads them (the resource
//! API, the Jaeger query API, the dashboard): `a=b&c=d`, percent-decoded, `+` a space.

/// A URL query's parameters, percent-decoded, in order.
pub fn params(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Percent-decoding of one query component (`+` is a space; a bad escape stays as written).
pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_decode_and_bad_escapes_stay() {
        assert_eq!(decode("a%3Db+c"), "a=b c");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%e2%9c%94"), "%zz\u{2714}");
        assert_eq!(
            params(Some("a=1&b&c=%2F")),
            [
                ("a".into(), "1".into()),
                ("b".into(), String::new()),
                ("c".into(), "/".into())
            ]
        );
    }
}
