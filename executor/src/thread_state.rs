//! The monitor's look at the thread inside a late call: is it blocked in
//! the kernel, computing, or only waiting for a CPU?
//!
//! ## Why look
//! A retake helps when the thread in the call leaves its slot's tasks
//! nobody to run them while it is *blocked* in the kernel (state `S` or
//! `D`: a read, a sleep, a lock) or *computing* (on a CPU for the whole
//! call: parallelism helps). It does not help when the thread is runnable
//! but *waiting for a CPU*: the kernel preempted it in the middle of a
//! short call (on a shared 2-vCPU VM, a 200 ns `getpid` preempted by a
//! compiler for a whole time slice, milliseconds). The kernel moves a
//! waiting thread to a CPU that frees up by itself, and if none is free, a
//! new thread would wait for one too; but the retake costs the caller its
//! slot (a slow exit), may start a thread, and teaches call-site learning
//! (`handoff-blocking`'s `learn.rs`) that the site blocks, after which
//! every call there hands its slot off. Measured before this look: the
//! 64-task `getpid` benchmark retook 19 calls and started 2–6 threads.
//!
//! ## Protocol (the monitor, for a call Go's retake rule would retake)
//! 1. The thread that runs a slot's core published its id in the slot when
//!    it took the core (`Slot::thread`, written at Idle -> Running, never on
//!    the `blocking` fast path).
//! 2. Read the thread's state (`/proc/self/task/<tid>/stat`, field 3, from
//!    a descriptor opened once per thread and read with `pread`). Not `R`:
//!    it is blocked (or stopped): retake.
//! 3. `R` is "on a CPU or waiting for one". Sample the thread's CPU clock
//!    (`clock_gettime` on its `CPUCLOCK_SCHED` clock: up to date even while
//!    it runs), yield and look again at once (the monitor's own wake-up may
//!    have preempted the thread: measured, a quarter of the 20 ms sleeps of
//!    the hand-off benchmark were still `R` at the first look, about to
//!    block), then after `retake_after`, doubling up to
//!    `WAITING_RECHECK_MAX` while the clock stands still. The call is
//!    computing once it used `PROGRESS` (100 µs) of CPU since the first
//!    sample: retake. A look that finds it blocked by then retakes too.
//! 4. Whatever the looks say, the call is retaken once it lasted
//!    `LONG_CALL` (10 ms, Go's bound): a thread starved that long still
//!    gives its slot up (bounded starvation of the slot's tasks).
//! 5. No `/proc` (not mounted, `EACCES` in a sandbox), or the thread is
//!    gone: the look answers `Unknown` and the monitor applies the rule it
//!    had before (retake a call seen past its due time by two rounds).
//!
//! ## Why it is correct
//! The look only delays a retake, by at most `LONG_CALL`; it never
//! decides who owns the slot (the status CAS still does). The tid is a
//! hint: read `Relaxed` after the `Acquire` load of the word that showed
//! the call, it names the thread that entered the call or one that ran the
//! slot after it (then the call's tick has changed and the retake CAS
//! fails anyway). A tid reused by a new thread is caught by the cached
//! descriptor: it refers to the old, dead task, whose reads fail (`ESRCH`),
//! and the descriptor is opened again.
//!
//! ## Costs, measured (2-vCPU VM, loaded)
//! `pread` of `stat` 7–9 µs, of `schedstat` 2–3 µs; the CPU clock 0.7–1.2
//! µs. The state is read once per late call (every retake pays it: a call
//! that blocks is retaken about 8 µs later than before), the clock once per
//! further look at a waiting thread.
//!
//! ## Rejected
//! - `schedstat` alone (cheaper): its run time lags by up to a tick for a
//!   running thread, and neither it nor the CPU clock tells a blocked thread
//!   from one waiting for a CPU (both stand still).
//! - `wchan` / `syscall` (2–5 µs): "0" / "running" for both running and
//!   waiting threads, so they replace the state read only for `R`, and
//!   cost as much for a blocked thread.
//! - The thread opening its own `/proc/thread-self/stat` at start: the
//!   descriptor would close when the thread exits, while the monitor may be
//!   reading it (a reused descriptor number reads another file).
//! - Timing the call's CPU from `enter` (a clock read on the fast path).
use crate::sys;
use std::fs::File;
use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::time::Duration;

