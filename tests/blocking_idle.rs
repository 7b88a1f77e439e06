//! Issue 4, behaviour 10: an idle runtime costs (almost) no CPU.
//!
//! Alone in its test binary, because `getrusage(RUSAGE_SELF)` counts every
//! thread of the process: a test running next to it would be measured too.
//! A behaviour check, not a benchmark: the bound (1% of one core) is far above
//! what a parked monitor and parked workers cost (nothing), and far below a
//! monitor polling every 20 µs (Go's sysmon: 6–12%, golang/go#18236).
mod blocking_common;

use std::time::{Duration, Instant};

use blocking_common::watchdog;
use handoff::Runtime;

/// User + system CPU time of the whole process.
fn cpu_time() -> Duration {
    // SAFETY: an all-zero rusage is a valid value for getrusage to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid, writable rusage pointer.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPU time used during `window` of doing nothing on this thread.
fn idle_cpu(window: Duration) -> (Duration, Duration) {
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    std::thread::sleep(window);
    (cpu_time() - cpu0, wall0.elapsed())
}

#[test]
fn an_idle_runtime_uses_less_than_one_percent_of_a_core() {
    watchdog(60, "idle cost", || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        // Activity first: tasks, fast calls and a retaken call, so the workers
        // and the monitor have all been woken up before they must go quiet.
        let retakes = rt.block_on(async {
            let tasks: Vec<_> = (0..100)
                .map(|_| {
                    handoff::spawn(async {
                        for _ in 0..100 {
                            handoff::blocking(|| std::hint::black_box(1)).await;
                        }
                        handoff::blocking(|| std::thread::sleep(Duration::from_millis(2))).await;
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            handoff::Handle::current().metrics().retakes
        });
        assert!(retakes > 0, "the monitor was exercised");

        let (cpu, wall) = idle_cpu(Duration::from_secs(1));
        eprintln!("idle runtime: {cpu:?} CPU over {wall:?}");
        assert!(
            cpu * 100 < wall,
            "an idle runtime used {cpu:?} of CPU over {wall:?} (limit: 1% of a core)"
        );
    });
}
