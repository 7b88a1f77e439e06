//! The stream core shared by [`TcpStream`](super::TcpStream),
//! [`UnixStream`](super::UnixStream) and their owned halves: reading,
//! writing, half-closing and finishing a non-blocking `connect` on an
//! `Async<S>` whose `S` is a connected std stream socket.
//!
//! Protocol:
//! 1. A read or write runs the socket's `&S` `Read`/`Write` through
//!    `Async::poll_read_stream` / `poll_write_with`, which try the call, clear
//!    readiness on `WouldBlock` and wait for the next edge (the "try, clear,
//!    wait" loop of `crate::io`), spending the cooperative budget. A read
//!    that returns fewer bytes than asked also clears the read readiness
//!    (the socket is drained; "Short reads" in `crate::io`).
//! 2. `poll_flush` has nothing to do: there is no user-space buffer.
//! 3. `poll_close` shuts down the write half (the peer reads end-of-file);
//!    `ENOTCONN` (the peer already went away) counts as closed.
//! 4. `wait_connected` finishes a non-blocking `connect`: wait for
//!    writability, read `SO_ERROR`, then confirm with `getpeername` (a
//!    spurious writable edge leaves it `ENOTCONN`, and we wait again).
//!
//! Why it is correct for both families: TCP and Unix stream sockets answer
//! these calls the same way (`read`/`write`/`writev`, `shutdown`,
//! `SO_ERROR`, `getpeername`); only the address type differs, and nothing
//! here touches an address.
//!
//! Rejected: a generic public `Stream<S>` (it would change the public types
//! `TcpStream`/`UnixStream` and their halves), and a blanket
//! `impl<T: StreamIo> AsyncRead for T` (the orphan rule forbids it for a
//! foreign trait). So the logic lives in the generic functions below and the
//! per-type `AsyncRead`/`AsyncWrite` impls are one-line forwards stamped out
//! by [`stream_io!`].
use super::Async;
use crate::state::{Cleared, Interest};
use std::future::poll_fn;
use std::io::{self, IoSlice, Read, Write};
use std::net::{self, Shutdown};
use std::os::fd::AsRawFd;
use std::os::unix::net as unix;
use std::task::{Context, Poll};

/// A connected std stream socket: what the shared plumbing needs from it.
/// Implemented for `std::net::TcpStream` and
/// `std::os::unix::net::UnixStream`, which have these methods inherently
/// but share no trait for them.
pub(crate) trait StreamSocket: AsRawFd {
    /// One `read` (through `&S: Read`).
    fn read_ref(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// One `write` (through `&S: Write`).
    fn write_ref(&self, buf: &[u8]) -> io::Result<usize>;
    /// One `writev` (through `&S: Write`).
    fn write_vectored_ref(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// `shutdown(2)`.
    fn shutdown_how(&self, how: Shutdown) -> io::Result<()>;
    /// `SO_ERROR`, taken (reading it clears it).
    fn take_socket_error(&self) -> io::Result<Option<io::Error>>;
    /// `getpeername`: `Ok` once connected, `NotConnected` before.
    fn check_connected(&self) -> io::Result<()>;
}

/// Implements [`StreamSocket`] by forwarding to the std type's own methods.
macro_rules! stream_socket {
    ($($ty:ty),*) => {$(
        impl StreamSocket for $ty {
            fn read_ref(&self, buf: &mut [u8]) -> io::Result<usize> {
                let mut r = self;
                r.read(buf)
            }

            fn write_ref(&self, buf: &[u8]) -> io::Result<usize> {
                let mut w = self;
                w.write(buf)
            }

            fn write_vectored_ref(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
                let mut w = self;
                w.write_vectored(bufs)
            }

            fn shutdown_how(&self, how: Shutdown) -> io::Result<()> {
                self.shutdown(how)
            }

            fn take_socket_error(&self) -> io::Result<Option<io::Error>> {
                self.take_error()
            }

            fn check_connected(&self) -> io::Result<()> {
                self.peer_addr().map(|_| ())
            }
        }
    )*};
}

stream_socket!(net::TcpStream, unix::UnixStream);

/// `AsyncRead::poll_read` for a stream socket (a short read clears the
/// read readiness: "Short reads" in `io.rs`).
pub(crate) fn poll_read<S: StreamSocket>(
    io: &Async<S>,
    cx: &mut Context<'_>,
    buf: &mut [u8],
) -> Poll<io::Result<usize>> {
    io.poll_read_stream(cx, buf, |s, b| s.read_ref(b))
}

/// `AsyncWrite::poll_write` for a stream socket.
pub(crate) fn poll_write<S: StreamSocket>(
    io: &Async<S>,
    cx: &mut Context<'_>,
    buf: &[u8],
) -> Poll<io::Result<usize>> {
    io.poll_write_with(cx, |s| s.write_ref(buf))
}

/// `AsyncWrite::poll_write_vectored` for a stream socket.
pub(crate) fn poll_write_vectored<S: StreamSocket>(
    io: &Async<S>,
    cx: &mut Context<'_>,
    bufs: &[IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    io.poll_write_with(cx, |s| s.write_vectored_ref(bufs))
}

/// `AsyncWrite::poll_close`: shuts down the write half (sends FIN); a socket
/// that is no longer connected counts as closed.
pub(crate) fn poll_close<S: StreamSocket>(io: &Async<S>) -> Poll<io::Result<()>> {
    match io.get_ref().shutdown_how(Shutdown::Write) {
        Err(e) if e.kind() != io::ErrorKind::NotConnected => Poll::Ready(Err(e)),
        _ => Poll::Ready(Ok(())),
    }
}

/// Waits for a non-blocking `connect` to finish: writable, then `SO_ERROR`,
/// then `getpeername` (a spurious writable edge leaves it `ENOTCONN`, and we
/// wait again).
pub(crate) async fn wait_connected<S: StreamSocket>(io: &Async<S>) -> io::Result<()> {
    loop {
        let ev = poll_fn(|cx| io.registration().poll_ready(cx, Interest::WRITE)).await?;
        if let Some(e) = io.get_ref().take_socket_error()? {
            return Err(e);
        }
        match io.get_ref().check_connected() {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                let _: Cleared = io.registration().clear(ev);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Implements `AsyncRead` (`stream_io!(read T)`) or `AsyncWrite`
/// (`stream_io!(write T)`) for a stream type whose field `io` derefs to an
/// `Async<S>` with `S: StreamSocket`, forwarding to the functions above.
macro_rules! stream_io {
    (read $ty:ty) => {
        impl futures::io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                $crate::net::stream::poll_read(&self.io, cx, buf)
            }
        }
    };
    (write $ty:ty) => {
        impl futures::io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                $crate::net::stream::poll_write(&self.io, cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                $crate::net::stream::poll_write_vectored(&self.io, cx, bufs)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }

            /// Shuts down the write half (sends FIN).
            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                $crate::net::stream::poll_close(&self.io)
            }
        }
    };
}
pub(crate) use stream_io;
