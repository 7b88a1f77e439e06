//! The monitor's cost follows the calls (monitor.rs, "What it costs"): a
//! sparse stream of calls costs a few monitor wakes per call and a small
//! share of a core, an idle runtime costs no wakes, and a call that lasts
//! is still retaken after a quiet spell. Its own binary: it reads the
//! monitor thread's CPU time and the process's metrics.
mod common;

use common::{blocking, watchdog};
use handoff_executor::{spawn, Runtime};
use handoff_reactor::time::sleep;
use std::time::{Duration, Instant};

/// `/proc/self/task/<tid>` of each of this process's threads named `name`.
fn threads_named(name: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir("/proc/self/task")
        .expect("read /proc/self/task")
        .map(|e| e.unwrap().path())
        .filter(|path| {
            std::fs::read_to_string(path.join("comm")).is_ok_and(|comm| comm.trim_end() == name)
        })
        .collect()
}

/// CPU time (user + system) of this process's threads named `name`, from
/// `/proc/self/task/*/schedstat` (nanoseconds on the CPU), falling back to
/// the clock ticks of `stat`.
fn cpu_of_thread(name: &str) -> Duration {
    let mut total = Duration::ZERO;
    for path in threads_named(name) {
        if let Some(ns) = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split(' ').next()?.parse::<u64>().ok())
        {
            total += Duration::from_nanos(ns);
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap();
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        total += Duration::from_nanos(ticks * 1_000_000_000 / hz);
    }
    total
}

const MONITOR: &str = "handoff-monitor";

/// The tests of this binary run one at a time: each reads the CPU time of
/// every monitor thread in the process.
static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ALONE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A server doing one short call per millisecond keeps no slot in a call
/// almost all the time: the monitor must not poll through it (the previous
/// design polled every `retake_after`, ~13 000 wakes a second, a fifth of
/// a core). Generous bounds: at most 3 wakes per call, under 10% of a core.
#[test]
fn one_call_per_millisecond_costs_a_few_monitor_wakes_per_call() {
    const CALLS: u64 = 1_000;
    let _alone = alone();
    watchdog(60, "sparse calls", || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        let m0 = rt.metrics();
        let (cpu0, wall0) = (cpu_of_thread(MONITOR), Instant::now());
        rt.block_on(async {
            spawn(async {
                for _ in 0..CALLS {
                    blocking(common::getpid).await;
                    sleep(Duration::from_millis(1)).await;
                }
            })
            .await
            .unwrap()
        });
        let (cpu, wall) = (cpu_of_thread(MONITOR) - cpu0, wall0.elapsed());
        let m = rt.metrics();
        let wakes = m.monitor_wakes - m0.monitor_wakes;
        let share = cpu.as_secs_f64() / wall.as_secs_f64();
        eprintln!(
            "{CALLS} calls 1 ms apart: {wakes} monitor wakes, monitor CPU {cpu:?} over {wall:?} ({:.2}% of a core)",
            share * 100.0
        );
        assert!(
            wakes <= 3 * CALLS,
            "{wakes} monitor wakes for {CALLS} short calls 1 ms apart (limit {})",
            3 * CALLS
        );
        assert!(
            share < 0.10,
            "the monitor used {:.1}% of a core for one short call per millisecond",
            share * 100.0
        );
    });
}

/// Calls of 100 µs (past `retake_after`) once a millisecond: each may need
/// a retake, and each costs a bounded number of wakes (the enter, the
/// deadline, a re-check of a spared call).
#[test]
fn one_long_ish_call_per_millisecond_costs_a_few_wakes_per_call() {
    const CALLS: u64 = 500;
    let _alone = alone();
    watchdog(60, "sparse 100 µs calls", || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        let m0 = rt.metrics();
        rt.block_on(async {
            spawn(async {
                for _ in 0..CALLS {
                    blocking(|| std::thread::sleep(Duration::from_micros(100))).await;
                    sleep(Duration::from_millis(1)).await;
                }
            })
            .await
            .unwrap()
        });
        let wakes = rt.metrics().monitor_wakes - m0.monitor_wakes;
        eprintln!("{CALLS} calls of 100 µs 1 ms apart: {wakes} monitor wakes");
        assert!(
            wakes <= 4 * CALLS,
            "{wakes} monitor wakes for {CALLS} calls of 100 µs (limit {})",
            4 * CALLS
        );
    });
}

