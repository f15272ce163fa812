//! The server name (SNI) and ALPN protocols of a TLS ClientHello, read from peeked bytes
//! without terminating TLS: for VirtualService `tls` routes, and to tell a sidecar's mesh
//! mTLS from an application's own TLS.

/// What peeked bytes say about a ClientHello.
#[derive(Debug, PartialEq, Eq)]
pub enum Hello {
    /// Not all of the first TLS record has arrived yet.
    Incomplete,
    /// The first record is complete (or it is not TLS) and names no server.
    NoName,
    /// The server name, lowercased.
    Name(String),
}

/// Reads the first TLS record of `buf`: waiting for more only helps when it is `Incomplete`
/// (clients connecting to an IP address send no server name at all).
pub fn client_hello(buf: &[u8]) -> Hello {
    if buf.len() < 5 {
        return Hello::Incomplete;
    }
    if buf[0] != 22 {
        return Hello::NoName;
    }
    let record_len = usize::from(u16::from_be_bytes([buf[3], buf[4]]));
    if buf.len() < 5 + record_len {
        return Hello::Incomplete;
    }
    server_name(buf).map_or(Hello::NoName, Hello::Name)
}

/// The SNI host name in `buf`, when it holds a complete ClientHello with one.
pub fn server_name(buf: &[u8]) -> Option<String> {
    let mut body = Reader(extension(buf, 0)?);
    let list_len = usize::from(body.u16()?);
    let mut list = Reader(body.take(list_len)?);
    while !list.0.is_empty() {
        let name_type = list.u8()?;
        let name_len = usize::from(list.u16()?);
        let name = list.take(name_len)?;
        if name_type == 0 {
            return std::str::from_utf8(name)
                .ok()
                .map(|s| s.to_ascii_lowercase());
        }
    }
    None
}

/// The protocols a complete ClientHello in `buf` offers by ALPN.
pub fn alpn(buf: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let Some(ext) = extension(buf, 16) else {
        return out;
    };
    let mut body = Reader(ext);
    let Some(list) = body.u16().and_then(|n| body.take(usize::from(n))) else {
        return out;
    };
    let mut list = Reader(list);
    while let Some(p) = list.u8().and_then(|n| list.take(usize::from(n))) {
        out.push(p);
    }
    out
}

/// The body of extension `kind` of the ClientHello in `buf`.
fn extension(buf: &[u8], kind: u16) -> Option<&[u8]> {
    let mut r = Reader(buf);
    // TLS record: type 22 (handshake), version, length.
    if r.u8()? != 22 {
        return None;
    }
    r.skip(2)?;
    let record_len = usize::from(r.u16()?);
    let mut hs = Reader(r.take(record_len)?);
    // Handshake: type 1 (ClientHello), 24-bit length.
    if hs.u8()? != 1 {
        return None;
    }
    let len = hs.u24()?;
    let mut hello = Reader(hs.take(len)?);
    hello.skip(2 + 32)?; // version, random
    let session = usize::from(hello.u8()?);
    hello.skip(session)?;
    let suites = usize::from(hello.u16()?);
    hello.skip(suites)?;
    let compression = usize::from(hello.u8()?);
    hello.skip(compression)?;
    let ext_len = usize::from(hello.u16()?);
    let mut exts = Reader(hello.take(ext_len)?);
    while !exts.0.is_empty() {
        let this = exts.u16()?;
        let len = usize::from(exts.u16()?);
        let body = exts.take(len)?;
        if this == kind {
            return Some(body);
        }
    }
    None
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Whatever a client sends first, reading it never panics; a real ClientHello
        /// with bytes appended keeps its name.
        #[test]
        fn any_bytes_are_read_without_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = client_hello(&bytes);
            let _ = server_name(&bytes);
            let _ = alpn(&bytes);
            let mut framed = vec![22, 3, 1];
            framed.extend_from_slice(&bytes);
            let _ = client_hello(&framed);
            let _ = alpn(&framed);
            let mut hello = weft_testkit::tls::client_hello("a.example");
            hello.extend_from_slice(&bytes);
            let name = server_name(&hello);
            proptest::prop_assert_eq!(name.as_deref(), Some("a.example"));
        }
    }

    #[test]
    fn reads_the_server_name() {
        assert_eq!(
            server_name(&weft_testkit::tls::client_hello("API.example.com")).as_deref(),
            Some("api.example.com")
        );
        let hello = weft_testkit::tls::client_hello("a.b");
        assert_eq!(server_name(&hello[..hello.len() - 1]), None, "truncated");
        assert_eq!(server_name(b"GET / HTTP/1.1"), None);
        assert_eq!(client_hello(&hello[..hello.len() - 1]), Hello::Incomplete);
        assert_eq!(client_hello(&hello), Hello::Name("a.b".into()));
        assert_eq!(client_hello(b"GET / HTTP/1.1"), Hello::NoName);
        // A complete record without the server_name extension: no need to wait for more.
        let mut no_sni = vec![22, 3, 1, 0, 0];
        let body = [
            &[1u8, 0, 0, 38, 3, 3][..],
            &[0; 32],
            &[0, 0, 2, 0x13, 0x01, 1, 0],
        ]
        .concat();
        no_sni[3..5].copy_from_slice(&u16::try_from(body.len()).expect("short").to_be_bytes());
        no_sni.extend_from_slice(&body);
        assert_eq!(client_hello(&no_sni), Hello::NoName);
    }
}
