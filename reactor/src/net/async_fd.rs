//! [`Async`]: any descriptor, with readiness from the reactor.
use crate::io::Registration;
use crate::state::Interest;
use futures::io::{AsyncRead, AsyncWrite};
use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Puts a descriptor in non-blocking mode (`fcntl(F_SETFL, O_NONBLOCK)`).
pub(crate) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL takes no pointer; an invalid fd is reported as EBADF.
    let flags = syscall!(fcntl(fd, libc::F_GETFL))?;
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: as above, with an int argument.
        syscall!(fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK))?;
    }
    Ok(())
}

/// A descriptor you bring (a pipe, an eventfd, an inotify instance, a socket
/// built elsewhere) whose readiness comes from the reactor.
///
/// The descriptor is registered once, edge-triggered, with the reactor
/// current on this thread, and deregistered on drop (or [`into_inner`]).
/// Use [`read_with`] / [`write_with`] to run a non-blocking operation until it
/// does not return `WouldBlock`; [`readable`] / [`writable`] only wait for
/// readiness and leave it set (it is cleared when an operation through
/// `read_with`/`write_with` gets `WouldBlock`).
///
/// ```
/// use futures::io::{AsyncReadExt, AsyncWriteExt};
/// use handoff_reactor::net::Async;
/// use std::os::unix::net::UnixStream;
/// handoff_reactor::block_on(async {
///     let (a, b) = UnixStream::pair()?;
///     let (mut a, mut b) = (Async::new(a)?, Async::new(b)?);
///     a.write_all(b"ping").await?;
///     let mut buf = [0; 4];
///     b.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"ping");
///     Ok::<(), std::io::Error>(())
/// }).unwrap();
/// ```
///
/// [`into_inner`]: Async::into_inner
/// [`read_with`]: Async::read_with
/// [`write_with`]: Async::write_with
/// [`readable`]: Async::readable
/// [`writable`]: Async::writable
pub struct Async<T: AsRawFd> {
    // Declared first: dropped (deregistered) before the descriptor closes.
    reg: Registration,
    io: Option<T>,
}

impl<T: AsRawFd + std::fmt::Debug> std::fmt::Debug for Async<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Async").field(self.get_ref()).finish()
    }
}

impl<T: AsRawFd> Async<T> {
    /// Sets `O_NONBLOCK` on the descriptor and registers it with the reactor
    /// current on this thread.
    ///
    /// ```
    /// handoff_reactor::block_on(async {
    ///     let (r, _w) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let _r = handoff_reactor::net::Async::new(r).unwrap();
    /// });
    /// ```
    ///
    /// # Errors
    /// No reactor is current on this thread; `fcntl` or `epoll_ctl` fails
    /// (`EBADF` for a closed descriptor, `EPERM` for a regular file, which
    /// epoll does not support).
    pub fn new(io: T) -> io::Result<Async<T>> {
        set_nonblocking(io.as_raw_fd())?;
        Self::new_nonblocking(io)
    }

    /// Registers a descriptor that is already non-blocking.
    ///
    /// ```
    /// handoff_reactor::block_on(async {
    ///     let (r, _w) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     r.set_nonblocking(true).unwrap();
    ///     let _r = handoff_reactor::net::Async::new_nonblocking(r).unwrap();
    /// });
    /// ```
    ///
    /// # Errors
    /// As [`Async::new`], without the `fcntl`. A blocking descriptor is not
    /// detected: operations on it would block the thread.
    pub fn new_nonblocking(io: T) -> io::Result<Async<T>> {
        let reg = Registration::new(io.as_raw_fd())?;
        Ok(Async { reg, io: Some(io) })
    }

    /// The inner descriptor.
    ///
    /// ```
    /// handoff_reactor::block_on(async {
    ///     let (r, _w) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let r = handoff_reactor::net::Async::new(r).unwrap();
    ///     assert!(r.get_ref().peer_addr().is_ok());
    /// });
    /// ```
    pub fn get_ref(&self) -> &T {
        self.io.as_ref().expect("Async used after into_inner")
    }

