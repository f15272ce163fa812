//! Access logs: one line per request and per TCP connection, in Istio's text format
//! (Envoy's default plus Istio's fields, and the trace id) or as JSON, to stdout or a
//! file. Lines are formatted on the request's task and written by one writer thread;
//! when it falls behind, lines are dropped and counted rather than slowing requests.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, SystemTime};

use serde_json::json;

use super::Details;
use super::trace_context::trace_hex;
use crate::flags::ResponseFlags;

/// Lines waiting for the writer, at most.
const QUEUE: usize = 8192;

/// Text (Istio's default) or JSON (Istio's JSON keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `[start] "METHOD PATH PROTOCOL" status flags ...`.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Standard output.
    Stdout,
    /// A file, appended to.
    File(PathBuf),
}

/// The access log of one proxy.
#[derive(Debug)]
pub struct AccessLog {
    format: Format,
    lines: SyncSender<String>,
    /// Lines dropped because the writer fell behind.
    pub dropped: AtomicU64,
}

/// One TCP connection, as its log line needs it.
#[derive(Debug)]
pub struct Connection<'a> {
    /// When it was accepted.
    pub start: SystemTime,
    /// How long it lasted.
    pub duration: Duration,
    /// Bytes from the client.
    pub received: u64,
    /// Bytes to the client.
    pub sent: u64,
    /// The endpoint.
    pub upstream: &'a str,
    /// The cluster.
    pub cluster: &'a str,
    /// The client.
    pub peer: &'a str,
    /// The address the client reached.
    pub local: &'a str,
    /// Flags (`UF` when the upstream could not be reached).
    pub flags: ResponseFlags,
}

impl AccessLog {
    /// Opens `target` and starts the writer thread.
    pub fn start(target: &Target, format: Format) -> std::io::Result<AccessLog> {
        let out: Box<dyn Write + Send> = match target {
            Target::Stdout => Box::new(std::io::stdout()),
            Target::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        let (lines, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(rx, out))?;
        Ok(AccessLog {
            format,
            lines,
            dropped: AtomicU64::new(0),
        })
    }

    fn send(&self, line: String) {
        match self.lines.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Logs one request.
    pub fn request(
        &self,
        d: &Details,
        status: u16,
        flags: ResponseFlags,
        received: u64,
        sent: u64,
        duration: Duration,
    ) {
        let dash = |s: &str| {
            if s.is_empty() {
                "-".to_string()
            } else {
                s.to_string()
            }
        };
        let trace = d
            .trace_id
            .as_ref()
            .map_or_else(|| "-".to_string(), trace_hex);
        let upstream = d.upstream.clone().unwrap_or_else(|| "-".into());
        let cluster = d.cluster.as_deref().unwrap_or("-").to_string();
        let route = d.route.clone().unwrap_or_else(|| "-".into());
        let ms = duration.as_millis();
        let line = match self.format {
            Format::Text => format!(
                "[{}] \"{} {} {}\" {status} {flags} {received} {sent} {ms} \"{}\" \"{}\" \"{}\" \"{}\" \"{upstream}\" {cluster} {} {} {route} {trace}",
                rfc3339(d.start),
                d.request.method,
                dash(&d.request.path),
                d.request.protocol,
                dash(&d.forwarded_for),
                dash(&d.request.user_agent),
                dash(&d.request_id),
                dash(&d.request.authority),
                dash(&d.request.local),
                dash(&d.request.peer),
            ),
            Format::Json => json!({
                "start_time": rfc3339(d.start),
                "method": d.request.method,
                "path": d.request.path,
                "protocol": d.request.protocol,
                "response_code": status,
                "response_flags": flags.to_string(),
                "bytes_received": received,
                "bytes_sent": sent,
                "duration": ms as u64,
                "x_forwarded_for": d.forwarded_for,
                "user_agent": d.request.user_agent,
                "request_id": d.request_id,
                "authority": d.request.authority,
                "upstream_host": upstream,
                "upstream_cluster": cluster,
                "downstream_local_address": d.request.local,
                "downstream_remote_address": d.request.peer,
                "route_name": route,
                "trace_id": trace,
            })
            .to_string(),
        };
        self.send(line);
    }

    /// Logs one TCP connection.
    pub fn connection(&self, c: &Connection<'_>) {
        let ms = c.duration.as_millis();
        let line = match self.format {
            Format::Text => format!(
                "[{}] \"- - -\" 0 {} {} {} {ms} \"-\" \"-\" \"-\" \"-\" \"{}\" {} {} {} - -",
                rfc3339(c.start),
                c.flags,
                c.received,
                c.sent,
                c.upstream,
                c.cluster,
                c.local,
                c.peer,
            ),
            Format::Json => json!({
                "start_time": rfc3339(c.start),
                "protocol": "tcp",
                "response_flags": c.flags.to_string(),
                "bytes_received": c.received,
                "bytes_sent": c.sent,
                "duration": ms as u64,
                "upstream_host": c.upstream,
                "upstream_cluster": c.cluster,
                "downstream_local_address": c.local,
                "downstream_remote_address": c.peer,
            })
            .to_string(),
        };
        self.send(line);
    }
}

fn write_lines(rx: Receiver<String>, out: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::new(out);
    while let Ok(line) = rx.recv() {
        let _ = writeln!(out, "{line}");
        // Flush whenever the queue is empty, so a quiet proxy's lines are not held back.
        while let Ok(more) = rx.try_recv() {
            let _ = writeln!(out, "{more}");
        }
        let _ = out.flush();
    }
}

use weft_api::timestamp::rfc3339_millis as rfc3339;
