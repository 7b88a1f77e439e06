//! The executor's few system calls, each through [`syscall!`] so that `-1`
//! becomes `io::Error::last_os_error()` in one place (mio's `syscall!`).
//!
//! - `futex` wait / wake on one 32-bit word: the parker and the monitor sleep
//!   on it. Chosen over `Mutex` + `Condvar` because a parked thread then costs
//!   one word, an unpark of a thread that is not asleep is one atomic swap
//!   with no system call, and the monitor gets an absolute `CLOCK_MONOTONIC`
//!   deadline (`FUTEX_WAIT_BITSET`) with no rounding to the scheduler tick.
//! - `setpriority(.., 19)` on the monitor thread (see `monitor.rs`).
//! - `sched_getcpu` (vDSO, no system call): the CPU a call was entered on,
//!   for the standby retaker (`standby.rs`).
//! - `prctl(PR_SET_TIMERSLACK, 1)`: the monitor's timed waits would otherwise
//!   be stretched by Linux's default 50 µs timer slack, more than the whole
//!   20 µs retake budget.
//! - `gettid`, `pread` of `/proc/self/task/<tid>/stat` and `clock_gettime`
//!   on another thread's CPU clock: the monitor's look at the thread inside
//!   a late call (`thread_state.rs`).
use std::io;
use std::sync::atomic::AtomicU32;
use std::time::Instant;

/// Calls a libc function and turns `-1` into the thread's last OS error.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: the caller passes arguments that satisfy the system call's
        // contract (checked at each call site's own SAFETY comment).
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

/// Sleeps while `*word == expected`, at most until `deadline` (`None`: no
/// limit). Returns on a wake, a timeout, a changed word or a signal; callers
/// re-check their condition in a loop, so every return is allowed to be
/// spurious.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) {
    let ts;
    let ts_ptr = match deadline {
        None => std::ptr::null(),
        Some(d) => {
            ts = instant_to_timespec(d);
            &ts as *const libc::timespec
        }
    };
    // SAFETY: `word` is a live, aligned u32 for the whole call; `ts_ptr` is
    // null or points at `ts`, which outlives the call. FUTEX_WAIT_BITSET takes
    // an absolute CLOCK_MONOTONIC deadline; the bitset must be non-zero.
    let r = syscall!(syscall(
        libc::SYS_futex,
        word.as_ptr(),
        libc::FUTEX_WAIT_BITSET | libc::FUTEX_PRIVATE_FLAG,
        expected,
        ts_ptr,
        std::ptr::null::<u32>(),
        u32::MAX,
    ));
    // EAGAIN (word changed), ETIMEDOUT and EINTR are all "return and re-check".
    let _ = r;
}

/// Wakes at most `n` threads sleeping in [`futex_wait`] on `word`.
pub(crate) fn futex_wake(word: &AtomicU32, n: i32) {
    // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE only reads the address.
    let r = syscall!(syscall(
        libc::SYS_futex,
        word.as_ptr(),
        libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
        n
    ));
    // A futex wake on a valid address cannot fail; ignore rather than panic.
    let _ = r;
}

/// Converts an `Instant` (CLOCK_MONOTONIC on Linux) to an absolute timespec.
fn instant_to_timespec(deadline: Instant) -> libc::timespec {
    let now = Instant::now();
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists.
    let _ = syscall!(clock_gettime(libc::CLOCK_MONOTONIC, &mut ts));
    let delta = deadline.saturating_duration_since(now);
    let mut sec = ts.tv_sec + delta.as_secs() as libc::time_t;
    let mut nsec = ts.tv_nsec + delta.subsec_nanos() as libc::c_long;
    if nsec >= 1_000_000_000 {
        sec += 1;
        nsec -= 1_000_000_000;
    }
    libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    }
}

/// The calling thread's id (a worker publishes it at start, for the monitor).
pub(crate) fn gettid() -> u32 {
    // SAFETY: gettid has no arguments and cannot fail.
    let tid = unsafe { libc::gettid() };
    tid as u32
}

/// Reads from `fd` at offset 0 into `buf` (a `/proc` file, re-read in
/// place); EINTR is retried.
pub(crate) fn pread0(fd: std::os::fd::BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: `fd` is an open descriptor for the whole call (borrowed);
        // `buf` is valid for writes of `buf.len()` bytes.
        match syscall!(pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)) {
            Ok(n) => return Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The CPU time thread `tid` of this process has used, in nanoseconds:
/// `clock_gettime` on its per-thread `CPUCLOCK_SCHED` clock, which the
/// kernel brings up to date for a thread running right now (unlike
/// `/proc/.../schedstat`, which lags by up to a scheduler tick).
pub(crate) fn thread_cpu_time_ns(tid: u32) -> io::Result<u64> {
    // The kernel's encoding of a thread's CPU clock id (`MAKE_THREAD_CPUCLOCK`
    // in include/linux/posix-timers.h, what glibc's `pthread_getcpuclockid`
    // returns): `~tid << 3 | CPUCLOCK_PERTHREAD_MASK | CPUCLOCK_SCHED`.
    let clock = ((!(tid as libc::clockid_t)) << 3) | 4 | 2;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    loop {
        // SAFETY: `ts` is a valid out-pointer; an invalid clock (a thread
        // that exited) is reported as EINVAL, not undefined behaviour.
        match syscall!(clock_gettime(clock, &mut ts)) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// Puts this thread under `SCHED_BATCH` at its current nice value (the
/// monitor: see "Priority" in its header): its wake-ups never preempt a
/// running thread, yet it keeps a normal thread's share of the CPU.
pub(crate) fn set_batch_policy() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param
    // that the kernel only reads. SCHED_BATCH needs no privilege.
    syscall!(sched_setscheduler(0, libc::SCHED_BATCH, &param)).map(drop)
}

/// Sets this thread's timer slack to 1 ns so timed waits end on time.
pub(crate) fn set_precise_timer_slack() -> io::Result<()> {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and affects only
    // the calling thread.
    syscall!(prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0)).map(drop)
}

/// The CPU this thread runs on now (`None` if the kernel cannot say).
pub(crate) fn current_cpu() -> Option<u32> {
    // SAFETY: sched_getcpu has no arguments or preconditions.
    syscall!(sched_getcpu()).ok().map(|c| c as u32)
}
