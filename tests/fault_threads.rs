//! Faults: the runtime cannot get more threads.
//!
//! - `fault_max_threads_cap`: `max_threads` barely above the slots while
//!   many tasks sit in blocking calls: no more threads than the cap ever
//!   exist, and every task still completes with the threads there are.
//! - `fault_thread_spawn_fails_rlimit_nproc`: in a child process, thread
//!   creation really fails (`clone` returns `EAGAIN`) because
//!   `RLIMIT_NPROC` is 1. The kernel does not enforce `RLIMIT_NPROC` for
//!   root (nor for `CAP_SYS_RESOURCE`/`CAP_SYS_ADMIN`): when run as root the
//!   child first drops to the `nobody` user (uid/gid 65534), which drops
//!   those capabilities, so the limit applies. The runtime must count the
//!   failures and finish the work on the threads it already has.
mod stress_common;

use handoff::Runtime;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use stress_common::{isolated, thread_count, watch, watchdog};

/// Samples `threads_alive` until dropped; returns the peak.
struct Peak {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    t: Option<std::thread::JoinHandle<()>>,
}

impl Peak {
    fn start(h: &handoff::Handle) -> Peak {
        let (h, stop, peak) = (
            h.clone(),
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let (s2, p2) = (stop.clone(), peak.clone());
        let t = std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                p2.fetch_max(h.metrics().threads_alive, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(300));
            }
        });
        Peak {
            stop,
            peak,
            t: Some(t),
        }
    }
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.t.take().unwrap().join().unwrap();
        self.peak.load(Ordering::Relaxed)
    }
}

/// `calls` blocking calls of 1–3 ms and as many plain tasks; all must end.
fn run_work(rt: &Runtime, calls: u64) -> u64 {
    rt.block_on(async move {
        let mut hs = Vec::new();
        for i in 0..calls {
            hs.push(handoff::spawn(async move {
                handoff::blocking(move || {
                    std::thread::sleep(Duration::from_millis(1 + i % 3));
                    i
                })
                .await
            }));
            hs.push(handoff::spawn(async move {
                handoff::yield_now().await;
                i
            }));
        }
        let mut sum = 0;
        for h in hs {
            sum += h.await.unwrap();
        }
        sum
    })
}

#[test]
fn fault_max_threads_cap() {
    watchdog(60, "max_threads at the cap", || {
        const CAP: usize = 4;
        let rt = Runtime::builder()
            .worker_threads(2)
            .max_threads(CAP)
            .build()
            .unwrap();
        let _w = watch(rt.handle());
        let peak = Peak::start(rt.handle());
        let sum = run_work(&rt, 100);
        let peak = peak.finish();
        assert_eq!(sum, 2 * (0..100).sum::<u64>());
        assert!(peak <= CAP as u64, "threads_alive peaked at {peak} > {CAP}");
        let m = rt.metrics();
        assert!(m.threads_spawned > 0);
        println!(
            "fault_max_threads_cap: peak {peak} threads, retakes {}, slow exits {}",
            m.retakes, m.blocking_slow_exits
        );
    });
}

fn getuid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

fn set_nproc(n: u64) {
    let l = libc::rlimit {
        rlim_cur: n,
        rlim_max: n,
    };
    // SAFETY: `l` is a valid rlimit; lowering a limit needs no privilege.
    let r = unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &l) };
    assert_eq!(
        r,
        0,
        "setrlimit(NPROC): {}",
        std::io::Error::last_os_error()
    );
}

/// Whether a new thread can be created right now.
fn can_spawn_thread() -> bool {
    std::thread::Builder::new()
        .spawn(|| {})
        .map(|t| t.join())
        .is_ok()
}

