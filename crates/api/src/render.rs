//! Resources as block YAML (for `weft get -o yaml` and the dashboard), in a form the
//! loader reads back to the same resource.

use serde_json::Value;

/// Block-style YAML of `value`, keys in their stored order.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    emit(value, 0, &mut out);
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => {
            let plain = !s.is_empty()
                && !s.starts_with([
                    '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'',
                    '"', '%', '@', '`', ' ',
                ])
                && !s.contains(": ")
                && !s.contains(" #")
                && !s.ends_with([' ', ':'])
                && s.parse::<f64>().is_err()
                && !matches!(
                    s.as_str(),
                    "true" | "false" | "null" | "~" | "yes" | "no" | "on" | "off"
                );
            if plain {
                s.clone()
            } else {
                serde_json::to_string(s).unwrap_or_default()
            }
        }
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

fn emit(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if map.is_empty() => out.push_str(&format!("{pad}{{}}\n")),
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::Object(m) if !m.is_empty() => {
                        out.push_str(&format!("{pad}{}:\n", scalar(&Value::String(k.clone()))));
                        emit(v, indent + 2, out);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        out.push_str(&format!("{pad}{}:\n", scalar(&Value::String(k.clone()))));
                        emit(v, indent, out);
                    }
                    Value::Object(_) => out.push_str(&format!(
                        "{pad}{}: {{}}\n",
                        scalar(&Value::String(k.clone()))
                    )),
                    Value::Array(_) => {
                        out.push_str(&format!("{pad}{}: []\n", scalar(&Value::String(k.clone()))))
                    }
                    _ => out.push_str(&format!(
                        "{pad}{}: {}\n",
                        scalar(&Value::String(k.clone())),
                        scalar(v)
                    )),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Object(m) if !m.is_empty() => {
                        let mut nested = String::new();
                        emit(item, indent + 2, &mut nested);
                        // The first line goes after "- ".
                        let body = nested.trim_start_matches(' ');
                        out.push_str(&format!("{pad}- {body}"));
                    }
                    _ => out.push_str(&format!("{pad}- {}\n", scalar(item))),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_round_trips_through_the_loader() {
        let v = serde_json::json!({
            "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": "r", "labels": {"app": "x"}},
            "spec": {"host": "r", "subsets": [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "2"}}]}
        });
        let text = to_yaml(&v);
        let loaded = crate::load_str("y", &text);
        assert!(
            loaded.diagnostics.is_empty(),
            "{text}\n{:?}",
            loaded.diagnostics
        );
        assert!(
            text.contains("version: \"2\""),
            "numbers in strings are quoted: {text}"
        );
    }
}
