//! tcp-rr: the load generator and the echo app of bench/mesh's TCP (opaque) row. Standard
//! library only: bench/mesh compiles it with `rustc -O` into its scratch directory.
//!
//!   tcp-rr echo ADDR
//!       Echo every byte back, one thread per connection.
//!   tcp-rr load ADDR --connections N --duration SECS [--rate RPS] [--size BYTES]
//!               [--connect AUTHORITY] [--warmup SECS]
//!       N connections, each doing request/response round trips: write SIZE bytes, read the
//!       SIZE bytes echoed back. Without --rate each connection sends its next message as
//!       soon as the previous answer is in (closed loop, saturation). With --rate the N
//!       connections share RPS messages per second, each on its own fixed schedule (open
//!       loop). --connect first sends `CONNECT AUTHORITY HTTP/1.1` on each connection and
//!       waits for a 2xx: how an app reaches a TCP service through an explicit-proxy
//!       listener (weft's outbound listener without iptables redirection). Every
//!       connection (with its tunnel) makes one round trip before the clock starts, so
//!       only round trips on established connections are measured, for every proxy alike.
//!
//! Prints one line for bench/mesh:
//!   BENCH requests=.. duration_us=.. rps=.. p50_us=.. p99_us=.. p999_us=.. errors=..
//!
//! The payload never looks like HTTP, TLS or an HTTP/2 preface, so a sidecar that sniffs
//! the first bytes (weft's server side does, inside the `istio` ALPN) forwards it as TCP.
//!
//! Latency, with --rate: from the time the message was due when the previous answer came
//! late (so a stall counts for every message it delayed, as wrk2 counts it), else from the
//! time it was sent (the client's own oversleeping is not the proxies' latency).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::exit;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

fn usage() -> ! {
    eprintln!(
        "usage: tcp-rr echo ADDR\n       tcp-rr load ADDR --connections N --duration SECS \
         [--rate RPS] [--size BYTES] [--connect AUTHORITY] [--warmup SECS]"
    );
    exit(2)
}

fn echo(addr: &str) {
    let listener = TcpListener::bind(addr).unwrap_or_else(|e| {
        eprintln!("tcp-rr echo: bind {addr}: {e}");
        exit(1)
    });
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        thread::spawn(move || {
            let _ = conn.set_nodelay(true);
            let mut buf = [0u8; 16384];
            loop {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if conn.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

struct Load {
    addr: String,
    connections: usize,
    duration: Duration,
    warmup: Duration,
    rate: Option<f64>,
    size: usize,
    connect: Option<String>,
}

/// What one connection did in the measured period.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
}

fn open(load: &Load) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect(&load.addr).map_err(|e| format!("connect {}: {e}", load.addr))?;
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if let Some(authority) = &load.connect {
        let req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
        s.write_all(req.as_bytes()).map_err(|e| format!("CONNECT: {e}"))?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match s.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return Err("CONNECT: the proxy closed before answering".into()),
            }
            if head.len() > 8192 {
                return Err("CONNECT: answer head too long".into());
            }
        }
        let line = String::from_utf8_lossy(&head);
        let line = line.lines().next().unwrap_or("");
        if !line.starts_with("HTTP/1.1 2") && !line.starts_with("HTTP/1.0 2") {
            return Err(format!("CONNECT answered {line:?}"));
        }
    }
    Ok(s)
}

/// One round trip: the message out, its echo back (checked).
fn round_trip(s: &mut TcpStream, msg: &[u8], back: &mut [u8]) -> bool {
    s.write_all(msg).is_ok() && s.read_exact(back).is_ok() && back == msg
}

