//! The address a redirected connection was originally sent to (`SO_ORIGINAL_DST`),
//! as set by iptables `REDIRECT` in namespace mode.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use tokio::net::TcpStream;

/// The original destination of `stream`, when it was redirected to this listener.
#[cfg(target_os = "linux")]
pub fn original_dst(stream: &TcpStream) -> Option<SocketAddr> {
    use nix::sys::socket::{getsockopt, sockopt::OriginalDst};
    let raw = getsockopt(stream, OriginalDst).ok()?;
    let addr = SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(raw.sin_addr.s_addr)),
        u16::from_be(raw.sin_port),
    ));
    // Without a redirect the kernel reports the listener's own address.
    (Some(addr) != stream.local_addr().ok()).then_some(addr)
}

/// The original destination of `stream` (not available on this platform).
#[cfg(not(target_os = "linux"))]
pub fn original_dst(_stream: &TcpStream) -> Option<SocketAddr> {
    None
}
