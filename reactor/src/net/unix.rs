//! Unix domain stream sockets: [`UnixListener`], [`UnixStream`] and halves.
use super::stream::{stream_io, wait_connected};
use super::Async;
use std::future::poll_fn;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::{self, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A Unix socket listening for connections.
///
/// ```
/// use handoff_reactor::net::{UnixListener, UnixStream};
/// let dir = std::env::temp_dir().join(format!("handoff-doc-{}", std::process::id()));
/// let _ = std::fs::remove_file(&dir);
/// handoff_reactor::block_on(async {
///     let l = UnixListener::bind(&dir)?;
///     let _c = UnixStream::connect(&dir).await?;
///     let (_s, _addr) = l.accept().await?;
///     Ok::<(), std::io::Error>(())
/// }).unwrap();
/// std::fs::remove_file(&dir).unwrap();
/// ```
#[derive(Debug)]
pub struct UnixListener {
    io: Async<mio::net::UnixListener>,
}

impl UnixListener {
    /// Binds to a filesystem path (which must not exist).
    ///
    /// ```
    /// let p = std::env::temp_dir().join(format!("handoff-doc-bind-{}", std::process::id()));
    /// let _ = std::fs::remove_file(&p);
    /// handoff_reactor::block_on(async {
    ///     let _l = handoff_reactor::net::UnixListener::bind(&p).unwrap();
    /// });
    /// std::fs::remove_file(&p).unwrap();
    /// ```
    ///
    /// # Errors
    /// `bind`/`listen` errors (`EADDRINUSE` when the path exists); no reactor
    /// current on this thread.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        Ok(UnixListener {
            io: Async::new_nonblocking(mio::net::UnixListener::bind(path)?)?,
        })
    }

    /// Wraps a std listener (made non-blocking).
    ///
    /// ```
    /// let p = std::env::temp_dir().join(format!("handoff-doc-fstd-{}", std::process::id()));
    /// let _ = std::fs::remove_file(&p);
    /// handoff_reactor::block_on(async {
    ///     let std = std::os::unix::net::UnixListener::bind(&p).unwrap();
    ///     let _l = handoff_reactor::net::UnixListener::from_std(std).unwrap();
    /// });
    /// std::fs::remove_file(&p).unwrap();
    /// ```
    ///
    /// # Errors
    /// `fcntl` or `epoll_ctl` errors.
    pub fn from_std(listener: net::UnixListener) -> io::Result<UnixListener> {
        listener.set_nonblocking(true)?;
        Ok(UnixListener {
            io: Async::new_nonblocking(mio::net::UnixListener::from_std(listener))?,
        })
    }

    /// Accepts a connection.
    ///
    /// # Errors
    /// `accept4` errors as they are (`EMFILE`, `ENFILE`, ...); see
    /// [`TcpListener::accept`](super::TcpListener::accept).
    ///
    /// ```
    /// # let p = std::env::temp_dir().join(format!("handoff-doc-acc-{}", std::process::id()));
    /// # let _ = std::fs::remove_file(&p);
    /// handoff_reactor::block_on(async {
    ///     let l = handoff_reactor::net::UnixListener::bind(&p).unwrap();
    ///     let _c = handoff_reactor::net::UnixStream::connect(&p).await.unwrap();
    ///     let (_s, _) = l.accept().await.unwrap();
    /// });
    /// # std::fs::remove_file(&p).unwrap();
    /// ```
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Poll form of [`UnixListener::accept`].
    ///
    /// # Errors
    /// As [`UnixListener::accept`].
    ///
    /// ```
    /// # let p = std::env::temp_dir().join(format!("handoff-doc-pacc-{}", std::process::id()));
    /// # let _ = std::fs::remove_file(&p);
    /// handoff_reactor::block_on(async {
    ///     let l = handoff_reactor::net::UnixListener::bind(&p).unwrap();
    ///     let w = futures::task::noop_waker();
    ///     assert!(l.poll_accept(&mut std::task::Context::from_waker(&w)).is_pending());
    /// });
    /// # std::fs::remove_file(&p).unwrap();
    /// ```
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(UnixStream, SocketAddr)>> {
        self.io.poll_read_with(cx, |l| l.accept()).map(|r| {
            let (s, addr) = r?;
            Ok((UnixStream::from_mio(s)?, addr))
        })
    }

    /// The local address.
    ///
    /// # Errors
    /// `getsockname` errors.
    ///
    /// ```
    /// # let p = std::env::temp_dir().join(format!("handoff-doc-la-{}", std::process::id()));
    /// # let _ = std::fs::remove_file(&p);
    /// handoff_reactor::block_on(async {
    ///     let l = handoff_reactor::net::UnixListener::bind(&p).unwrap();
    ///     assert_eq!(l.local_addr().unwrap().as_pathname(), Some(p.as_path()));
    /// });
    /// # std::fs::remove_file(&p).unwrap();
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }
}

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }
}

impl AsFd for UnixListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.as_fd()
    }
}

