//! Registrations: a descriptor's readiness word and wakers, and the loop
//! that turns "try the syscall, wait on `EAGAIN`" into a poll function.
//!
//! # Protocol of [`Registration::poll_io`]
//!
//! 1. Spend one unit of the cooperative budget (`coop::poll_proceed`); a task
//!    that has used its budget yields here, before the syscall, so no data is
//!    read and then dropped. (The unit is spent even if the call then finds
//!    the descriptor not ready; `coop` has no refund, and over-counting only
//!    makes a task yield a little earlier.)
//! 2. Look at the readiness word for the direction. Not ready: register the
//!    task's waker in the direction's slot, look again (the poller may have
//!    set the bit between the look and the registration), and if still not
//!    ready return `Pending`.
//! 3. Ready: run the syscall. `EINTR`: run it again. `EAGAIN`: clear the
//!    readiness *if its tick is unchanged* and go back to 2; if the tick
//!    moved, a new edge arrived, so go back to 3.
//!
//! The poller sets bits first and takes the waker second; the task registers
//! its waker first and looks at the bits second. `AtomicWaker` orders the two
//! (its `register` and `take` are AcqRel), so one of them sees the other:
//! no lost wake-up.
//!
//! # Short reads
//!
//! A stream read (`Registration::poll_read_stream`, used by `TcpStream` and
//! `UnixStream`) that returns fewer bytes than the buffer holds, but not 0,
//! has drained the socket's receive queue: the kernel copies all it has up
//! to the buffer's length. So it clears the read readiness right away (the
//! same tick-checked clear as after `EAGAIN`, so an edge delivered since the
//! look is kept), and the next read waits for the next edge instead of
//! paying a `read` system call that fails with `EAGAIN`. Edge-triggered
//! epoll reports every arrival of new data as a new edge, so nothing is
//! missed; an end of file that came with the data is kept by `READ_CLOSED`
//! (`state.rs`). This is tokio's rule (`PollEvented::poll_read`, tokio
//! issue 5866). On a request/response server it is one `read` per request
//! instead of two: measured on the plain HTTP bench, `recvfrom` calls per
//! request went from 2.0 to 1.0 (tokio: 1.0). Datagram and accept calls do
//! not get this rule (a short datagram says nothing about the queue).
//!
//! One reader waker and one writer waker: one task may read while another
//! writes (the owned halves of a stream). Two tasks reading the same socket
//! at once is allowed but the last to register is the one woken (as in
//! tokio); the other is woken only by its own next poll.
use crate::driver::{interest_of, Handle, Inner};
use crate::state::{Cleared, Interest, Observed, Readiness, ReadyEvent};
use futures::task::AtomicWaker;
use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Weak};
use std::task::{ready, Context, Poll, Waker};

/// Per-registration state shared by the poller and the socket.
pub(crate) struct ScheduledIo {
    readiness: Readiness,
    reader: AtomicWaker,
    writer: AtomicWaker,
}

impl ScheduledIo {
    pub(crate) fn new() -> ScheduledIo {
        ScheduledIo {
            readiness: Readiness::new(),
            reader: AtomicWaker::new(),
            writer: AtomicWaker::new(),
        }
    }

    /// The poller delivers an epoll event: set bits, collect wakers.
    pub(crate) fn dispatch(&self, events: u32, wakers: &mut Vec<Waker>) {
        let (read, write) = interest_of(events);
        let interest = match (read, write) {
            (true, true) => Interest::READ.with(Interest::WRITE),
            (true, false) => Interest::READ,
            (false, true) => Interest::WRITE,
            (false, false) => return,
        };
        // One RMW for both directions (one tick).
        let closed = events as i32 & (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) != 0;
        self.readiness.transition_to_event(interest, closed);
        if read {
            wakers.extend(self.reader.take());
        }
        if write {
            wakers.extend(self.writer.take());
        }
    }

    /// The reactor is dropped: mark shut down, collect (to drop) the wakers.
    pub(crate) fn shutdown(&self, wakers: &mut Vec<Waker>) {
        self.readiness.transition_to_shutdown();
        wakers.extend(self.reader.take());
        wakers.extend(self.writer.take());
    }

    fn slot(&self, interest: Interest) -> &AtomicWaker {
        if interest == Interest::READ {
            &self.reader
        } else {
            &self.writer
        }
    }
}