/// CPU time a call must use, since the monitor first found its thread
/// runnable, to count as computing. Not a few µs, although a short call
/// needs 0.2 µs: a thread gets charged whatever the kernel does on its CPU
/// meanwhile (this kernel does not account interrupt time apart), and in
/// the 64-task `getpid` benchmark threads stuck in one `getpid` with no
/// switch (schedstat: no new time slice, no run delay) gained 2–85 µs of
/// CPU between looks; a 2 µs bound retook 5–27 calls a run, 50 µs still
/// 1–4. A computing call passes 100 µs about 100 µs after the first look,
/// so it is retaken 120–160 µs after entry instead of 20 µs.
pub(crate) const PROGRESS: Duration = Duration::from_micros(100);

/// Longest gap between two looks at a thread waiting for a CPU: a waiting
/// thread usually gets a CPU within one CFS slice (1–4 ms on 2 CPUs), and
/// doubling from `retake_after` reaches 1 ms after 6 looks, so a call that
/// starts computing after a long wait is still retaken within a millisecond
/// of it; about 16 looks (each ≤ 10 µs of the monitor's CPU) before
/// `LONG_CALL` retakes a thread starved for good.
pub(crate) const WAITING_RECHECK_MAX: Duration = Duration::from_millis(1);

/// Descriptors kept open: a few per slot covers the threads that take
/// turns on the slots; past it the least recently used is closed.
const CACHE: usize = 32;

/// What a look found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Look {
    /// Not on a CPU and not waiting for one (`S`, `D`, stopped): retake.
    Blocked,
    /// Runnable and its CPU clock reads `cpu_ns`: on a CPU or waiting.
    Runnable { cpu_ns: u64 },
    /// No answer (no `/proc`, the thread is gone): use the old rule.
    Unknown,
}

/// The samples of a call found runnable (kept per slot by the monitor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sample {
    /// Its CPU clock at the first look.
    pub(crate) cpu_ns: u64,
    /// Its CPU clock at the latest look.
    pub(crate) last_ns: u64,
    /// Looks with no progress so far (the next one waits
    /// `retake_after << looks`).
    pub(crate) looks: u32,
}

/// What to do with a late call the retake rule would retake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Retake now (blocked or computing).
    Retake,
    /// Runnable, first look: let the CPU go (the monitor may have woken on
    /// the thread's CPU and preempted it) and look again at once.
    Yield,
    /// Runnable, not computing yet: look again after this long.
    Wait(Duration),
    /// The look had no answer: apply the old rule.
    Unknown,
}

/// Steps 2–3 of the protocol, from a look and the call's samples
/// (`first`, updated here). Pure, so the rule is tested without threads.
///
/// A thread that progressed since the previous look (it has a CPU, at
/// least now and then) is looked at again after `retake_after`, to retake
/// it soon after it passes `PROGRESS`; one that stood still (waiting for a
/// CPU) after doubling gaps.
pub(crate) fn judge(look: Look, first: &mut Option<Sample>, retake_after: Duration) -> Verdict {
    match look {
        Look::Unknown => Verdict::Unknown,
        Look::Blocked => Verdict::Retake,
        Look::Runnable { cpu_ns } => match first {
            Some(s) if cpu_ns.saturating_sub(s.cpu_ns) >= PROGRESS.as_nanos() as u64 => {
                Verdict::Retake
            }
            Some(s) if cpu_ns > s.last_ns => {
                s.last_ns = cpu_ns;
                Verdict::Wait(backoff(retake_after, 0))
            }
            Some(s) => {
                s.looks += 1;
                Verdict::Wait(backoff(retake_after, s.looks))
            }
            None => {
                *first = Some(Sample {
                    cpu_ns,
                    last_ns: cpu_ns,
                    looks: 0,
                });
                Verdict::Yield
            }
        },
    }
}

/// `retake_after << looks`, at most `WAITING_RECHECK_MAX`.
fn backoff(retake_after: Duration, looks: u32) -> Duration {
    let base = retake_after.max(Duration::from_micros(1));
    base.saturating_mul(1u32 << looks.min(16))
        .min(WAITING_RECHECK_MAX)
}

struct Entry {
    tid: u32,
    file: File,
    used: u64,
}

