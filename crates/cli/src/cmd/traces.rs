//! `weft traces`: search traces the way the Jaeger UI does (service, operation, tags,
//! lookback, min/max duration, limit) and print them as a table; `weft traces show ID`
//! prints one trace's spans as a waterfall. Reads any Jaeger-compatible query API: the
//! control plane's embedded trace store by default.

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::{Context, bail};
use http::Method;
use serde_json::Value;

use crate::client::call;

/// Arguments of `weft traces`.
#[derive(clap::Args)]
pub struct Args {
    /// `show ID`: one trace as a waterfall.
    #[command(subcommand)]
    show: Option<Show>,
    /// The Jaeger query API (the control plane's trace store by default).
    #[arg(long, default_value = "127.0.0.1:16686", global = true)]
    query: String,
    /// Service (`bff-service` finds Istio's `bff-service.default` too).
    #[arg(long)]
    service: Option<String>,
    /// Operation (span name, e.g. `recommendation-service.default.svc.cluster.local:8080/*`).
    #[arg(long)]
    operation: Option<String>,
    /// Tags every matching span has, `key=value` separated by spaces
    /// (`http.status_code=500 error=true`).
    #[arg(long)]
    tags: Option<String>,
    /// How far back to look (`1h`, `30m`, `2d`).
    #[arg(long, default_value = "1h")]
    lookback: String,
    /// Only traces with a span at least this long (`100ms`, `1.5s`).
    #[arg(long)]
    min_duration: Option<String>,
    /// Only traces with a span at most this long.
    #[arg(long)]
    max_duration: Option<String>,
    /// Most traces shown.
    #[arg(long, default_value_t = 20)]
    limit: usize,
}

#[derive(clap::Subcommand)]
enum Show {
    /// Print one trace's spans as a waterfall.
    Show {
        /// The trace id (hex).
        id: String,
    },
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn get(query: &str, path: &str) -> anyhow::Result<Value> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer = runtime
        .block_on(call(query, Method::GET, path, None))
        .with_context(|| {
            format!("reaching the trace query API at {query} (`weft control --query`, or --query)")
        })?;
    if !answer.status.is_success() {
        let message = answer.body["errors"][0]["msg"]
            .as_str()
            .map_or_else(|| answer.body.to_string(), str::to_string);
        bail!("{message}");
    }
    Ok(answer.body)
}