fn shutdown_error() -> io::Error {
    io::Error::other("the handoff reactor this I/O object was registered with has shut down")
}

/// A descriptor registered with a reactor. Deregisters on drop.
pub(crate) struct Registration {
    fd: RawFd,
    key: usize,
    sio: Arc<ScheduledIo>,
    driver: Weak<Inner>,
}

impl Registration {
    /// Registers `fd` with the reactor current on this thread.
    pub(crate) fn new(fd: RawFd) -> io::Result<Registration> {
        let handle = Handle::try_current().ok_or_else(|| {
            io::Error::other(
                "there is no handoff reactor on this thread: create I/O objects inside \
                 Runtime::block_on, a task, or handoff_reactor::block_on",
            )
        })?;
        Self::with_handle(fd, &handle)
    }

    pub(crate) fn with_handle(fd: RawFd, handle: &Handle) -> io::Result<Registration> {
        let (key, sio) = handle.inner.register(fd)?;
        Ok(Registration {
            fd,
            key,
            sio,
            driver: handle.downgrade(),
        })
    }

    /// Waits until the direction is reported ready (does not clear it).
    pub(crate) fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
    ) -> Poll<io::Result<ReadyEvent>> {
        match self.sio.readiness.observe(interest) {
            Observed::Ready(ev) => return Poll::Ready(Ok(ev)),
            Observed::Shutdown => return Poll::Ready(Err(shutdown_error())),
            Observed::NotReady => {}
        }
        self.sio.slot(interest).register(cx.waker());
        match self.sio.readiness.observe(interest) {
            Observed::Ready(ev) => Poll::Ready(Ok(ev)),
            Observed::Shutdown => Poll::Ready(Err(shutdown_error())),
            Observed::NotReady => Poll::Pending,
        }
    }

    /// Clears readiness seen in `ev` (after `EAGAIN`).
    pub(crate) fn clear(&self, ev: ReadyEvent) -> Cleared {
        self.sio.readiness.transition_to_cleared(ev)
    }

    /// Clears the read readiness seen in `ev` after a short stream read.
    fn clear_drained(&self, ev: ReadyEvent) -> Cleared {
        self.sio.readiness.transition_to_drained(ev)
    }

    /// Runs `op` until it does not fail with `EAGAIN`/`EINTR`, waiting for
    /// readiness in between (see the module header).
    pub(crate) fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
        op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.poll_io_then(cx, interest, op, |_| false)
    }

    /// `poll_io` for a stream read into a buffer of `len` bytes: a short
    /// read (`0 < n < len`) clears the read readiness (module header,
    /// "Short reads").
    pub(crate) fn poll_read_stream(
        &self,
        cx: &mut Context<'_>,
        len: usize,
        op: impl FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        self.poll_io_then(cx, Interest::READ, op, |&n| n > 0 && n < len)
    }

    /// The loop of `poll_io`; `drained(&result)` says that a successful
    /// call left nothing to do until the next edge.
    fn poll_io_then<R>(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
        mut op: impl FnMut() -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> Poll<io::Result<R>> {
        ready!(crate::coop::poll_proceed(cx));
        loop {
            let ev = ready!(self.poll_ready(cx, interest))?;
            loop {
                match op() {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if self.clear(ev) == Cleared::NewEdge {
                            // A new edge since we looked: the bit stays; look again.
                        }
                        break;
                    }
                    Ok(r) => {
                        if drained(&r) {
                            // A new edge since we looked keeps the bit (the
                            // clear is tick-checked): nothing to do then.
                            let _: Cleared = self.clear_drained(ev);
                        }
                        return Poll::Ready(Ok(r));
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        }
    }

    /// Deregisters now (also done by drop); reports `epoll_ctl`'s error.
    pub(crate) fn deregister(&mut self) -> io::Result<()> {
        let fd = std::mem::replace(&mut self.fd, -1);
        if fd < 0 {
            return Ok(());
        }
        match self.driver.upgrade() {
            Some(inner) => inner.deregister(fd, self.key, &self.sio),
            None => Ok(()),
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Errors (the fd was closed behind our back: EBADF) are ignored:
        // the slab entry is gone either way and the kernel drops closed fds
        // from the epoll set by itself.
        let _ = self.deregister();
    }
}
