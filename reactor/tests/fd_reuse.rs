//! The fd-reuse generation test (alone in its binary so no other test
//! allocates descriptors between our close and our reopen).
mod common;

use handoff_reactor::net::Async;
use handoff_reactor::Handle;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::task::Context;
use std::time::Duration;

fn pipe() -> (RawFd, std::fs::File) {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a live array of two ints for pipe2 to fill.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: the write end is fresh and owned by nobody else.
    (
        fds[0],
        std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fds[1]) }),
    )
}

/// A descriptor number whose closing the test controls.
#[derive(Debug)]
struct Raw(RawFd);
impl AsRawFd for Raw {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// A registration whose fd is closed behind the reactor's back (while a dup
/// keeps the open file alive, so epoll keeps reporting it under the OLD
/// token) and whose number and slab key are then reused by a new
/// registration: the late events for the old file must not wake, or mark
/// ready, the new registration.
#[test]
fn late_event_for_closed_fd_does_not_wake_the_registration_reusing_its_number() {
    let _w = common::watchdog("fd_reuse", 30);
    let h = Handle::new().unwrap();
    let _g = h.enter();
    let mut p = h.try_lock_poller().unwrap();

    let (old_r, mut old_w) = pipe();
    let old = Async::new(Raw(old_r)).unwrap();
    // SAFETY: dup takes no pointers.
    let keep = unsafe { libc::dup(old_r) };
    assert!(keep >= 0);
    // SAFETY: closing the number behind the reactor's back is the point of
    // the test; `old` is a `Raw` that will not close it again.
    unsafe { libc::close(old_r) };
    drop(old); // epoll_ctl(DEL) fails with EBADF (ignored); slab entry freed

    let (new_r, mut new_w) = pipe();
    assert_eq!(new_r, old_r, "the new pipe should reuse the closed number");
    let new = Async::new(Raw(new_r)).unwrap();
    let (waker, counter, _dropped) = common::counting_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(new.poll_readable(&mut cx).is_pending());

    // The old file (still open through `keep`) becomes readable: epoll
    // reports it with the old registration's token.
    old_w.write_all(b"late").unwrap();
    let fired = p.turn(Some(Duration::from_millis(50))).unwrap();
    assert_eq!(fired, 0, "a late event for the closed fd fired a waker");
    assert_eq!(counter.wakes.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert!(
        new.poll_readable(&mut cx).is_pending(),
        "the new registration was marked ready by the old file"
    );

    // The new registration still works.
    new_w.write_all(b"fresh").unwrap();
    let mut fired = 0;
    while fired == 0 {
        fired += p.turn(Some(Duration::from_secs(5))).unwrap();
    }
    assert_eq!(counter.wakes.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(new.poll_readable(&mut cx).is_ready());

    drop(new);
    // SAFETY: both numbers are ours to close now.
    unsafe {
        libc::close(new_r);
        libc::close(keep);
    }
}