/// A Unix stream connection: `AsyncRead` + `AsyncWrite`.
///
/// ```
/// use futures::io::{AsyncReadExt, AsyncWriteExt};
/// handoff_reactor::block_on(async {
///     let (mut a, mut b) = handoff_reactor::net::UnixStream::pair()?;
///     a.write_all(b"hi").await?;
///     let mut buf = [0; 2];
///     b.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"hi");
///     Ok::<(), std::io::Error>(())
/// }).unwrap();
/// ```
#[derive(Debug)]
pub struct UnixStream {
    io: Async<net::UnixStream>,
}

impl UnixStream {
    fn from_mio(s: mio::net::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream {
            io: Async::new_nonblocking(net::UnixStream::from(OwnedFd::from(s)))?,
        })
    }

    /// Connects to the socket at `path`.
    ///
    /// # Errors
    /// `ENOENT`, `ConnectionRefused`, ...
    ///
    /// ```
    /// # let p = std::env::temp_dir().join(format!("handoff-doc-conn-{}", std::process::id()));
    /// # let _ = std::fs::remove_file(&p);
    /// handoff_reactor::block_on(async {
    ///     let _l = handoff_reactor::net::UnixListener::bind(&p).unwrap();
    ///     let c = handoff_reactor::net::UnixStream::connect(&p).await.unwrap();
    ///     assert!(c.peer_addr().is_ok());
    /// });
    /// # std::fs::remove_file(&p).unwrap();
    /// ```
    pub async fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        let s = UnixStream::from_mio(mio::net::UnixStream::connect(path)?)?;
        wait_connected(&s.io).await?;
        Ok(s)
    }

    /// A connected pair (`socketpair`).
    ///
    /// # Errors
    /// `socketpair` errors; no reactor current on this thread.
    ///
    /// ```
    /// handoff_reactor::block_on(async {
    ///     let (_a, _b) = handoff_reactor::net::UnixStream::pair().unwrap();
    /// });
    /// ```
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = mio::net::UnixStream::pair()?;
        Ok((UnixStream::from_mio(a)?, UnixStream::from_mio(b)?))
    }

    /// Wraps a connected std stream (made non-blocking).
    ///
    /// # Errors
    /// `fcntl` or `epoll_ctl` errors.
    ///
    /// ```
    /// handoff_reactor::block_on(async {
    ///     let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let _a = handoff_reactor::net::UnixStream::from_std(a).unwrap();
    /// });
    /// ```
    pub fn from_std(stream: net::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream {
            io: Async::new(stream)?,
        })
    }

    /// Shuts down the read half, the write half, or both.
    ///
    /// # Errors
    /// `shutdown` errors.
    ///
    /// ```
    /// handoff_reactor::block_on(async {
    ///     let (a, _b) = handoff_reactor::net::UnixStream::pair().unwrap();
    ///     a.shutdown(std::net::Shutdown::Write).unwrap();
    /// });
    /// ```
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }

    /// The peer's address.
    ///
    /// # Errors
    /// `getpeername` errors.
    ///
    /// ```
    /// handoff_reactor::block_on(async {
    ///     let (a, _b) = handoff_reactor::net::UnixStream::pair().unwrap();
    ///     assert!(a.peer_addr().unwrap().is_unnamed());
    /// });
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// The local address.
    ///
    /// # Errors
    /// `getsockname` errors.
    ///
    /// ```
    /// handoff_reactor::block_on(async {
    ///     let (a, _b) = handoff_reactor::net::UnixStream::pair().unwrap();
    ///     assert!(a.local_addr().unwrap().is_unnamed());
    /// });
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Splits into halves usable by two tasks at once.
    ///
    /// ```
    /// handoff_reactor::block_on(async {
    ///     let (a, _b) = handoff_reactor::net::UnixStream::pair().unwrap();
    ///     let (_r, _w) = a.into_split();
    /// });
    /// ```
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        let io = Arc::new(self.io);
        (OwnedReadHalf { io: io.clone() }, OwnedWriteHalf { io })
    }
}

impl AsRawFd for UnixStream {
    fn as_raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }
}

impl AsFd for UnixStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.as_fd()
    }
}

/// The read half of [`UnixStream::into_split`] (`AsyncRead`).
///
/// ```
/// handoff_reactor::block_on(async {
///     let (a, _b) = handoff_reactor::net::UnixStream::pair().unwrap();
///     let (_r, _w): (handoff_reactor::net::unix::OwnedReadHalf, _) = a.into_split();
/// });
/// ```
#[derive(Debug)]
pub struct OwnedReadHalf {
    io: Arc<Async<net::UnixStream>>,
}

/// The write half of [`UnixStream::into_split`] (`AsyncWrite`).
///
/// ```
/// handoff_reactor::block_on(async {
///     let (a, _b) = handoff_reactor::net::UnixStream::pair().unwrap();
///     let (_r, _w): (_, handoff_reactor::net::unix::OwnedWriteHalf) = a.into_split();
/// });
/// ```
#[derive(Debug)]
pub struct OwnedWriteHalf {
    io: Arc<Async<net::UnixStream>>,
}

stream_io!(read UnixStream);
stream_io!(write UnixStream);
stream_io!(read OwnedReadHalf);
stream_io!(write OwnedWriteHalf);