fn nproc_scenario() {
    // A runtime built while threads can still be made: 2 workers and the
    // monitor, and a few more threads from warm-up calls.
    let rt = Runtime::builder()
        .worker_threads(2)
        .max_threads(64)
        .thread_keep_alive(Duration::from_secs(60))
        .build()
        .unwrap();
    let _w = watch(rt.handle());
    run_work(&rt, 10);
    let before = rt.metrics();

    let was_root = getuid() == 0;
    if was_root {
        // Root ignores RLIMIT_NPROC; show it, then drop to nobody.
        set_nproc(1);
        let root_could = can_spawn_thread();
        println!("fault_thread_spawn_fails_rlimit_nproc: as root with RLIMIT_NPROC=1 a thread spawn succeeded: {root_could}");
        // SAFETY: plain syscalls with constant ids; glibc applies them to
        // every thread of the process.
        let r = unsafe { libc::setgroups(0, std::ptr::null()) };
        assert_eq!(r, 0, "setgroups: {}", std::io::Error::last_os_error());
        // SAFETY: as above.
        let r = unsafe { libc::setgid(65534) };
        assert_eq!(r, 0, "setgid: {}", std::io::Error::last_os_error());
        // SAFETY: as above.
        let r = unsafe { libc::setuid(65534) };
        assert_eq!(r, 0, "setuid: {}", std::io::Error::last_os_error());
    } else {
        set_nproc(1);
    }
    assert!(
        !can_spawn_thread(),
        "RLIMIT_NPROC=1 did not stop a thread spawn (uid {})",
        getuid()
    );
    let threads = thread_count();
    let sum = run_work(&rt, 60);
    assert_eq!(sum, 2 * (0..60).sum::<u64>());
    let after = rt.metrics();
    assert!(
        after.thread_spawn_failures > before.thread_spawn_failures,
        "the runtime tried to spawn a thread and saw it fail: {after:?}"
    );
    assert!(thread_count() <= threads, "no thread was created");
    println!(
        "fault_thread_spawn_fails_rlimit_nproc: root={was_root}; {} spawn failures, work done on {} threads (retakes {}, slow exits {})",
        after.thread_spawn_failures - before.thread_spawn_failures,
        threads,
        after.retakes,
        after.blocking_slow_exits
    );
    // Shutting down with no thread to spare still works.
    drop(rt);
}

#[test]
fn fault_thread_spawn_fails_rlimit_nproc() {
    if stress_common::under_valgrind() {
        return; // changes process-wide limits and the uid: its own process only
    }
    isolated(
        "fault_thread_spawn_fails_rlimit_nproc",
        60,
        &[],
        nproc_scenario,
    );
}

/// Threads stuck in calls that only return when the user says so: shutdown
/// (both `drop` and `shutdown_timeout`) returns without them, and when the
/// calls return later their tasks' futures are dropped (nothing leaks).
#[test]
fn fault_shutdown_with_calls_stuck_until_released() {
    watchdog(60, "shutdown with stuck calls", || {
        for round in 0..2 {
            let rt = Runtime::builder()
                .worker_threads(2)
                .max_threads(16)
                .build()
                .unwrap();
            let ledger = stress_common::Ledger::new(6);
            let (entered_tx, entered_rx) = std::sync::mpsc::channel();
            let mut releases = Vec::new();
            let mut handles = Vec::new();
            for i in 0..6 {
                let (tx, rx) = std::sync::mpsc::channel::<()>();
                releases.push(tx);
                let g = ledger.guard(i);
                let entered = entered_tx.clone();
                handles.push(rt.spawn(async move {
                    let g = g;
                    let f = move || {
                        entered.send(()).unwrap();
                        let _ = rx.recv();
                    };
                    if i % 2 == 0 {
                        handoff::blocking(f).await;
                    } else {
                        handoff::blocking_long(f).await;
                    }
                    handoff::yield_now().await;
                    g.done();
                }));
            }
            for _ in 0..6 {
                entered_rx
                    .recv_timeout(Duration::from_secs(30))
                    .expect("every call started");
            }
            if round == 0 {
                drop(rt);
            } else {
                rt.shutdown_timeout(Duration::from_millis(50));
            }
            // Shutdown returned with 6 threads still inside their calls.
            assert_eq!(
                ledger.dropped(),
                0,
                "futures of tasks in calls are still in use"
            );
            drop(releases);
            ledger.wait_all_dropped(30);
            for h in handles {
                let r = futures::executor::block_on(h);
                assert!(r.unwrap_err().is_cancelled());
            }
            let (completed, cancelled) = ledger.check(6, false);
            assert_eq!((completed, cancelled), (0, 6), "round {round}");
        }
    });
}
