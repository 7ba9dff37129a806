//! The listening socket.

use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpSocket};

/// Connections the kernel may hold, complete, until the server accepts
/// them (the kernel caps it at `net.core.somaxconn`). Past it the kernel
/// drops a new connection's handshake, and a client that believes it is
/// connected waits for a retransmission, seconds later; a burst of
/// clients at once (or a flood) reaches that soon at tokio's default of
/// 1,024.
pub const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `addr` with [`LISTEN_BACKLOG`], reusing the address as
/// `TcpListener::bind` does.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}
