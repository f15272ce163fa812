//! Protocol detection: peek at the first bytes of a connection. A client that waits
//! for the server to speak first (MySQL, SMTP) sends nothing; after the timeout the
//! connection is treated as opaque TCP, so it never stalls.

use std::time::Duration;

use tokio::net::TcpStream;

/// What a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// HTTP/1.x.
    Http1,
    /// HTTP/2 with prior knowledge (the connection preface).
    Http2,
    /// A TLS ClientHello.
    Tls,
    /// Anything else, or nothing within the timeout.
    Tcp,
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const METHODS: &[&[u8]] = &[
    b"GET ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"HEAD ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

/// Classifies the bytes seen so far; `None` when more are needed to decide.
pub fn classify(buf: &[u8]) -> Option<Detected> {
    if buf.is_empty() {
        return None;
    }
    if buf[0] == 0x16 {
        return Some(Detected::Tls);
    }
    let prefix_of = |full: &[u8]| full.starts_with(&buf[..buf.len().min(full.len())]);
    if buf.len() >= H2_PREFACE.len() && buf.starts_with(H2_PREFACE) {
        return Some(Detected::Http2);
    }
    if METHODS.iter().any(|m| buf.starts_with(m)) {
        return Some(Detected::Http1);
    }
    if prefix_of(H2_PREFACE) || METHODS.iter().any(|m| prefix_of(m)) {
        return None;
    }
    Some(Detected::Tcp)
}

/// Peeks at `stream` until the protocol is clear or `timeout` passes.
pub async fn detect(stream: &TcpStream, timeout: Duration) -> Detected {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = [0u8; 24];
    loop {
        let peeked = tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await;
        match peeked {
            Err(_) => return Detected::Tcp,
            Ok(Err(_)) | Ok(Ok(0)) => return Detected::Tcp,
            Ok(Ok(n)) => match classify(&buf[..n]) {
                Some(d) => return d,
                None if n == buf.len() => return Detected::Tcp,
                // peek returns at once while data sits in the buffer; wait for more.
                None => tokio::time::sleep(Duration::from_millis(1)).await,
            },
        }
    }
}

/// What Envoy's codec refuses in a request's head that hyper, weft's codec, answers
/// otherwise: hyper resolves both lengths silently (it drops `Content-Length` and closes
/// after the request) and answers 400 where Envoy answers 501, so the first request's bytes
/// are looked at before hyper sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadRefusal {
    /// Both `Content-Length` and `Transfer-Encoding`: the request-smuggling ambiguity (400).
    AmbiguousLength,
    /// A `Transfer-Encoding` whose last coding is not `chunked` (501 Not Implemented).
    UnsupportedTransferEncoding,
}

/// The refusal the head in `head` (as far as it has arrived) calls for, if any.
pub fn head_refusal(head: &[u8]) -> Option<HeadRefusal> {
    let end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(head.len());
    let (mut te, mut cl, mut last_coding_chunked) = (false, false, false);
    for line in head[..end].split(|b| *b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (name, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &b""[..]),
        };
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te = true;
            let last = value.rsplit(|b| *b == b',').next().unwrap_or_default();
            last_coding_chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
        }
        cl |= name.eq_ignore_ascii_case(b"content-length");
    }
    match (te, cl) {
        (true, true) => Some(HeadRefusal::AmbiguousLength),
        (true, false) if !last_coding_chunked => Some(HeadRefusal::UnsupportedTransferEncoding),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_envoy_refuses_are_recognized() {
        let ambiguous = Some(HeadRefusal::AmbiguousLength);
        let unsupported = Some(HeadRefusal::UnsupportedTransferEncoding);
        let both = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert_eq!(head_refusal(both), ambiguous);
        let te_first =
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-LENGTH: 5\r\n\r\n";
        assert_eq!(head_refusal(te_first), ambiguous);
        let gzip = b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert_eq!(head_refusal(gzip), unsupported);
        let chunked_last = b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked \r\n\r\n";
        assert_eq!(head_refusal(chunked_last), None);
        let identity_last = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n";
        assert_eq!(head_refusal(identity_last), unsupported);
        // A header after the head is body, not a header.
        let in_body = b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nTransfer-Encoding: x";
        assert_eq!(head_refusal(in_body), None);
        assert_eq!(head_refusal(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), None);
        assert_eq!(head_refusal(b""), None);
    }

    #[test]
    fn classifies_protocols() {
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(Detected::Http1));
        assert_eq!(classify(H2_PREFACE), Some(Detected::Http2));
        assert_eq!(classify(b"PRI * HTTP/2"), None, "needs the whole preface");
        assert_eq!(classify(b"GE"), None);
        assert_eq!(classify(&[0x16, 0x03, 0x01]), Some(Detected::Tls));
        assert_eq!(classify(b"\x00\x00\x00\x01"), Some(Detected::Tcp));
        assert_eq!(classify(b"HELO example"), Some(Detected::Tcp));
    }
}
