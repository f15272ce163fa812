//! What a plain (unquoted) YAML scalar means, as kubectl's YAML reader resolves it
//! (go-yaml v2 behind sigs.k8s.io/yaml, YAML 1.1): `yes`/`on`/`y` are booleans, `~` is
//! null, `0x1F`, `0o17`, `017` (octal), `0b101` and `1_000` are integers, `1e3` and `.5`
//! are floats, `.inf`/`.nan` are the special floats; everything else, `1:30`
//! (no sexagesimal), `001:db8::`, `nan` and `inf` included, is a string.

/// A number as go-yaml reads a plain scalar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Number {
    /// Fits an i64.
    Int(i64),
    /// Fits only a u64.
    Uint(u64),
    /// A float (possibly infinite or NaN).
    Float(f64),
}

impl Number {
    /// The integer the number stands for once kubectl has turned it into JSON: an
    /// integral float (`1e3`) is written `1000`, which an integer field accepts.
    pub(crate) fn integer(self) -> Option<i128> {
        match self {
            Number::Int(i) => Some(i128::from(i)),
            Number::Uint(u) => Some(i128::from(u)),
            // Below 2^53 a float holds integers exactly, and Go prints them without exponent.
            Number::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.007e15 => {
                Some(f as i128)
            }
            Number::Float(_) => None,
        }
    }

    /// The value as a float.
    pub(crate) fn float(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Uint(u) => u as f64,
            Number::Float(f) => f,
        }
    }
}

/// YAML 1.1 null, as go-yaml resolves it.
pub(crate) fn is_null_text(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// True when `text` is one of go-yaml's boolean forms.
pub(crate) fn is_bool_text(text: &str) -> bool {
    bool_value(text).is_some()
}

/// The boolean a plain scalar means (YAML 1.1's forms, as go-yaml resolves them).
pub(crate) fn bool_value(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "y" | "Y" | "on" | "On" | "ON" => {
            Some(true)
        }
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "n" | "N" | "off" | "Off" | "OFF" => {
            Some(false)
        }
        _ => None,
    }
}

/// The number a plain scalar means, or `None` when go-yaml reads it as a string.
pub(crate) fn number(text: &str) -> Option<Number> {
    match text {
        ".nan" | ".NaN" | ".NAN" => return Some(Number::Float(f64::NAN)),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Some(Number::Float(f64::INFINITY));
        }
        "-.inf" | "-.Inf" | "-.INF" => return Some(Number::Float(f64::NEG_INFINITY)),
        _ => {}
    }
    let first = text.chars().next()?;
    if first == '.' {
        return float_text(text).then(|| text.parse().ok().map(Number::Float))?;
    }
    if !(first.is_ascii_digit() || first == '+' || first == '-') {
        return None;
    }
    let plain = text.replace('_', "");
    if let Some(i) = go_int(&plain) {
        return Some(i);
    }
    if float_text(&plain) {
        return plain.parse().ok().map(Number::Float);
    }
    None
}

/// Go's `strconv.ParseInt(s, 0, 64)` then `ParseUint`: a sign, then `0x`, `0o`, `0b`, a
/// leading `0` (octal) or decimal digits.
fn go_int(s: &str) -> Option<Number> {
    let (negative, unsigned) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = unsigned.to_ascii_lowercase();
    let (digits, radix) = if let Some(d) = lower.strip_prefix("0x") {
        (d, 16)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (d, 8)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (d, 2)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (&lower[1..], 8)
    } else {
        (lower.as_str(), 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    if negative {
        let value = i64::try_from(magnitude)
            .map(|m| -m)
            .ok()
            .or((magnitude == 1 << 63).then_some(i64::MIN))?;
        return Some(Number::Int(value));
    }
    Some(match i64::try_from(magnitude) {
        Ok(i) => Number::Int(i),
        Err(_) => Number::Uint(magnitude),
    })
}

/// go-yaml's float form: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn float_text(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => digits(frac),
        Some((int, frac)) => digits(int) && (frac.is_empty() || digits(frac)),
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_read_as_go_yaml_reads_them() {
        assert_eq!(number("8080"), Some(Number::Int(8080)));
        assert_eq!(number("+5"), Some(Number::Int(5)));
        assert_eq!(number("-12"), Some(Number::Int(-12)));
        assert_eq!(number("1_000"), Some(Number::Int(1000)));
        assert_eq!(number("0x1F"), Some(Number::Int(31)));
        assert_eq!(number("0o17"), Some(Number::Int(15)));
        assert_eq!(number("017"), Some(Number::Int(15)), "a leading 0 is octal");
        assert_eq!(number("0b101"), Some(Number::Int(5)));
        assert_eq!(number("0"), Some(Number::Int(0)));
        assert_eq!(number("18446744073709551615"), Some(Number::Uint(u64::MAX)));
        assert_eq!(number("-9223372036854775808"), Some(Number::Int(i64::MIN)));
    }

    #[test]
    fn floats_read_as_go_yaml_reads_them() {
        assert_eq!(number("1.5"), Some(Number::Float(1.5)));
        assert_eq!(number(".5"), Some(Number::Float(0.5)));
        assert_eq!(number("5."), Some(Number::Float(5.0)));
        assert_eq!(number("1e3"), Some(Number::Float(1000.0)));
        assert_eq!(number("-2.5E-1"), Some(Number::Float(-0.25)));
        assert_eq!(
            number("08080"),
            Some(Number::Float(8080.0)),
            "not octal: a float"
        );
        assert_eq!(number(".inf"), Some(Number::Float(f64::INFINITY)));
        assert!(number(".NaN").is_some_and(|n| n.float().is_nan()));
        assert_eq!(number("1e3").and_then(Number::integer), Some(1000));
        assert_eq!(number("1.5").and_then(Number::integer), None);
    }

    #[test]
    fn everything_else_is_a_string() {
        // No sexagesimal: `1:30` and IPv6 text stay strings.
        for text in [
            "001:db8::",
            "2001:db8::1",
            "1:30",
            "190:20:30",
            "nan",
            "inf",
            "infinity",
            "NaN",
            "0x",
            "1e",
            "1.2.3",
            "10.0.0.1",
            "v1",
            "--1",
            "_1",
            "+",
            "0xG",
        ] {
            assert_eq!(number(text), None, "{text}");
        }
    }

    #[test]
    fn booleans_and_nulls_are_yaml_1_1s() {
        for yes in [
            "yes", "Yes", "YES", "y", "Y", "on", "On", "ON", "true", "True", "TRUE",
        ] {
            assert_eq!(bool_value(yes), Some(true), "{yes}");
        }
        for no in [
            "no", "No", "NO", "n", "N", "off", "Off", "OFF", "false", "False", "FALSE",
        ] {
            assert_eq!(bool_value(no), Some(false), "{no}");
        }
        for not in ["yEs", "oN", "enabled", "1", "t"] {
            assert_eq!(bool_value(not), None, "{not}");
        }
        for null in ["", "~", "null", "Null", "NULL"] {
            assert!(is_null_text(null), "{null}");
        }
        assert!(!is_null_text("nil"));
    }
}
