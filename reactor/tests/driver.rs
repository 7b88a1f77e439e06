//! The driver's contract: wakes, turns, registrations, shutdown.
mod common;

use common::{counting_waker, watchdog};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use handoff_reactor::net::{Async, UnixStream};
use handoff_reactor::{block_on, Handle};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Barrier};
use std::task::{Context, Poll};
use std::time::Duration;

fn pipe() -> (File, File) {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a live array of two ints for pipe2 to fill.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors are fresh and owned by nobody else.
    unsafe {
        (
            File::from(OwnedFd::from_raw_fd(fds[0])),
            File::from(OwnedFd::from_raw_fd(fds[1])),
        )
    }
}

/// A wake from another thread ends a `turn(None)` that has nothing else to
/// wait for, whether it lands before the turn blocks or while it blocks.
#[test]
fn wake_from_another_thread_interrupts_a_blocked_turn() {
    let _w = watchdog("wake_from_another_thread", 30);
    let h = Handle::new().unwrap();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let h2 = h.clone();
    const ROUNDS: usize = 200;
    let poller = std::thread::spawn(move || {
        let mut p = h2.try_lock_poller().expect("the poller lock is free");
        for _ in 0..ROUNDS {
            ready_tx.send(()).unwrap();
            p.turn(None).unwrap();
            done_tx.send(()).unwrap();
        }
    });
    for i in 0..ROUNDS {
        ready_rx.recv().unwrap();
        // Every other round, give the poller time to really block first
        // (not a correctness requirement: both orders must work).
        if i % 2 == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
        h.wake();
        // The turn must return after our wake: the watchdog fails the test
        // if a wake is ever lost.
        done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a wake was lost: turn(None) did not return");
    }
    poller.join().unwrap();
}

#[test]
fn zero_timeout_turn_never_blocks_and_poller_lock_is_exclusive() {
    let _w = watchdog("zero_timeout", 30);
    let h = Handle::new().unwrap();
    let mut p = h.try_lock_poller().unwrap();
    assert!(h.try_lock_poller().is_none(), "two pollers at once");
    for _ in 0..100 {
        assert_eq!(p.turn(Some(Duration::ZERO)).unwrap(), 0);
    }
    drop(p);
    assert!(h.try_lock_poller().is_some());
}

#[test]
fn current_panics_with_a_helpful_message_outside_a_runtime() {
    let err = std::panic::catch_unwind(Handle::current).expect_err("no reactor here");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("block_on"), "unhelpful panic message: {msg}");
    let h = Handle::new().unwrap();
    {
        let _g = h.enter();
        assert!(Handle::try_current().is_some());
    }
    assert!(
        Handle::try_current().is_none(),
        "enter guard did not restore"
    );
}

#[test]
fn async_pipe_moves_more_than_a_pipe_buffer() {
    let _w = watchdog("async_pipe", 30);
    block_on(async {
        let (r, w) = pipe();
        let (mut r, mut w) = (Async::new(r)?, Async::new(w)?);
        // 1 MiB through a 64 KiB pipe: the writer hits EAGAIN many times.
        let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
        let writer = async {
            w.write_all(&data).await?;
            drop(w);
            Ok::<(), io::Error>(())
        };
        let reader = async {
            let mut got = Vec::new();
            r.read_to_end(&mut got).await?;
            Ok::<_, io::Error>(got)
        };
        let ((), got) = futures::future::try_join(writer, reader).await?;
        assert!(got == data, "pipe data corrupted");
        Ok::<(), io::Error>(())
    })
    .unwrap();
}

#[test]
fn async_eventfd_read_with() {
    let _w = watchdog("async_eventfd", 30);
    block_on(async {
        // SAFETY: eventfd takes no pointers.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        assert!(fd >= 0);
        // SAFETY: fresh descriptor, owned by nobody else.
        let efd = Async::new(unsafe { OwnedFd::from_raw_fd(fd) })?;
        let raw = efd.as_raw_fd();
        std::thread::spawn(move || {
            let v: u64 = 5;
            // SAFETY: writes 8 bytes from a live u64 to an eventfd that the
            // test keeps open until the read below returns.
            unsafe { libc::write(raw, (&v as *const u64).cast(), 8) };
        });
        let got = efd
            .read_with(|fd| {
                let mut v: u64 = 0;
                // SAFETY: reads 8 bytes into a live u64.
                let n = unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(v)
                }
            })
            .await?;
        assert_eq!(got, 5);
        Ok::<(), io::Error>(())
    })
    .unwrap();
}