    /// The inner descriptor, mutably.
    ///
    /// ```
    /// handoff_reactor::block_on(async {
    ///     let (r, _w) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let mut r = handoff_reactor::net::Async::new(r).unwrap();
    ///     let _ = r.get_mut();
    /// });
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.io.as_mut().expect("Async used after into_inner")
    }

    /// Deregisters the descriptor and returns it (still non-blocking).
    ///
    /// ```
    /// handoff_reactor::block_on(async {
    ///     let (r, _w) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let r = handoff_reactor::net::Async::new(r).unwrap().into_inner().unwrap();
    ///     drop(r);
    /// });
    /// ```
    ///
    /// # Errors
    /// `epoll_ctl(DEL)` failed (the descriptor was closed behind our back);
    /// the descriptor is then lost.
    pub fn into_inner(mut self) -> io::Result<T> {
        self.reg.deregister()?;
        Ok(self.io.take().expect("Async used after into_inner"))
    }

    /// Waits until the descriptor is reported readable.
    ///
    /// ```
    /// use std::io::Write;
    /// handoff_reactor::block_on(async {
    ///     let (r, mut w) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let r = handoff_reactor::net::Async::new(r).unwrap();
    ///     w.write_all(b"x").unwrap();
    ///     r.readable().await.unwrap();
    /// });
    /// ```
    ///
    /// # Errors
    /// The reactor has shut down.
    pub async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_readable(cx)).await
    }

    /// Waits until the descriptor is reported writable.
    ///
    /// ```
    /// handoff_reactor::block_on(async {
    ///     let (_r, w) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let w = handoff_reactor::net::Async::new(w).unwrap();
    ///     w.writable().await.unwrap();
    /// });
    /// ```
    ///
    /// # Errors
    /// The reactor has shut down.
    pub async fn writable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_writable(cx)).await
    }

    /// Polls for read readiness.
    ///
    /// ```
    /// use std::task::Context;
    /// handoff_reactor::block_on(async {
    ///     let (r, _w) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let r = handoff_reactor::net::Async::new(r).unwrap();
    ///     let waker = futures::task::noop_waker();
    ///     assert!(r.poll_readable(&mut Context::from_waker(&waker)).is_pending());
    /// });
    /// ```
    ///
    /// # Errors
    /// The reactor has shut down.
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.reg.poll_ready(cx, Interest::READ).map_ok(|_| ())
    }

    /// Polls for write readiness.
    ///
    /// ```
    /// use std::task::Context;
    /// handoff_reactor::block_on(async {
    ///     let (_r, w) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let w = handoff_reactor::net::Async::new(w).unwrap();
    ///     handoff_reactor::net::Async::writable(&w).await.unwrap();
    ///     let waker = futures::task::noop_waker();
    ///     assert!(w.poll_writable(&mut Context::from_waker(&waker)).is_ready());
    /// });
    /// ```
    ///
    /// # Errors
    /// The reactor has shut down.
    pub fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.reg.poll_ready(cx, Interest::WRITE).map_ok(|_| ())
    }

    /// Runs a non-blocking read-side operation until it does not fail with
    /// `WouldBlock` (waiting for readability in between) or `Interrupted`.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// handoff_reactor::block_on(async {
    ///     let (r, mut w) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let r = handoff_reactor::net::Async::new(r).unwrap();
    ///     w.write_all(b"hi").unwrap();
    ///     let mut buf = [0; 2];
    ///     let n = r.read_with(|mut s| s.read(&mut buf)).await.unwrap();
    ///     assert_eq!(&buf[..n], &b"hi"[..n]);
    /// });
    /// ```
    ///
    /// # Errors
    /// What `op` returns other than `WouldBlock`/`Interrupted`; the reactor
    /// has shut down.
    pub async fn read_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        poll_fn(|cx| self.poll_read_with(cx, &mut op)).await
    }

    /// [`Async::read_with`] with mutable access.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// handoff_reactor::block_on(async {
    ///     let (r, mut w) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let mut r = handoff_reactor::net::Async::new(r).unwrap();
    ///     w.write_all(b"hi").unwrap();
    ///     let mut buf = [0; 1];
    ///     r.read_with_mut(|s| s.read_exact(&mut buf)).await.unwrap();
    /// });
    /// ```
    ///
    /// # Errors
    /// As [`Async::read_with`].
    pub async fn read_with_mut<R>(
        &mut self,
        mut op: impl FnMut(&mut T) -> io::Result<R>,
    ) -> io::Result<R> {
        poll_fn(|cx| self.poll_read_with_mut(cx, &mut op)).await
    }

    /// Runs a non-blocking write-side operation until it does not fail with
    /// `WouldBlock` or `Interrupted`.
    ///
    /// ```
    /// use std::io::Write;
    /// handoff_reactor::block_on(async {
    ///     let (_r, w) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let w = handoff_reactor::net::Async::new(w).unwrap();
    ///     let n = w.write_with(|mut s| s.write(b"hi")).await.unwrap();
    ///     assert_eq!(n, 2);
    /// });
    /// ```
    ///
    /// # Errors
    /// As [`Async::read_with`].
    pub async fn write_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        poll_fn(|cx| self.poll_write_with(cx, &mut op)).await
    }

    /// [`Async::write_with`] with mutable access.
    ///
    /// ```
    /// use std::io::Write;
    /// handoff_reactor::block_on(async {
    ///     let (_r, w) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let mut w = handoff_reactor::net::Async::new(w).unwrap();
    ///     w.write_with_mut(|s| s.write_all(b"hi")).await.unwrap();
    /// });
    /// ```
    ///
    /// # Errors
    /// As [`Async::read_with`].
    pub async fn write_with_mut<R>(
        &mut self,
        mut op: impl FnMut(&mut T) -> io::Result<R>,
    ) -> io::Result<R> {
        poll_fn(|cx| self.poll_write_with_mut(cx, &mut op)).await
    }

    /// Poll form of [`Async::read_with`].
    ///
    /// ```
    /// use std::io::Read;
    /// use std::task::Context;
    /// handoff_reactor::block_on(async {
    ///     let (r, _w) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let r = handoff_reactor::net::Async::new(r).unwrap();
    ///     let waker = futures::task::noop_waker();
    ///     let mut buf = [0; 1];
    ///     let p = r.poll_read_with(&mut Context::from_waker(&waker), |mut s| s.read(&mut buf));
    ///     assert!(p.is_pending());
    /// });
    /// ```
    ///
    /// # Errors
    /// As [`Async::read_with`].
    pub fn poll_read_with<R>(
        &self,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let io = self.get_ref();
        self.reg.poll_io(cx, Interest::READ, || op(io))
    }

    /// Poll form of [`Async::write_with`].
    ///
    /// ```
    /// use std::io::Write;
    /// use std::task::Context;
    /// handoff_reactor::block_on(async {
    ///     let (_r, w) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let w = handoff_reactor::net::Async::new(w).unwrap();
    ///     w.writable().await.unwrap();
    ///     let waker = futures::task::noop_waker();
    ///     let p = w.poll_write_with(&mut Context::from_waker(&waker), |mut s| s.write(b"x"));
    ///     assert!(p.is_ready());
    /// });
    /// ```
    ///
    /// # Errors
    /// As [`Async::read_with`].
    pub fn poll_write_with<R>(
        &self,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let io = self.get_ref();
        self.reg.poll_io(cx, Interest::WRITE, || op(io))
    }

    /// A stream read into `buf`: `poll_read_with` plus the short-read rule
    /// of `io.rs` (a read of fewer bytes than `buf` holds drained the socket).
    pub(crate) fn poll_read_stream(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
        mut op: impl FnMut(&T, &mut [u8]) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let io = self.get_ref();
        let len = buf.len();
        self.reg.poll_read_stream(cx, len, || op(io, buf))
    }

    fn poll_read_with_mut<R>(
        &mut self,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&mut T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let io = self.io.as_mut().expect("Async used after into_inner");
        self.reg.poll_io(cx, Interest::READ, || op(&mut *io))
    }

    fn poll_write_with_mut<R>(
        &mut self,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&mut T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let io = self.io.as_mut().expect("Async used after into_inner");
        self.reg.poll_io(cx, Interest::WRITE, || op(&mut *io))
    }

    /// Clears readiness the caller has seen fail (internal helper for
    /// `connect`, which waits for writability more than once).
    pub(crate) fn registration(&self) -> &Registration {
        &self.reg
    }
}

// Nothing is ever pinned structurally: `T` is only reached through `&`/`&mut`.
impl<T: AsRawFd> Unpin for Async<T> {}

impl<T: AsRawFd> AsRawFd for Async<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.get_ref().as_raw_fd()
    }
}

impl<T: AsRawFd + AsFd> AsFd for Async<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

impl<T: AsRawFd + Read> AsyncRead for Async<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_read_with_mut(cx, |io| io.read(buf))
    }
}

impl<T: AsRawFd + Write> AsyncWrite for Async<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_with_mut(cx, |io| io.write(buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_write_with_mut(cx, |io| io.flush())
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}