/// Runs `weft traces`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if let Some(Show::Show { id }) = &args.show {
        let body = get(&args.query, &format!("/api/traces/{}", encode(id)))?;
        let trace = body["data"][0].clone();
        print!("{}", waterfall(&trace));
        return Ok(ExitCode::SUCCESS);
    }
    let mut params = vec![
        ("lookback", args.lookback.clone()),
        ("limit", args.limit.to_string()),
    ];
    // Jaeger's query service takes tags as a JSON object.
    let tags = args.tags.as_deref().map(tags_json).transpose()?;
    let optional = [
        ("service", &args.service),
        ("operation", &args.operation),
        ("tags", &tags),
        ("minDuration", &args.min_duration),
        ("maxDuration", &args.max_duration),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            params.push((k, v.clone()));
        }
    }
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    let body = get(&args.query, &format!("/api/traces?{}", query.join("&")))?;
    let traces = body["data"].as_array().cloned().unwrap_or_default();
    if traces.is_empty() {
        println!("No traces found.");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<34} {:<10} {:>10} {:>6} {:>7}  ROOT",
        "TRACE ID", "STARTED", "DURATION", "SPANS", "ERRORS"
    );
    for t in &traces {
        let spans = t["spans"].as_array().cloned().unwrap_or_default();
        let start = spans
            .iter()
            .filter_map(|s| s["startTime"].as_u64())
            .min()
            .unwrap_or(0);
        let end = spans
            .iter()
            .filter_map(|s| Some(s["startTime"].as_u64()? + s["duration"].as_u64()?))
            .max()
            .unwrap_or(start);
        let errors = spans.iter().filter(|s| is_error(s)).count();
        let root = spans
            .iter()
            .find(|s| s["references"].as_array().is_none_or(|r| r.is_empty()))
            .or(spans.first());
        let root_name = root.map_or_else(String::new, |s| {
            format!(
                "{}: {}",
                service_of(t, s),
                s["operationName"].as_str().unwrap_or_default()
            )
        });
        println!(
            "{:<34} {:<10} {:>10} {:>6} {:>7}  {root_name}",
            t["traceID"].as_str().unwrap_or_default(),
            clock(start),
            micros(end - start),
            spans.len(),
            errors,
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `k=v k2=v2` as Jaeger's JSON form `{"k":"v","k2":"v2"}`.
fn tags_json(text: &str) -> anyhow::Result<String> {
    let mut map = serde_json::Map::new();
    for pair in text.split_whitespace() {
        let Some((k, v)) = pair.split_once('=') else {
            bail!("--tags: {pair:?} is not key=value (e.g. 'http.status_code=500 error=true')");
        };
        map.insert(
            k.to_string(),
            Value::String(v.trim_matches('"').to_string()),
        );
    }
    Ok(Value::Object(map).to_string())
}

fn is_error(span: &Value) -> bool {
    span["tags"].as_array().is_some_and(|tags| {
        tags.iter()
            .any(|t| t["key"] == "error" && (t["value"] == true || t["value"] == "true"))
    })
}

fn service_of(trace: &Value, span: &Value) -> String {
    let pid = span["processID"].as_str().unwrap_or_default();
    trace["processes"][pid]["serviceName"]
        .as_str()
        .unwrap_or("?")
        .to_string()
}

/// `HH:MM:SS` (UTC) of a time in µs since the epoch.
fn clock(us: u64) -> String {
    let secs = us / 1_000_000;
    format!(
        "{:02}:{:02}:{:02}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

fn micros(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2}s", us as f64 / 1e6)
    } else if us >= 1000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else {
        format!("{us}µs")
    }
}

/// One trace: each span under its parent, with a bar showing when it ran.
pub fn waterfall(trace: &Value) -> String {
    let spans = trace["spans"].as_array().cloned().unwrap_or_default();
    if spans.is_empty() {
        return "The trace has no spans.\n".into();
    }
    let start = spans
        .iter()
        .filter_map(|s| s["startTime"].as_u64())
        .min()
        .unwrap_or(0);
    let end = spans
        .iter()
        .filter_map(|s| Some(s["startTime"].as_u64()? + s["duration"].as_u64()?))
        .max()
        .unwrap_or(start)
        .max(start + 1);
    let ids: std::collections::HashSet<&str> =
        spans.iter().filter_map(|s| s["spanID"].as_str()).collect();
    let mut children: HashMap<String, Vec<&Value>> = HashMap::new();
    let mut roots = Vec::new();
    for s in &spans {
        let parent = s["references"][0]["spanID"]
            .as_str()
            .filter(|p| ids.contains(p));
        match parent {
            Some(p) => children.entry(p.to_string()).or_default().push(s),
            None => roots.push(s),
        }
    }
    let mut out = format!(
        "trace {}  {}  {} spans\n",
        trace["traceID"].as_str().unwrap_or_default(),
        micros(end - start),
        spans.len()
    );
    const WIDTH: u64 = 40;
    let mut stack: Vec<(&Value, usize)> = roots.into_iter().rev().map(|s| (s, 0)).collect();
    // Malformed input (a span its own ancestor) must not loop: each span is shown once.
    let mut shown = std::collections::HashSet::new();
    while let Some((s, depth)) = stack.pop() {
        if !shown.insert(s["spanID"].as_str().unwrap_or_default().to_string()) {
            continue;
        }
        let s_start = s["startTime"].as_u64().unwrap_or(start);
        let duration = s["duration"].as_u64().unwrap_or(0);
        let from = (s_start - start) * WIDTH / (end - start);
        let len = (duration * WIDTH / (end - start)).max(1);
        let bar = format!(
            "{}{}",
            " ".repeat(from as usize),
            "█".repeat(len.min(WIDTH - from.min(WIDTH - 1)) as usize)
        );
        let status = s["tags"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["key"] == "http.status_code"))
            .and_then(|t| t["value"].as_str().map(str::to_string))
            .unwrap_or_default();
        let kind = s["tags"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["key"] == "span.kind"))
            .and_then(|t| t["value"].as_str().map(str::to_string))
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<w$} {:>9}  {}{} {} [{kind}] {status}{}\n",
            bar,
            micros(duration),
            "  ".repeat(depth),
            service_of(trace, s),
            s["operationName"].as_str().unwrap_or_default(),
            if is_error(s) { " error" } else { "" },
            w = WIDTH as usize,
        ));
        if let Some(kids) = s["spanID"].as_str().and_then(|id| children.get(id)) {
            let mut kids = kids.clone();
            kids.sort_by_key(|k| std::cmp::Reverse(k["startTime"].as_u64().unwrap_or(0)));
            stack.extend(kids.into_iter().map(|k| (k, depth + 1)));
        }
    }
    out
}