/// A descriptor number we do not own (closing is the test's business).
#[derive(Debug)]
struct Raw(RawFd);
impl AsRawFd for Raw {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

#[test]
fn registering_a_closed_fd_is_an_error() {
    block_on(async {
        let (r, _w) = pipe();
        let fd = r.as_raw_fd();
        drop(r);
        // Straight to epoll_ctl (no fcntl first): EBADF, as an io::Error.
        // (A parallel test could reuse the number; then registration works
        // and there is nothing to check, so only the error path is asserted.)
        if let Err(e) = Async::new_nonblocking(Raw(fd)) {
            assert_eq!(e.raw_os_error(), Some(libc::EBADF));
        }
        let err = Async::new_nonblocking(Raw(-1)).expect_err("fd -1 cannot be registered");
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    });
}

/// Dropping the last `Handle` drops the wakers held by registrations and
/// timers (no leak, no cycle), and the I/O objects then report an error.
#[test]
fn dropping_the_reactor_drops_registered_wakers() {
    let _w = watchdog("dropping_the_reactor", 30);
    let h = Handle::new().unwrap();
    let g = h.enter();
    let (a, _b) = UnixStream::pair().unwrap();
    let (r, _pw) = pipe();
    let r = Async::new(r).unwrap();
    let mut sleep = handoff_reactor::time::sleep(Duration::from_secs(3600));

    let (waker, _, dropped) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(r.poll_readable(&mut cx).is_pending());
    assert!(std::pin::Pin::new(&mut sleep).poll(&mut cx).is_pending());
    let mut buf = [0u8; 4];
    let mut a = a;
    assert!(std::pin::Pin::new(&mut a)
        .poll_read(&mut cx, &mut buf)
        .is_pending());
    drop(waker);
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        0,
        "the reactor must hold the waker"
    );
    drop(g);
    drop(h);
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "the reactor's drop must drop the wakers it held"
    );
    let noop = futures::task::noop_waker();
    let mut cx = Context::from_waker(&noop);
    match r.poll_readable(&mut cx) {
        Poll::Ready(Err(_)) => {}
        other => panic!("expected an error after shutdown, got {other:?}"),
    }
    drop(sleep);
    drop(r);
    drop(a);
}

use futures::io::AsyncRead;
use std::future::Future;

/// Dropping a socket deregisters it and drops the waker it held at once.
#[test]
fn dropping_a_socket_drops_its_waker() {
    let h = Handle::new().unwrap();
    let _g = h.enter();
    let (r, _pw) = pipe();
    let r = Async::new(r).unwrap();
    let (waker, _, dropped) = counting_waker();
    assert!(r
        .poll_readable(&mut Context::from_waker(&waker))
        .is_pending());
    drop(waker);
    assert_eq!(dropped.load(Ordering::SeqCst), 0);
    drop(r);
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "socket drop kept the waker"
    );
}

/// Registrations and timers work from threads other than the poller's.
#[test]
fn registration_from_another_thread_wakes_through_the_poller() {
    let _w = watchdog("registration_other_thread", 30);
    let h = Handle::new().unwrap();
    let (r, mut pw) = pipe();
    let barrier = Arc::new(Barrier::new(2));
    let h2 = h.clone();
    let b2 = barrier.clone();
    let t = std::thread::spawn(move || {
        let _g = h2.enter();
        let r = Async::new(r).unwrap();
        let (waker, c, _d) = counting_waker();
        assert!(r
            .poll_readable(&mut Context::from_waker(&waker))
            .is_pending());
        b2.wait(); // registered; now let the main thread write
        while c.wakes.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        assert!(r.poll_readable(&mut Context::from_waker(&waker)).is_ready());
    });
    let mut p = h.try_lock_poller().unwrap();
    barrier.wait();
    std::io::Write::write_all(&mut pw, b"x").unwrap();
    let mut fired = 0;
    while fired == 0 {
        fired += p.turn(Some(Duration::from_secs(5))).unwrap();
    }
    t.join().unwrap();
}

/// Wakers fired by a turn often call `Handle::wake` (they queue a task).
/// Such a wake is delivered by that turn returning; it must not make the
/// next turn return at once (a spurious turn): the next turn waits its
/// whole timeout.
#[test]
fn wake_from_a_fired_waker_does_not_make_the_next_turn_spurious() {
    let _w = watchdog("wake_in_waker", 30);
    let h = Handle::new().unwrap();
    let _g = h.enter();
    struct WakesReactor(Handle);
    impl std::task::Wake for WakesReactor {
        fn wake(self: Arc<Self>) {
            self.0.wake();
        }
    }
    let waker = std::task::Waker::from(Arc::new(WakesReactor(h.clone())));
    let mut s = handoff_reactor::time::sleep(Duration::from_millis(1));
    assert!(std::pin::Pin::new(&mut s)
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    let mut p = h.try_lock_poller().unwrap();
    let mut fired = 0;
    while fired == 0 {
        fired += p.turn(None).unwrap();
    }
    let d = Duration::from_millis(30);
    let t = std::time::Instant::now();
    assert_eq!(p.turn(Some(d)).unwrap(), 0);
    assert!(
        t.elapsed() >= d,
        "the next turn returned after {:?}: a spurious wake",
        t.elapsed()
    );
}
