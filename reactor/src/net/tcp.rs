//! TCP: [`TcpListener`], [`TcpStream`] and its owned halves.
//!
//! Sockets are built non-blocking and close-on-exec by `mio::net` (socket
//! construction only); readiness is this reactor's. Addresses are resolved
//! with `std::net::ToSocketAddrs`, which is synchronous: a host name makes
//! the calling thread wait for DNS. Pass a `SocketAddr` (or an IP string) in
//! latency-sensitive code; handoff's blocking crate provides an async
//! `lookup_host`.
use super::stream::{stream_io, wait_connected};
use super::Async;
use std::future::poll_fn;
use std::io;
use std::net::{self, Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::task::{Context, Poll};

/// Tries `f` on each resolved address; returns the first success or the last error.
pub(crate) async fn each_addr<A: ToSocketAddrs, T, F, Fut>(addr: A, mut f: F) -> io::Result<T>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = io::Result<T>>,
{
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match f(a).await {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any address",
        )
    }))
}

/// A TCP socket listening for connections.
///
/// ```
/// use handoff_reactor::net::{TcpListener, TcpStream};
/// handoff_reactor::block_on(async {
///     let l = TcpListener::bind("127.0.0.1:0").await?;
///     let c = TcpStream::connect(l.local_addr()?).await?;
///     let (s, peer) = l.accept().await?;
///     assert_eq!(peer, c.local_addr()?);
///     assert_eq!(s.peer_addr()?, c.local_addr()?);
///     Ok::<(), std::io::Error>(())
/// }).unwrap();
/// ```
#[derive(Debug)]
pub struct TcpListener {
    io: Async<mio::net::TcpListener>,
}

impl TcpListener {
    /// Binds to `addr` (with `SO_REUSEADDR`, backlog 1024). The first
    /// resolved address that binds wins.
    ///
    /// ```
    /// handoff_reactor::block_on(async {
    ///     let l = handoff_reactor::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    ///     assert!(l.local_addr().unwrap().port() != 0);
    /// });
    /// ```
    ///
    /// # Errors
    /// Resolution or `bind`/`listen` errors (`EADDRINUSE`, ...); no reactor
    /// current on this thread.
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        each_addr(addr, |a| async move {
            let l = mio::net::TcpListener::bind(a)?;
            Ok(TcpListener {
                io: Async::new_nonblocking(l)?,
            })
        })
        .await
    }

    /// Wraps a std listener (it is made non-blocking).
    ///
    /// ```
    /// handoff_reactor::block_on(async {
    ///     let std = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let l = handoff_reactor::net::TcpListener::from_std(std).unwrap();
    ///     let _ = l.local_addr().unwrap();
    /// });
    /// ```
    ///
    /// # Errors
    /// `fcntl` or `epoll_ctl` errors; no reactor current on this thread.
    pub fn from_std(listener: net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        Ok(TcpListener {
            io: Async::new_nonblocking(mio::net::TcpListener::from_std(listener))?,
        })
    }

    /// Accepts a connection.
    ///
    /// ```
    /// use handoff_reactor::net::{TcpListener, TcpStream};
    /// handoff_reactor::block_on(async {
    ///     let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    ///     let _c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    ///     let (_s, _peer) = l.accept().await.unwrap();
    /// });
    /// ```
    ///
    /// # Errors
    /// `accept4` errors, returned as they are: `EMFILE`/`ENFILE` when out of
    /// descriptors (the pending connection stays in the backlog and a later
    /// `accept` takes it; sleeping a little before retrying is the caller's
    /// choice), `ECONNABORTED`, ...
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Poll form of [`TcpListener::accept`].
    ///
    /// ```
    /// use std::task::Context;
    /// handoff_reactor::block_on(async {
    ///     let l = handoff_reactor::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    ///     let w = futures::task::noop_waker();
    ///     assert!(l.poll_accept(&mut Context::from_waker(&w)).is_pending());
    /// });
    /// ```
    ///
    /// # Errors
    /// As [`TcpListener::accept`].
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        self.io.poll_read_with(cx, |l| l.accept()).map(|r| {
            let (s, addr) = r?;
            Ok((TcpStream::from_mio(s)?, addr))
        })
    }

    /// The local address.
    ///
    /// ```
    /// handoff_reactor::block_on(async {
    ///     let l = handoff_reactor::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    ///     assert!(l.local_addr().unwrap().ip().is_loopback());
    /// });
    /// ```
    ///
    /// # Errors
    /// `getsockname` errors.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.as_fd()
    }
}

