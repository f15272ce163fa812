//! Reading the Prometheus text exposition format the proxies serve on
//! `/stats/prometheus`: one sample a line, `name{label="value",...} number`.

use std::borrow::Cow;

/// One sample line.
#[derive(Debug, PartialEq)]
pub struct Sample<'t> {
    /// The metric name (`istio_requests_total`, `..._bucket`).
    pub name: &'t str,
    /// Its labels, in their written order.
    pub labels: Vec<(&'t str, Cow<'t, str>)>,
    /// The labels as written between the braces, less a last `le` label: the same for
    /// every line of one series (its buckets, sum and count).
    pub series: &'t str,
    /// Its value.
    pub value: f64,
}

impl Sample<'_> {
    /// The value of label `name`, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_ref())
    }
}

/// Every sample of `text`; comments, blank lines and lines that do not parse are skipped
/// (a proxy's exposition is trusted to be well formed, but a bad line never stops the rest).
pub fn samples(text: &str) -> impl Iterator<Item = Sample<'_>> {
    text.lines().filter_map(sample)
}

fn sample(line: &str) -> Option<Sample<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, labels, series, rest) = match line.find(['{', ' ']) {
        Some(i) if line.as_bytes()[i] == b'{' => {
            let (labels, used) = labels(&line[i + 1..])?;
            let written = &line[i + 1..i + used];
            let series = match written.rfind("le=\"") {
                Some(at) if labels.last().is_some_and(|(k, _)| *k == "le") => {
                    written[..at].trim_end_matches(',')
                }
                _ => written,
            };
            (&line[..i], labels, series, &line[i + 1 + used..])
        }
        Some(i) => (&line[..i], Vec::new(), "", &line[i..]),
        None => return None,
    };
    // A timestamp may follow the value.
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        series,
        value,
    })
}

/// Label names and values, in their written order.
type Labels<'t> = Vec<(&'t str, Cow<'t, str>)>;

/// The labels after `{`, and how many bytes they took (through the closing `}`).
fn labels(text: &str) -> Option<(Labels<'_>, usize)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < bytes.len() && (bytes[i] == b',' || bytes[i] == b' ') {
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        if bytes[i] == b'}' {
            return Some((out, i + 1));
        }
        let eq = i + text[i..].find('=')?;
        let name = text[i..eq].trim();
        if bytes.get(eq + 1) != Some(&b'"') {
            return None;
        }
        let start = eq + 2;
        let mut j = start;
        let mut escaped = false;
        while j < bytes.len() && bytes[j] != b'"' {
            if bytes[j] == b'\\' {
                escaped = true;
                j += 1;
            }
            j += 1;
        }
        if j >= bytes.len() {
            return None;
        }
        let raw = &text[start..j];
        let value = if escaped {
            Cow::Owned(unescape(raw))
        } else {
            Cow::Borrowed(raw)
        };
        out.push((name, value));
        i = j + 1;
    }
}

fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_with_labels_escapes_and_timestamps() {
        let text = "# HELP x y\n# TYPE x counter\n\
            istio_requests_total{reporter=\"source\",path=\"a\\\"b\\\\c\"} 12 1700000000\n\
            up 1\n\
            h_bucket{le=\"+Inf\"} 3\n\
            broken{a=\"x} 1\n";
        let all: Vec<Sample<'_>> = samples(text).collect();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].name, "istio_requests_total");
        assert_eq!(all[0].label("reporter"), Some("source"));
        assert_eq!(all[0].label("path"), Some("a\"b\\c"));
        assert_eq!(all[0].value, 12.0);
        assert_eq!((all[1].name, all[1].value), ("up", 1.0));
        assert_eq!(all[2].label("le"), Some("+Inf"));
        assert_eq!(all[2].series, "");
        assert_eq!(all[0].series, "reporter=\"source\",path=\"a\\\"b\\\\c\"");
        let bucket =
            samples("h_bucket{a=\"1\",le=\"5\"} 2\nh_sum{a=\"1\"} 3\n").collect::<Vec<_>>();
        assert_eq!(bucket[0].series, bucket[1].series);
    }

    #[test]
    fn any_line_is_read_without_panic() {
        for line in [
            "{",
            "x{",
            "x{a",
            "x{a=",
            "x{a=\"",
            "x{a=\"\\",
            "x{}",
            "x{} ",
            "x{} y",
            "x 1e309",
            "=\"\"} 1",
            "x{a=\"b\"",
            "x{,,,}",
            "\u{1F600}{\u{1F600}=\"\u{1F600}\"} 1",
        ] {
            let _ = samples(line).count();
        }
    }
}
