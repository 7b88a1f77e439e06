//! An in-memory, bounded, bidirectional byte pipe for driving services in
//! tests without sockets.
//!
//! Each direction is a ring of at most `cap` bytes behind a mutex: a write
//! to a full ring is `Pending` until the reader takes some (that is what
//! lets a test show that a client that stops reading stalls the server
//! instead of growing its buffers); closing or dropping an end is end of
//! stream for the reader and `BrokenPipe` for a writer whose reader is gone.
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use futures::io::{AsyncRead, AsyncWrite};

struct Ring {
    data: VecDeque<u8>,
    cap: usize,
    write_closed: bool,
    read_closed: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

type Half = Arc<Mutex<Ring>>;

/// One end of a [`pipe`].
pub struct End {
    rx: Half,
    tx: Half,
}

/// A connected pair of ends; each direction buffers at most `cap` bytes.
///
/// # Example
///
/// ```
/// use futures::io::{AsyncReadExt, AsyncWriteExt};
/// let (mut a, mut b) = handoff_servers::duplex::pipe(16);
/// futures::executor::block_on(async {
///     a.write_all(b"ping").await.unwrap();
///     let mut buf = [0; 4];
///     b.read_exact(&mut buf).await.unwrap();
///     assert_eq!(&buf, b"ping");
/// });
/// ```
pub fn pipe(cap: usize) -> (End, End) {
    assert!(cap > 0, "a pipe needs room for at least one byte");
    let ring = || {
        Arc::new(Mutex::new(Ring {
            data: VecDeque::new(),
            cap,
            write_closed: false,
            read_closed: false,
            reader: None,
            writer: None,
        }))
    };
    let (ab, ba) = (ring(), ring());
    (
        End {
            rx: ba.clone(),
            tx: ab.clone(),
        },
        End { rx: ab, tx: ba },
    )
}

impl End {
    /// Bytes written by this end that the peer has not read yet.
    pub fn unread_by_peer(&self) -> usize {
        self.tx.lock().unwrap().data.len()
    }
}

impl AsyncRead for End {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut r = self.rx.lock().unwrap();
        if r.data.is_empty() {
            if r.write_closed {
                return Poll::Ready(Ok(0));
            }
            r.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(r.data.len());
        for (d, s) in buf.iter_mut().zip(r.data.drain(..n)) {
            *d = s;
        }
        if let Some(w) = r.writer.take() {
            w.wake();
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for End {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut r = self.tx.lock().unwrap();
        if r.read_closed || r.write_closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let room = r.cap - r.data.len();
        if room == 0 {
            r.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = room.min(buf.len());
        r.data.extend(&buf[..n]);
        if let Some(w) = r.reader.take() {
            w.wake();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut r = self.tx.lock().unwrap();
        r.write_closed = true;
        if let Some(w) = r.reader.take() {
            w.wake();
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for End {
    fn drop(&mut self) {
        for (half, reading) in [(&self.tx, false), (&self.rx, true)] {
            let mut r = half.lock().unwrap();
            if reading {
                r.read_closed = true;
            } else {
                r.write_closed = true;
            }
            let wakers = [r.reader.take(), r.writer.take()];
            drop(r);
            wakers.into_iter().flatten().for_each(Waker::wake);
        }
    }
}