/// The monitor's descriptors on its workers' `/proc/self/task/<tid>/stat`.
/// Owned by the monitor thread alone.
pub(crate) struct Probe {
    files: Vec<Entry>,
    clock: u64,
    /// Cleared for good when `/proc` is missing or forbidden.
    enabled: bool,
}

impl Probe {
    pub(crate) fn new() -> Probe {
        // One look at our own thread decides whether `/proc` works here.
        let enabled = File::open("/proc/thread-self/stat").is_ok();
        Probe {
            files: Vec::new(),
            clock: 0,
            enabled,
        }
    }

    /// Looks at thread `tid` (0: unknown thread).
    pub(crate) fn look(&mut self, tid: u32) -> Look {
        if !self.enabled || tid == 0 {
            return Look::Unknown;
        }
        match self.state(tid) {
            Some(b'R') => match sys::thread_cpu_time_ns(tid) {
                Ok(cpu_ns) => Look::Runnable { cpu_ns },
                Err(_) => Look::Unknown,
            },
            Some(_) => Look::Blocked,
            None => Look::Unknown,
        }
    }

    /// Looks at thread `tid` again, cheaply: its CPU clock first (a call
    /// that progressed is computing whatever its state now), the state
    /// only if it did not progress since `first`.
    pub(crate) fn look_again(&mut self, tid: u32, first: Sample) -> Look {
        if !self.enabled || tid == 0 {
            return Look::Unknown;
        }
        match sys::thread_cpu_time_ns(tid) {
            Ok(cpu_ns) if cpu_ns.saturating_sub(first.cpu_ns) >= PROGRESS.as_nanos() as u64 => {
                Look::Runnable { cpu_ns }
            }
            Ok(_) => self.look(tid),
            Err(_) => Look::Unknown,
        }
    }

    /// The state letter of thread `tid` (`None`: no answer).
    fn state(&mut self, tid: u32) -> Option<u8> {
        let mut buf = [0u8; 512];
        for _attempt in 0..2 {
            let i = self.file_of(tid)?;
            match sys::pread0(self.files[i].file.as_fd(), &mut buf) {
                Ok(n) => return parse_state(&buf[..n]),
                Err(_) => {
                    // ESRCH: the descriptor names a task that exited (the
                    // tid may have been reused): open it again, once.
                    self.files.swap_remove(i);
                }
            }
        }
        None
    }

    /// The cache index of `tid`'s descriptor, opening it if needed.
    fn file_of(&mut self, tid: u32) -> Option<usize> {
        self.clock += 1;
        if let Some(i) = self.files.iter().position(|e| e.tid == tid) {
            self.files[i].used = self.clock;
            return Some(i);
        }
        let file = match File::open(format!("/proc/self/task/{tid}/stat")) {
            Ok(f) => f,
            Err(e) => {
                if e.kind() == ErrorKind::PermissionDenied {
                    self.enabled = false;
                }
                // ENOENT: the thread is gone (its slot moved on).
                return None;
            }
        };
        if self.files.len() >= CACHE {
            let lru = (0..self.files.len()).min_by_key(|&i| self.files[i].used)?;
            self.files.swap_remove(lru);
        }
        self.files.push(Entry {
            tid,
            file,
            used: self.clock,
        });
        Some(self.files.len() - 1)
    }
}

/// Field 3 of a `stat` line: the letter after the `)` that closes the
/// command name (which may itself hold spaces and parentheses).
pub(crate) fn parse_state(stat: &[u8]) -> Option<u8> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    match stat.get(close + 1..close + 3)? {
        [b' ', s] if s.is_ascii_alphabetic() => Some(*s),
        _ => None,
    }
}

