//! An idle runtime costs (almost) no CPU: the monitor parks while no slot is
//! in a call, idle workers park. Its own binary so other tests' threads do
//! not count. The bound is generous (1% of a core over 1 s).
mod common;

use common::{blocking, watchdog};
use handoff_executor::{spawn, Runtime};
use std::time::Duration;

fn cpu_time() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: `ru` is a valid out-pointer for getrusage.
    let r = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    assert_eq!(r, 0);
    // SAFETY: getrusage succeeded and filled `ru`.
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[test]
fn an_idle_runtime_uses_under_one_percent_of_a_core() {
    watchdog(60, "idle cpu", || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        // Wake everything up: tasks and a stream of calls (the monitor goes active).
        rt.block_on(async {
            spawn(async {
                for _ in 0..10_000 {
                    blocking(common::getpid).await;
                }
                blocking(|| std::thread::sleep(Duration::from_millis(5))).await;
            })
            .await
            .unwrap()
        });
        // Let the monitor's quiet spell pass, then measure one second.
        common::wait_monitor_quiet(&rt);
        let wakes0 = rt.metrics().monitor_wakes;
        let t0 = cpu_time();
        std::thread::sleep(Duration::from_secs(1));
        let used = cpu_time() - t0;
        let wakes = rt.metrics().monitor_wakes - wakes0;
        assert!(
            used < Duration::from_millis(10),
            "an idle runtime used {used:?} of CPU in 1 s (monitor woke {wakes} times)"
        );
        assert!(wakes < 10, "the idle monitor woke {wakes} times in 1 s");
    });
}