/// After a burst of back-to-back calls the monitor stops polling and an
/// idle runtime wakes it (almost) never.
#[test]
fn an_idle_runtime_after_a_burst_wakes_the_monitor_almost_never() {
    let _alone = alone();
    watchdog(60, "idle monitor", || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        rt.block_on(async {
            spawn(async {
                for _ in 0..100_000 {
                    blocking(common::getpid).await;
                }
            })
            .await
            .unwrap()
        });
        common::wait_monitor_quiet(&rt);
        let w0 = rt.metrics().monitor_wakes;
        let cpu0 = cpu_of_thread(MONITOR);
        std::thread::sleep(Duration::from_secs(1));
        let wakes = rt.metrics().monitor_wakes - w0;
        let cpu = cpu_of_thread(MONITOR) - cpu0;
        assert!(wakes <= 2, "the idle monitor woke {wakes} times in 1 s");
        assert!(
            cpu < Duration::from_millis(5),
            "the idle monitor used {cpu:?} of CPU in 1 s"
        );
    });
}

/// After a quiet spell (the monitor asleep with no deadline) a call that
/// lasts is still retaken: the enter wakes the monitor. One slot, B queued
/// behind A's call: B runs while A's call is still in progress.
#[test]
fn a_call_after_a_quiet_spell_is_retaken() {
    let _alone = alone();
    watchdog(60, "retake after quiet", || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let w0 = rt.metrics().monitor_wakes;
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            rt.metrics().monitor_wakes - w0 <= 1,
            "the monitor woke while nothing happened"
        );
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        rt.block_on(async move {
            let a = spawn(async move {
                let b = spawn(async move { done_tx.send(()).unwrap() });
                // Blocks until B ran: only a retake lets B run on the one slot.
                blocking(move || rx.recv_timeout(Duration::from_secs(20)).is_ok()).await
                    && b.await.is_ok()
            });
            let waiter = std::thread::spawn(move || {
                let ran = done_rx.recv_timeout(Duration::from_secs(20)).is_ok();
                let _ = tx.send(());
                ran
            });
            assert!(a.await.unwrap(), "A's call ended without B having run");
            assert!(
                waiter.join().unwrap(),
                "B never ran while A was in its call"
            );
        });
        assert!(rt.metrics().retakes >= 1);
    });
}

/// While the monitor polls a stream of calls lazily (two slots, one idle:
/// the retake rule would spare every call), a call whose slot has local
/// work is still due at `retake_after`: `enter` says so and wakes the
/// monitor. A then waits in its call for B, queued behind it on its slot.
#[test]
fn a_call_with_local_work_is_retaken_amid_a_lazy_stream() {
    let _alone = alone();
    watchdog(60, "eager call amid lazy stream", || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let ran = rt.block_on(async move {
            spawn(async move {
                for _ in 0..100_000 {
                    blocking(common::getpid).await;
                }
                // B goes into this slot's LIFO slot; enter moves it to the
                // ring, where it waits behind A's call.
                let b = spawn(async move { tx.send(()).unwrap() });
                let got = blocking(move || rx.recv_timeout(Duration::from_secs(20)).is_ok()).await;
                got && b.await.is_ok()
            })
            .await
            .unwrap()
        });
        assert!(ran, "B never ran while A waited for it in a blocking call");
    });
}

/// monitor.rs, "Priority": the monitor runs under `SCHED_BATCH` at the
/// process's own nice value. At nice 19 it starved behind other processes
/// (retakes hundreds of milliseconds to seconds late on a busy machine);
/// under `SCHED_BATCH` its wakes still never preempt a running worker.
#[test]
fn the_monitor_is_a_batch_thread_at_the_process_nice_value() {
    let _alone = alone();
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    // A call makes sure the monitor thread has set itself up.
    rt.block_on(async {
        spawn(async { blocking(common::getpid).await })
            .await
            .unwrap()
    });
    // SAFETY: getpriority has no memory preconditions; 0 is this thread.
    let own_nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    // A new thread names itself (and the monitor sets its policy) once it
    // first runs: look until every monitor thread shows both, for 10 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut found = Vec::new();
        for path in threads_named(MONITOR) {
            let tid: libc::pid_t = path.file_name().unwrap().to_str().unwrap().parse().unwrap();
            // SAFETY: sched_getscheduler and getpriority only read the
            // scheduling settings of `tid`.
            let (policy, nice) = unsafe {
                (
                    libc::sched_getscheduler(tid),
                    libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t),
                )
            };
            found.push((tid, policy, nice));
        }
        let all_set = !found.is_empty()
            && found
                .iter()
                .all(|&(_, policy, _)| policy == libc::SCHED_BATCH);
        if all_set || Instant::now() > deadline {
            assert!(!found.is_empty(), "no {MONITOR} thread found in 10 s");
            for (tid, policy, nice) in found {
                assert_eq!(policy, libc::SCHED_BATCH, "monitor {tid}: policy {policy}");
                assert_eq!(nice, own_nice, "monitor {tid} runs at nice {nice}");
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
