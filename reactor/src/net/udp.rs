//! UDP: [`UdpSocket`].
use super::tcp::each_addr;
use super::Async;
use std::io;
use std::net::{self, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

/// A UDP socket.
///
/// ```
/// use handoff_reactor::net::UdpSocket;
/// handoff_reactor::block_on(async {
///     let a = UdpSocket::bind("127.0.0.1:0").await?;
///     let b = UdpSocket::bind("127.0.0.1:0").await?;
///     a.send_to(b"ping", b.local_addr()?).await?;
///     let mut buf = [0; 16];
///     let (n, from) = b.recv_from(&mut buf).await?;
///     assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr()?));
///     Ok::<(), std::io::Error>(())
/// }).unwrap();
/// ```
#[derive(Debug)]
pub struct UdpSocket {
    io: Async<net::UdpSocket>,
}

impl UdpSocket {
    /// Binds to `addr`.
    ///
    /// # Errors
    /// Resolution or `bind` errors; no reactor current on this thread.
    ///
    /// ```
    /// handoff_reactor::block_on(async {
    ///     let s = handoff_reactor::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    ///     assert!(s.local_addr().unwrap().port() != 0);
    /// });
    /// ```
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        each_addr(addr, |a| async move {
            UdpSocket::from_std(net::UdpSocket::bind(a)?)
        })
        .await
    }

    /// Wraps a std socket (made non-blocking).
    ///
    /// # Errors
    /// `fcntl` or `epoll_ctl` errors.
    ///
    /// ```
    /// handoff_reactor::block_on(async {
    ///     let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     let _s = handoff_reactor::net::UdpSocket::from_std(s).unwrap();
    /// });
    /// ```
    pub fn from_std(socket: net::UdpSocket) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            io: Async::new(socket)?,
        })
    }

    /// Sends a datagram to `target` (the first resolved address).
    ///
    /// # Errors
    /// Resolution or `sendto` errors.
    ///
    /// ```
    /// handoff_reactor::block_on(async {
    ///     let s = handoff_reactor::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    ///     assert_eq!(s.send_to(b"x", s.local_addr().unwrap()).await.unwrap(), 1);
    /// });
    /// ```
    pub async fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], target: A) -> io::Result<usize> {
        let addr = target
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to send to"))?;
        self.io.write_with(|s| s.send_to(buf, addr)).await
    }

    /// Receives a datagram; returns its length and sender.
    ///
    /// # Errors
    /// `recvfrom` errors (e.g. `ConnectionRefused` after an ICMP error on a
    /// connected socket).
    ///
    /// ```
    /// handoff_reactor::block_on(async {
    ///     let s = handoff_reactor::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    ///     s.send_to(b"x", s.local_addr().unwrap()).await.unwrap();
    ///     let mut b = [0; 4];
    ///     assert_eq!(s.recv_from(&mut b).await.unwrap().0, 1);
    /// });
    /// ```
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.read_with(|s| s.recv_from(buf)).await
    }

    /// Sets the default peer for [`UdpSocket::send`] and filters
    /// [`UdpSocket::recv`] to it.
    ///
    /// # Errors
    /// Resolution or `connect` errors.
    ///
    /// ```
    /// handoff_reactor::block_on(async {
    ///     let a = handoff_reactor::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    ///     let b = handoff_reactor::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    ///     a.connect(b.local_addr().unwrap()).await.unwrap();
    ///     a.send(b"x").await.unwrap();
    ///     let mut buf = [0; 1];
    ///     b.recv_from(&mut buf).await.unwrap();
    /// });
    /// ```
    pub async fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(addr, |a| async move { self.io.get_ref().connect(a) }).await
    }

    /// Sends to the connected peer.
    ///
    /// # Errors
    /// `send` errors (`ENOTCONN` when not connected).
    ///
    /// ```
    /// handoff_reactor::block_on(async {
    ///     let a = handoff_reactor::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    ///     a.connect(a.local_addr().unwrap()).await.unwrap();
    ///     a.send(b"x").await.unwrap();
    ///     let mut buf = [0; 1];
    ///     assert_eq!(a.recv(&mut buf).await.unwrap(), 1);
    /// });
    /// ```
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.write_with(|s| s.send(buf)).await
    }

    /// Receives from the connected peer.
    ///
    /// # Errors
    /// `recv` errors.
    ///
    /// ```
    /// handoff_reactor::block_on(async {
    ///     let a = handoff_reactor::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    ///     a.connect(a.local_addr().unwrap()).await.unwrap();
    ///     a.send(b"y").await.unwrap();
    ///     let mut buf = [0; 1];
    ///     a.recv(&mut buf).await.unwrap();
    ///     assert_eq!(&buf, b"y");
    /// });
    /// ```
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.read_with(|s| s.recv(buf)).await
    }

    /// The local address.
    ///
    /// # Errors
    /// `getsockname` errors.
    ///
    /// ```
    /// handoff_reactor::block_on(async {
    ///     let s = handoff_reactor::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    ///     assert!(s.local_addr().unwrap().ip().is_loopback());
    /// });
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The connected peer's address.
    ///
    /// # Errors
    /// `ENOTCONN` when not connected.
    ///
    /// ```
    /// handoff_reactor::block_on(async {
    ///     let s = handoff_reactor::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    ///     assert!(s.peer_addr().is_err());
    /// });
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }
}

impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.as_fd()
    }
}
