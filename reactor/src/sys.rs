//! The one place where the reactor talks to the kernel.
//!
//! Every system call goes through [`syscall!`](crate::syscall), which turns
//! `-1` into [`io::Error::last_os_error`]. Calls that the kernel may interrupt
//! with `EINTR` and that are safe to repeat are wrapped in [`retry_eintr`];
//! `close` is never retried (on Linux the descriptor is gone even when `close`
//! reports `EINTR`, and repeating it could close a number reused by another
//! thread).
//!
//! The thin wrappers below keep the `unsafe` for each call in one spot with
//! its argument: callers in the driver work with `OwnedFd`s and slices.
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Calls a libc function and turns a `-1` return into `io::Error::last_os_error()`.
///
/// The expansion contains the `unsafe` block; the caller writes the
/// `// SAFETY:` argument above the macro call.
#[macro_export]
#[doc(hidden)]
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: the macro's caller argues the call's preconditions in a
        // `// SAFETY:` comment above the `syscall!` call (every use does).
        let res = unsafe { ::libc::$fn($($arg),*) };
        if res == -1 {
            Err(::std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

/// Repeats `f` while it fails with `EINTR`.
pub(crate) fn retry_eintr<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// `epoll_create1(EPOLL_CLOEXEC)`.
pub(crate) fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: no pointers; the flag is a valid epoll_create1 flag.
    let fd = syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?;
    // SAFETY: the kernel just handed us this descriptor; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)`.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: no pointers; valid flags.
    let fd = syscall!(eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK))?;
    // SAFETY: a fresh descriptor that we alone own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `epoll_ctl(epfd, op, fd, {events, data})`.
pub(crate) fn epoll_ctl(
    epfd: &OwnedFd,
    op: libc::c_int,
    fd: RawFd,
    events: u32,
    data: u64,
) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: data };
    // SAFETY: `ev` is a valid epoll_event that outlives the call; the kernel
    // validates both descriptors and reports EBADF/ENOENT/EEXIST as errors.
    syscall!(epoll_ctl(epfd.as_raw_fd(), op, fd, &mut ev))?;
    Ok(())
}

/// Adds 1 to an eventfd counter. `EAGAIN` (the counter is at its maximum,
/// which takes 2^64 - 2 unread writes) means a wake is already pending, so it
/// is success too.
pub(crate) fn eventfd_write(fd: &OwnedFd) -> io::Result<()> {
    let one: u64 = 1;
    let res = retry_eintr(|| {
        // SAFETY: writes 8 bytes from a live u64, as eventfd requires.
        syscall!(write(fd.as_raw_fd(), (&one as *const u64).cast(), 8))
    });
    match res {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether `epoll_pwait2` is known to be missing (ENOSYS, or refused by a
/// seccomp filter); then we fall back to `epoll_pwait` and whole milliseconds.
static NO_PWAIT2: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Waits for events on `epfd`, at most `timeout` (`None`: forever), filling
/// `events`. Returns how many entries were filled. `EINTR` is reported as 0
/// events (the caller's loop simply turns again), not retried, because the
/// timeout would have to be recomputed.
///
/// `epoll_pwait2` takes a `timespec`, so timers keep nanosecond precision
/// without a timerfd; on kernels before 5.11 the timeout is rounded *up* to
/// whole milliseconds so that no timer ever fires early.
pub(crate) fn epoll_wait(
    epfd: &OwnedFd,
    events: &mut [libc::epoll_event],
    timeout: Option<Duration>,
) -> io::Result<usize> {
    use std::sync::atomic::Ordering::Relaxed;
    let max = events.len().min(libc::c_int::MAX as usize) as libc::c_int;
    let res = if !NO_PWAIT2.load(Relaxed) {
        // Relaxed: a hint; racing threads at worst both try pwait2 once.
        let ts = timeout.map(|d| libc::timespec {
            tv_sec: d.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
            tv_nsec: d.subsec_nanos() as libc::c_long,
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `events` is a live buffer of `max` entries; `ts_ptr` is
        // null or points at a live timespec; a null sigmask means "keep the
        // mask". The raw syscall avoids needing glibc >= 2.35.
        let r = syscall!(syscall(
            libc::SYS_epoll_pwait2,
            epfd.as_raw_fd(),
            events.as_mut_ptr(),
            max,
            ts_ptr,
            std::ptr::null::<libc::sigset_t>(),
            0usize
        ));
        match r {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) => {
                NO_PWAIT2.store(true, Relaxed);
                None
            }
            other => Some(other.map(|n| n as usize)),
        }
    } else {
        None
    };
    let res = match res {
        Some(r) => r,
        None => {
            let ms = match timeout {
                None => -1,
                Some(d) => {
                    // Round up: a 0.2 ms timer must wait 1 ms, never 0.
                    let ms = d.as_nanos().div_ceil(1_000_000);
                    ms.min(libc::c_int::MAX as u128) as libc::c_int
                }
            };
            // SAFETY: as above; epoll_pwait with a null sigmask is epoll_wait.
            syscall!(epoll_pwait(
                epfd.as_raw_fd(),
                events.as_mut_ptr(),
                max,
                ms,
                std::ptr::null()
            ))
            .map(|n| n as usize)
        }
    };
    match res {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        other => other,
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Both wait paths: `epoll_pwait2`, and the millisecond fallback, whose
    /// rounding must be upwards (a timer never fires early).
    #[test]
    fn epoll_wait_never_returns_before_its_timeout() {
        let ep = epoll_create().unwrap();
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 4];
        for force_fallback in [false, true] {
            if force_fallback {
                NO_PWAIT2.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            for us in [100u64, 1_200, 2_500] {
                let d = Duration::from_micros(us);
                let t = Instant::now();
                let n = epoll_wait(&ep, &mut events, Some(d)).unwrap();
                // Only an EINTR may return early, and no signal is sent to
                // this test.
                assert!(
                    t.elapsed() >= d,
                    "epoll_wait({d:?}) returned after {:?} (fallback: {force_fallback})",
                    t.elapsed()
                );
                assert_eq!(n, 0);
            }
        }
    }
}
