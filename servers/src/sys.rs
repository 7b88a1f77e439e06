//! The few raw system calls the servers make, each through `syscall!` so
//! `-1` becomes `io::Error::last_os_error()` and `EINTR` is retried.
use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Calls a libc function; `-1` becomes the OS error, `EINTR` retries.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        loop {
            // SAFETY: each call site passes arguments that satisfy the
            // libc function's contract; see the comment at the call site.
            let res = unsafe { libc::$fn($($arg),*) };
            if res == -1 {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                break Err(err);
            }
            break Ok(res);
        }
    }};
}
pub(crate) use syscall;

/// Sleeps in the kernel for `d` with `nanosleep(2)`: a real blocking system
/// call, unlike `std::thread::sleep` it is the call itself that the HTTP
/// server's `/block` route wants to show. Resumes after a signal with the
/// remaining time.
///
/// # Example
///
/// ```
/// handoff_servers::sys::nanosleep(std::time::Duration::from_micros(10));
/// ```
pub fn nanosleep(d: Duration) {
    let mut req = libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as _,
    };
    loop {
        let mut rem = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: both pointers are to live, properly aligned timespecs.
        let r = unsafe { libc::nanosleep(&req, &mut rem) };
        if r == 0 {
            return;
        }
        // EINTR: continue with what is left; EINVAL cannot happen for a
        // Duration-derived timespec.
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
        req = rem;
    }
}

/// `fdatasync(2)`: flushes a file's data (and the metadata needed to read
/// it back) to stable storage.
///
/// # Errors
///
/// The OS error, e.g. `EIO`.
///
/// # Example
///
/// ```
/// let f = std::fs::File::create(std::env::temp_dir().join("fdatasync-doc")).unwrap();
/// handoff_servers::sys::fdatasync(&f).unwrap();
/// ```
pub fn fdatasync(f: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: the descriptor is owned by `f`, which outlives the call.
    syscall!(fdatasync(f.as_raw_fd())).map(drop)
}

/// CPU time consumed so far by this process (`whole_process`: all its
/// threads, those that ended included) or by the calling thread, from
/// `clock_gettime(CLOCK_PROCESS_CPUTIME_ID / CLOCK_THREAD_CPUTIME_ID)`.
///
/// # Example
///
/// ```
/// let t = handoff_servers::sys::cpu_time(false);
/// let p = handoff_servers::sys::cpu_time(true);
/// assert!(p >= t);
/// ```
pub fn cpu_time(whole_process: bool) -> Duration {
    let clock = if whole_process {
        libc::CLOCK_PROCESS_CPUTIME_ID
    } else {
        libc::CLOCK_THREAD_CPUTIME_ID
    };
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live, writable timespec; the clock id is valid.
    match syscall!(clock_gettime(clock, &mut ts)) {
        Ok(_) => Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32),
        Err(_) => Duration::ZERO,
    }
}