/// For tests: the state of thread `tid` as `Probe::look` sees it.
#[cfg(test)]
pub(crate) fn look_once(tid: u32) -> std::io::Result<Look> {
    let mut p = Probe::new();
    if !p.enabled {
        return Err(std::io::Error::from(ErrorKind::Unsupported));
    }
    Ok(p.look(tid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_state_skips_the_command_name() {
        assert_eq!(parse_state(b"12 (a b) S 1 2 3"), Some(b'S'));
        assert_eq!(parse_state(b"12 (x) (y)) R 1 2"), Some(b'R'));
        assert_eq!(parse_state(b"12 (worker) D 0"), Some(b'D'));
        assert_eq!(parse_state(b"12 (worker)"), None);
        assert_eq!(parse_state(b""), None);
    }

    #[test]
    fn judge_retakes_blocked_and_computing_and_waits_on_a_waiting_thread() {
        let ra = Duration::from_micros(20);
        let mut first = None;
        assert_eq!(judge(Look::Blocked, &mut first, ra), Verdict::Retake);
        assert_eq!(judge(Look::Unknown, &mut first, ra), Verdict::Unknown);
        // Runnable: sampled, then looked at again with doubling gaps while
        // its CPU clock stands still (waiting for a CPU).
        let r = |cpu_ns| Look::Runnable { cpu_ns };
        assert_eq!(judge(r(1000), &mut first, ra), Verdict::Yield);
        assert_eq!(judge(r(1000), &mut first, ra), Verdict::Wait(ra * 2));
        assert_eq!(judge(r(1000), &mut first, ra), Verdict::Wait(ra * 4));
        assert_eq!(judge(r(1000), &mut first, ra), Verdict::Wait(ra * 8));
        for _ in 0..20 {
            assert!(
                matches!(judge(r(1000), &mut first, ra), Verdict::Wait(d) if d <= WAITING_RECHECK_MAX)
            );
        }
        // Some progress, less than PROGRESS (a switch or an interrupt
        // charged to it): looked at again soon, not retaken.
        let some = 1000 + PROGRESS.as_nanos() as u64 / 2;
        assert_eq!(judge(r(some), &mut first, ra), Verdict::Wait(ra));
        // It used PROGRESS since the first look: computing.
        let later = 1000 + PROGRESS.as_nanos() as u64;
        assert_eq!(judge(r(later), &mut first, ra), Verdict::Retake);
        // A thread found blocked on a later look is retaken too.
        assert_eq!(judge(Look::Blocked, &mut first, ra), Verdict::Retake);
    }

    /// Waits (a bounded number of tries) until `tid` looks like `want`.
    fn eventually(tid: u32, want: impl Fn(Look) -> bool) -> Look {
        let mut last = Look::Unknown;
        for _ in 0..10_000 {
            last = look_once(tid).unwrap();
            if want(last) {
                return last;
            }
            std::thread::yield_now();
        }
        last
    }

    #[test]
    fn a_thread_blocked_in_recv_looks_blocked_and_a_spinning_one_runnable() {
        if look_once(sys::gettid()).is_err() {
            return; // no /proc here: the monitor falls back to its old rule
        }
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let blocked = std::thread::spawn(move || {
            tid_tx.send(sys::gettid()).unwrap();
            let _ = go_rx.recv_timeout(Duration::from_secs(30));
        });
        let tid = tid_rx.recv().unwrap();
        let seen = eventually(tid, |l| l == Look::Blocked);
        go_tx.send(()).unwrap();
        blocked.join().unwrap();
        assert_eq!(seen, Look::Blocked, "a thread in recv is blocked");

        // The current thread is running: `R`, and its clock moves on.
        let me = sys::gettid();
        let Look::Runnable { cpu_ns: a } = look_once(me).unwrap() else {
            panic!("the running thread did not look runnable");
        };
        let spin_until = sys::thread_cpu_time_ns(me).unwrap() + 1_000_000;
        while sys::thread_cpu_time_ns(me).unwrap() < spin_until {
            std::hint::spin_loop();
        }
        let Look::Runnable { cpu_ns: b } = look_once(me).unwrap() else {
            panic!("the running thread did not look runnable");
        };
        assert!(b >= a + 1_000_000, "CPU clock {a} -> {b}");
    }

    #[test]
    fn a_thread_that_exited_has_no_answer() {
        if look_once(sys::gettid()).is_err() {
            return;
        }
        let mut p = Probe::new();
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            tid_tx.send(sys::gettid()).unwrap();
            let _ = go_rx.recv_timeout(Duration::from_secs(30));
        });
        let tid = tid_rx.recv().unwrap();
        // The descriptor is opened (and cached) while the thread lives...
        assert_ne!(p.look(tid), Look::Unknown);
        go_tx.send(()).unwrap();
        t.join().unwrap();
        // ... and names the dead task afterwards: no answer, no panic.
        // (Linux hands out pids cyclically: the tid is not reused this soon.)
        assert_eq!(p.look(tid), Look::Unknown);
        assert_eq!(p.look(0), Look::Unknown);
    }
}
