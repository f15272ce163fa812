//! Istio's duration syntax (Go's `time.ParseDuration`): `10s`, `0.5s`, `100ms`, `1m30s`, `1h`.

use std::fmt;
use std::time::Duration as StdDuration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative duration written the way Istio users write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub StdDuration);

impl Duration {
    /// The duration as a standard library value.
    pub fn get(self) -> StdDuration {
        self.0
    }

    /// Builds a duration of `ms` milliseconds.
    pub fn from_millis(ms: u64) -> Self {
        Duration(StdDuration::from_millis(ms))
    }
}

/// Parses Go/Istio duration text. Units: `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`;
/// components may be fractional and are summed (`1m30s`, `1.5h`).
pub fn parse_duration(text: &str) -> Result<StdDuration, String> {
    let bad = || format!("invalid duration {text:?} (examples: 10s, 0.5s, 100ms, 1m30s)");
    if text.is_empty() {
        return Err(bad());
    }
    if text == "0" {
        return Ok(StdDuration::ZERO);
    }
    if text.starts_with('-') {
        return Err(format!("duration {text:?} must not be negative"));
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(bad());
        }
        let value: f64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, after) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => {
                return Err(format!(
                    "duration {text:?} is missing a unit (ns, us, ms, s, m, h)"
                ));
            }
            _ => {
                return Err(format!(
                    "duration {text:?} has an unknown unit {unit:?} (ns, us, ms, s, m, h)"
                ));
            }
        };
        total_nanos += value * scale;
        rest = after;
    }
    if total_nanos > u64::MAX as f64 {
        return Err(format!("duration {text:?} is too long"));
    }
    Ok(StdDuration::from_nanos(total_nanos.round() as u64))
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        if nanos == 0 {
            return f.write_str("0s");
        }
        if nanos % 1_000_000_000 == 0 {
            let secs = self.0.as_secs();
            if secs % 3600 == 0 {
                return write!(f, "{}h", secs / 3600);
            }
            if secs % 60 == 0 {
                return write!(f, "{}m", secs / 60);
            }
            return write!(f, "{secs}s");
        }
        if nanos % 1_000_000 == 0 {
            return write!(f, "{}ms", nanos / 1_000_000);
        }
        if nanos % 1_000 == 0 {
            return write!(f, "{}us", nanos / 1_000);
        }
        write!(f, "{nanos}ns")
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text)
            .map(Duration)
            .map_err(serde::de::Error::custom)
    }
}

/// A duration is written as text (`"1.5s"`, `"100ms"`, `"1m30s"`), never as a number.
impl schemars::JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration: a decimal number with a unit (ns, us, ms, s, m, h), possibly several, e.g. \"1.5s\", \"100ms\", \"1m30s\"; \"0\" alone is zero.",
            "pattern": "^(0|\\+?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)(([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))*)$",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_forms_parse() {
        let ms = |t: &str| parse_duration(t).map(|d| d.as_micros() as f64 / 1000.0);
        assert_eq!(ms("10s"), Ok(10_000.0));
        assert_eq!(ms("0.5s"), Ok(500.0));
        assert_eq!(ms("100ms"), Ok(100.0));
        assert_eq!(ms("1m30s"), Ok(90_000.0));
        assert_eq!(ms("1h"), Ok(3_600_000.0));
        assert_eq!(ms("250us"), Ok(0.25));
        assert_eq!(ms("0"), Ok(0.0));
    }

    #[test]
    fn bad_forms_are_refused() {
        for t in ["", "10", "s", "-1s", "1x", "1..5s", "ten seconds", "1s 2s"] {
            assert!(parse_duration(t).is_err(), "{t} should fail");
        }
    }

    #[test]
    fn display_round_trips() {
        for t in ["10s", "100ms", "90s", "2m", "1h", "250us", "0s"] {
            let d = Duration(parse_duration(t).expect("parses"));
            assert_eq!(parse_duration(&d.to_string()), Ok(d.0));
        }
    }
}
