//! A connection's buffers: bounded input, bounded output, backpressure.
//!
//! Every request/response server in this crate runs the same loop:
//!
//! 1. Parse as many complete requests as the input buffer holds and append
//!    their responses to the output buffer (pipelining: many requests, one
//!    write), stopping early once the output passes [`OUT_HIGH_WATER`].
//! 2. If there is output, write all of it ([`ConnBuf::flush`]).
//! 3. If nothing could be parsed, read more ([`ConnBuf::fill`]).
//!
//! Why this bounds memory: input is only read in step 3, after the output
//! was fully written, so a client that stops reading its responses stalls
//! the connection in step 2 with at most `OUT_HIGH_WATER` plus one response
//! buffered, its further requests stay in the kernel, and TCP flow control
//! pushes back on it. Input is bounded by the protocol's own limit (64 KiB of
//! HTTP headers, one RESP command), checked by the caller before `fill`.
//!
//! The input buffer is a fully initialised `Vec<u8>` with a `start..end`
//! window, so a read never zeroes memory; it is compacted when the window
//! reaches the end, and grows by doubling only when one request is larger
//! than the buffer.
use std::io;

use futures::io::{AsyncReadExt, AsyncWriteExt};

use crate::rt::{Activity, Conn};

/// Initial input buffer size, and the most a single read asks for when the
/// buffer is empty: one 16 KiB read covers a typical pipelined burst.
pub const READ_CHUNK: usize = 16 * 1024;

/// Output is flushed once it reaches this many bytes even if more pipelined
/// requests are waiting: it bounds memory per connection. 64 KiB matches a
/// typical socket send buffer.
pub const OUT_HIGH_WATER: usize = 64 * 1024;

/// A connection with its input and output buffers.
///
/// # Example
///
/// ```
/// use futures::io::AsyncWriteExt;
/// use handoff_servers::{buf::ConnBuf, duplex::pipe, Activity};
/// let (mut client, server) = pipe(1024);
/// let mut c = ConnBuf::new(server, Activity::detached());
/// futures::executor::block_on(async {
///     client.write_all(b"PING\r\n").await.unwrap();
///     c.fill(0).await.unwrap();
///     assert_eq!(c.input(), b"PING\r\n");
///     let (input, out) = c.split();
///     out.extend_from_slice(if input.starts_with(b"PING") { b"+PONG\r\n" } else { b"-ERR\r\n" });
///     c.consume(6);
///     c.flush().await.unwrap();
/// });
/// assert_eq!(client.unread_by_peer(), 0);
/// ```
pub struct ConnBuf<S> {
    io: S,
    inp: Vec<u8>,
    start: usize,
    end: usize,
    /// Pending output; the protocol appends, [`ConnBuf::flush`] writes it.
    pub out: Vec<u8>,
    activity: Activity,
    /// Whether a read counts as progress (see [`ConnBuf::reads_are_progress`]).
    read_progress: bool,
}

impl<S: Conn> ConnBuf<S> {
    /// Wraps a connection.
    pub fn new(io: S, activity: Activity) -> ConnBuf<S> {
        ConnBuf {
            io,
            inp: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            out: Vec::with_capacity(READ_CHUNK),
            activity,
            read_progress: true,
        }
    }

    /// Whether bytes read count as progress for the idle reaper (default:
    /// yes). The HTTP server turns this off and calls [`ConnBuf::touch`]
    /// per whole request instead, so a client that trickles a head one
    /// byte at a time (slowloris) is closed after the idle timeout like
    /// a silent one.
    pub fn reads_are_progress(&mut self, yes: bool) {
        self.read_progress = yes;
    }

    /// Records progress for the idle reaper.
    pub fn touch(&self) {
        self.activity.touch();
    }

    /// The bytes read but not yet consumed.
    #[inline]
    pub fn input(&self) -> &[u8] {
        &self.inp[self.start..self.end]
    }

    /// The unconsumed input and the output buffer, borrowed together so a
    /// parser can borrow arguments from the input while writing replies.
    #[inline]
    pub fn split(&mut self) -> (&[u8], &mut Vec<u8>) {
        (&self.inp[self.start..self.end], &mut self.out)
    }

    /// Marks `n` input bytes as consumed.
    #[inline]
    pub fn consume(&mut self, n: usize) {
        assert!(n <= self.end - self.start, "consumed more than was read");
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            // One 100 MiB RESP value should not pin 100 MiB for the
            // connection's whole life.
            if self.inp.len() > 64 * READ_CHUNK {
                self.inp = vec![0; READ_CHUNK];
            }
        }
    }

    /// Reads more input. Returns `Ok(0)` at end of stream.
    ///
    /// `want` is how many bytes the caller knows it needs in total (for a
    /// RESP bulk string whose length was announced); the buffer grows to
    /// hold it, a chunk at a time, so a lying length costs nothing until the
    /// bytes actually arrive.
    pub async fn fill(&mut self, want: usize) -> io::Result<usize> {
        if self.end == self.inp.len() {
            if self.start > 0 {
                self.inp.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let grow = self
                    .inp
                    .len()
                    .min(want.saturating_sub(self.inp.len()).max(READ_CHUNK));
                self.inp.resize(self.inp.len() + grow, 0);
            }
        }
        let n = self.io.read(&mut self.inp[self.end..]).await?;
        self.end += n;
        if n > 0 && self.read_progress {
            self.activity.touch();
        }
        Ok(n)
    }

    /// Writes all pending output.
    pub async fn flush(&mut self) -> io::Result<()> {
        let mut off = 0;
        while off < self.out.len() {
            let n = self.io.write(&self.out[off..]).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            off += n;
            self.activity.touch();
        }
        self.out.clear();
        // A 16 MiB file response should not pin 16 MiB for the connection's
        // whole life.
        if self.out.capacity() > 4 * OUT_HIGH_WATER {
            self.out = Vec::with_capacity(READ_CHUNK);
        }
        Ok(())
    }

    /// Flushes, then closes the write side.
    pub async fn close(&mut self) -> io::Result<()> {
        self.flush().await?;
        self.io.close().await
    }

    /// Steps 2 and 3 of the loop in the module header, after a parse pass:
    /// if `close`, flushes and closes the write side; otherwise writes any
    /// pending output, then reads more if `want > 0` (a caller passes 0 when
    /// it stopped at [`OUT_HIGH_WATER`] with requests still buffered).
    /// Returns whether the connection goes on: `false` after a close, a
    /// write or read error, or end of stream (errors end the connection,
    /// they are not reported).
    pub(crate) async fn write_then_fill(&mut self, close: bool, want: usize) -> bool {
        if close {
            let _ = self.close().await;
            return false;
        }
        if !self.out.is_empty() && self.flush().await.is_err() {
            return false;
        }
        if want > 0 {
            match self.fill(want).await {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            }
        }
        true
    }

    /// The underlying connection.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }
}