/// A TCP connection: `futures::io::AsyncRead` + `AsyncWrite`.
///
/// A peer reset shows up as an `io::Error` (`ConnectionReset`) from the next
/// read or write; writing to a closed connection gives `BrokenPipe` (no
/// `SIGPIPE`: writes use `MSG_NOSIGNAL`).
///
/// ```
/// use futures::io::{AsyncReadExt, AsyncWriteExt};
/// use handoff_reactor::net::{TcpListener, TcpStream};
/// handoff_reactor::block_on(async {
///     let l = TcpListener::bind("127.0.0.1:0").await?;
///     let mut c = TcpStream::connect(l.local_addr()?).await?;
///     let (mut s, _) = l.accept().await?;
///     c.write_all(b"hello").await?;
///     let mut buf = [0; 5];
///     s.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"hello");
///     Ok::<(), std::io::Error>(())
/// }).unwrap();
/// ```
#[derive(Debug)]
pub struct TcpStream {
    io: Async<net::TcpStream>,
}

impl TcpStream {
    fn from_mio(s: mio::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            io: Async::new_nonblocking(net::TcpStream::from(s))?,
        })
    }

    /// Connects to `addr` (a non-blocking `connect`, then waits for
    /// writability and reads `SO_ERROR`). Each resolved address is tried in
    /// turn; the last error is returned if none connects.
    ///
    /// ```
    /// handoff_reactor::block_on(async {
    ///     let l = handoff_reactor::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    ///     let c = handoff_reactor::net::TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    ///     assert_eq!(c.peer_addr().unwrap(), l.local_addr().unwrap());
    /// });
    /// ```
    ///
    /// # Errors
    /// `ConnectionRefused`, `TimedOut`, resolution errors, ...
    pub async fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(addr, |a| async move {
            let s = TcpStream::from_mio(mio::net::TcpStream::connect(a)?)?;
            wait_connected(&s.io).await?;
            Ok(s)
        })
        .await
    }

    /// Wraps a connected std stream (it is made non-blocking).
    ///
    /// ```
    /// handoff_reactor::block_on(async {
    ///     let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    ///     let _c = handoff_reactor::net::TcpStream::from_std(c).unwrap();
    /// });
    /// ```
    ///
    /// # Errors
    /// `fcntl` or `epoll_ctl` errors; no reactor current on this thread.
    pub fn from_std(stream: net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            io: Async::new(stream)?,
        })
    }

    /// Shuts down the read half, the write half, or both. Shutting down the
    /// write half sends FIN: the peer reads end-of-file (a half-close).
    ///
    /// ```
    /// use futures::io::AsyncReadExt;
    /// use handoff_reactor::net::{TcpListener, TcpStream};
    /// handoff_reactor::block_on(async {
    ///     let l = TcpListener::bind("127.0.0.1:0").await?;
    ///     let c = TcpStream::connect(l.local_addr()?).await?;
    ///     let (mut s, _) = l.accept().await?;
    ///     c.shutdown(std::net::Shutdown::Write)?;
    ///     let mut v = Vec::new();
    ///     assert_eq!(s.read_to_end(&mut v).await?, 0);
    ///     Ok::<(), std::io::Error>(())
    /// }).unwrap();
    /// ```
    ///
    /// # Errors
    /// `shutdown` errors (`ENOTCONN`).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    ///
    /// ```
    /// # handoff_reactor::block_on(async {
    /// # let l = handoff_reactor::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// let c = handoff_reactor::net::TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    /// c.set_nodelay(true).unwrap();
    /// assert!(c.nodelay().unwrap());
    /// # });
    /// ```
    ///
    /// # Errors
    /// `setsockopt` errors.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_nodelay(on)
    }

    /// Whether `TCP_NODELAY` is set.
    ///
    /// ```
    /// # handoff_reactor::block_on(async {
    /// # let l = handoff_reactor::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// let c = handoff_reactor::net::TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    /// let _ = c.nodelay().unwrap();
    /// # });
    /// ```
    ///
    /// # Errors
    /// `getsockopt` errors.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.get_ref().nodelay()
    }

    /// The peer's address.
    ///
    /// ```
    /// # handoff_reactor::block_on(async {
    /// # let l = handoff_reactor::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// let c = handoff_reactor::net::TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    /// assert_eq!(c.peer_addr().unwrap(), l.local_addr().unwrap());
    /// # });
    /// ```
    ///
    /// # Errors
    /// `getpeername` errors (`ENOTCONN`).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// The local address.
    ///
    /// ```
    /// # handoff_reactor::block_on(async {
    /// # let l = handoff_reactor::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// let c = handoff_reactor::net::TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    /// assert!(c.local_addr().unwrap().ip().is_loopback());
    /// # });
    /// ```
    ///
    /// # Errors
    /// `getsockname` errors.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Splits into a read half and a write half that can be used by two
    /// tasks at once (one waits for readability while the other writes).
    ///
    /// ```
    /// use futures::io::{AsyncReadExt, AsyncWriteExt};
    /// use handoff_reactor::net::{TcpListener, TcpStream};
    /// handoff_reactor::block_on(async {
    ///     let l = TcpListener::bind("127.0.0.1:0").await?;
    ///     let c = TcpStream::connect(l.local_addr()?).await?;
    ///     let (s, _) = l.accept().await?;
    ///     let (mut r, mut w) = c.into_split();
    ///     let (mut sr, mut sw) = s.into_split();
    ///     w.write_all(b"x").await?;
    ///     let mut b = [0; 1];
    ///     sr.read_exact(&mut b).await?;
    ///     sw.write_all(&b).await?;
    ///     r.read_exact(&mut b).await?;
    ///     Ok::<(), std::io::Error>(())
    /// }).unwrap();
    /// ```
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        let io = Arc::new(self.io);
        (OwnedReadHalf { io: io.clone() }, OwnedWriteHalf { io })
    }
}

