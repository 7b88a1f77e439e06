//! The monitor's cost under a sparse stream of calls (issue 4, behaviour 10's
//! other half: "the monitor must not burn CPU while no slot is in a call").
//! Alone in its binary: it reads the process's CPU time.
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

/// A server doing one short call per millisecond (an `fsync` per request)
/// keeps no slot in a call 99.9% of the time, so the monitor should sleep
/// through most of it: at most a few wakes per call. (Regression: the monitor
/// used to poll every `retake_after` until 1 ms passed without a call, which a
/// call per millisecond never allowed: ~17 000 wakes a second, a third of a
/// core on the 2-vCPU development VM.)
#[test]
fn sparse_calls_cost_few_monitor_wakes() {
    const CALLS: u64 = 500;
    watchdog(60, "sparse calls", || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        let before = rt.metrics();
        let (cpu0, wall0) = (cpu_time(), Instant::now());
        rt.block_on(async {
            handoff::spawn(async {
                for _ in 0..CALLS {
                    handoff::blocking(|| std::hint::black_box(1)).await;
                    handoff::time::sleep(Duration::from_millis(1)).await;
                }
            })
            .await
            .unwrap();
        });
        let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());
        let wakes = rt.metrics().monitor_wakes - before.monitor_wakes;
        eprintln!("{CALLS} calls 1 ms apart: {wakes} monitor wakes, {cpu:?} CPU over {wall:?}");
        assert!(
            wakes <= 4 * CALLS,
            "{wakes} monitor wakes for {CALLS} short calls 1 ms apart (limit {})",
            4 * CALLS
        );
    });
}