fn connection(load: Arc<Load>, index: usize, start: Arc<Barrier>, t0: Arc<std::sync::OnceLock<Instant>>) -> Tally {
    let mut tally = Tally::default();
    // The payload: printable, never an HTTP method, TLS record or h2 preface.
    let msg: Vec<u8> = (0..load.size)
        .map(|i| if i + 1 == load.size { b'\n' } else { b"0123456789abcdef"[(i + index) % 16] })
        .collect();
    let mut back = vec![0u8; load.size];
    // One round trip before the clock starts, so every hop of the path (TLS handshakes
    // between the sidecars, their connections to the app) is set up for every proxy alike.
    let stream = open(&load).and_then(|mut s| {
        if round_trip(&mut s, &msg, &mut back) {
            Ok(s)
        } else {
            Err("the first round trip failed".to_string())
        }
    });
    start.wait();
    let mut s = match stream {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tcp-rr: connection {index}: {e}");
            tally.errors += 1;
            return tally;
        }
    };
    let t0 = *t0.get_or_init(Instant::now);
    let measure_from = t0 + load.warmup;
    let end = measure_from + load.duration;
    // Open loop: this connection's share of the rate, staggered against the others.
    let interval = load.rate.map(|r| Duration::from_secs_f64(load.connections as f64 / r));
    let mut due = t0 + interval.map_or(Duration::ZERO, |i| i.mul_f64(index as f64 / load.connections as f64));
    let mut last_done = t0;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let began = match interval {
            None => now,
            Some(i) => {
                if due > now {
                    thread::sleep(due - now);
                }
                let sent = Instant::now();
                let began = if last_done > due { due } else { sent };
                due += i;
                began
            }
        };
        if began >= end {
            break;
        }
        let ok = round_trip(&mut s, &msg, &mut back);
        let done = Instant::now();
        last_done = done;
        if !ok {
            if began >= measure_from {
                tally.errors += 1;
            }
            // Start over on a new connection, as a load generator does.
            match open(&load) {
                Ok(n) => s = n,
                Err(e) => {
                    eprintln!("tcp-rr: connection {index}: {e}");
                    return tally;
                }
            }
            continue;
        }
        if began >= measure_from {
            let us = done.duration_since(began).as_micros().min(u32::MAX as u128) as u32;
            tally.latencies_us.push(us);
        }
    }
    tally
}

fn run(load: Load) {
    let load = Arc::new(load);
    let start = Arc::new(Barrier::new(load.connections));
    let t0 = Arc::new(std::sync::OnceLock::new());
    let threads: Vec<_> = (0..load.connections)
        .map(|i| {
            let (load, start, t0) = (load.clone(), start.clone(), t0.clone());
            thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || connection(load, i, start, t0))
                .expect("a thread")
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in threads {
        let tally = t.join().expect("a connection thread");
        all.extend(tally.latencies_us);
        errors += tally.errors;
    }
    all.sort_unstable();
    let rank = |p: f64| -> u32 {
        if all.is_empty() {
            return 0;
        }
        let i = (p * all.len() as f64 / 100.0).ceil() as usize;
        all[i.clamp(1, all.len()) - 1]
    };
    let secs = load.duration.as_secs_f64();
    println!(
        "BENCH requests={} duration_us={} rps={:.1} p50_us={} p99_us={} p999_us={} errors={}",
        all.len(),
        load.duration.as_micros(),
        all.len() as f64 / secs,
        rank(50.0),
        rank(99.0),
        rank(99.9),
        errors
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("echo") if args.len() == 2 => echo(&args[1]),
        Some("load") if args.len() >= 2 => {
            let mut load = Load {
                addr: args[1].clone(),
                connections: 32,
                duration: Duration::from_secs(10),
                warmup: Duration::ZERO,
                rate: None,
                size: 128,
                connect: None,
            };
            let mut rest = args[2..].iter();
            while let Some(flag) = rest.next() {
                let value = rest.next().unwrap_or_else(|| usage());
                let num = || value.parse::<f64>().unwrap_or_else(|_| usage());
                match flag.as_str() {
                    "--connections" => load.connections = num() as usize,
                    "--duration" => load.duration = Duration::from_secs_f64(num()),
                    "--warmup" => load.warmup = Duration::from_secs_f64(num()),
                    "--rate" => load.rate = Some(num()),
                    "--size" => load.size = num() as usize,
                    "--connect" => load.connect = Some(value.clone()),
                    _ => usage(),
                }
            }
            if load.connections == 0 || load.size == 0 || load.rate.is_some_and(|r| r <= 0.0) {
                usage();
            }
            run(load);
        }
        _ => usage(),
    }
}