stream_io!(read TcpStream);
stream_io!(write TcpStream);
stream_io!(read OwnedReadHalf);
stream_io!(write OwnedWriteHalf);

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.as_fd()
    }
}

/// The read half of [`TcpStream::into_split`] (`AsyncRead`).
///
/// ```
/// # handoff_reactor::block_on(async {
/// # let l = handoff_reactor::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let c = handoff_reactor::net::TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
/// let (r, _w) = c.into_split();
/// assert!(r.peer_addr().is_ok());
/// # });
/// ```
#[derive(Debug)]
pub struct OwnedReadHalf {
    io: Arc<Async<net::TcpStream>>,
}

/// The write half of [`TcpStream::into_split`] (`AsyncWrite`; closing it
/// sends FIN).
///
/// ```
/// use futures::io::AsyncWriteExt;
/// # handoff_reactor::block_on(async {
/// # let l = handoff_reactor::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let c = handoff_reactor::net::TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
/// let (_r, mut w) = c.into_split();
/// w.write_all(b"hi").await.unwrap();
/// w.close().await.unwrap();
/// # });
/// ```
#[derive(Debug)]
pub struct OwnedWriteHalf {
    io: Arc<Async<net::TcpStream>>,
}

impl OwnedReadHalf {
    /// The peer's address.
    ///
    /// ```
    /// # handoff_reactor::block_on(async {
    /// # let l = handoff_reactor::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// # let c = handoff_reactor::net::TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    /// let (r, _w) = c.into_split();
    /// assert_eq!(r.peer_addr().unwrap(), l.local_addr().unwrap());
    /// # });
    /// ```
    ///
    /// # Errors
    /// `getpeername` errors.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }
}

impl OwnedWriteHalf {
    /// The peer's address.
    ///
    /// ```
    /// # handoff_reactor::block_on(async {
    /// # let l = handoff_reactor::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// # let c = handoff_reactor::net::TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    /// let (_r, w) = c.into_split();
    /// assert_eq!(w.peer_addr().unwrap(), l.local_addr().unwrap());
    /// # });
    /// ```
    ///
    /// # Errors
    /// `getpeername` errors.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }
}
