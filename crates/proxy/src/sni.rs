//! The server name (SNI) of a TLS ClientHello, read from peeked bytes without
//! terminating TLS, for VirtualService `tls` routes.

/// The SNI host name in `buf`, when it holds a complete ClientHello with one.
pub fn server_name(buf: &[u8]) -> Option<String> {
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
        let kind = exts.u16()?;
        let len = usize::from(exts.u16()?);
        let mut body = Reader(exts.take(len)?);
        if kind != 0 {
            continue;
        }
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

    #[test]
    fn reads_the_server_name() {
        assert_eq!(
            server_name(&weft_testkit::tls::client_hello("API.example.com")).as_deref(),
            Some("api.example.com")
        );
        let hello = weft_testkit::tls::client_hello("a.b");
        assert_eq!(server_name(&hello[..hello.len() - 1]), None, "truncated");
        assert_eq!(server_name(b"GET / HTTP/1.1"), None);
    }
}
