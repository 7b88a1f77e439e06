//! The bridge at the executor level (issue 4): fast path, retake, slow
//! exit, `Long` handoff, the thread cap. Calls go through a minimal
//! `blocking` future over `bridge::{enter, exit}` (tests/common).
mod common;

use common::{blocking, blocking_long, gettid, watchdog};
use handoff_executor::bridge::{enter, Call, Exit};
use handoff_executor::{spawn, Runtime};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

#[test]
fn fast_path_stays_on_the_same_thread_and_spawns_no_thread() {
    watchdog(60, "fast path", || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        let (before, inside, after, exit) = rt.block_on(async {
            spawn(async {
                let before = gettid();
                let call = enter(Call::Short).expect("a worker holds a slot");
                let inside = gettid();
                let exit = call.exit();
                (before, inside, gettid(), exit)
            })
            .await
            .unwrap()
        });
        assert_eq!(exit, Exit::Fast);
        assert_eq!(before, inside);
        assert_eq!(inside, after);
        let spawned = rt.metrics().threads_spawned;
        let n = rt.block_on(async {
            spawn(async {
                let mut n = 0u64;
                for _ in 0..100_000 {
                    n += blocking(common::getpid).await.min(1) as u64;
                }
                n
            })
            .await
            .unwrap()
        });
        assert_eq!(n, 100_000);
        let m = rt.metrics();
        assert!(m.blocking_fast_exits >= 99_000, "{m:?}");
        assert_eq!(
            m.threads_spawned, spawned,
            "fast calls spawned threads: {m:?}"
        );
    });
}

#[test]
fn enter_returns_none_without_a_slot() {
    assert!(enter(Call::Short).is_none(), "plain thread");
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    rt.block_on(async {
        assert!(enter(Call::Short).is_none(), "block_on thread");
        spawn(async {
            let outer = enter(Call::Short).unwrap();
            assert!(enter(Call::Short).is_none(), "nested call");
            assert!(enter(Call::Long).is_none(), "nested long call");
            let _ = outer.exit();
        })
        .await
        .unwrap();
    });
}

/// worker_threads(1): A is in a long blocking call; B, queued behind it on
/// the only slot, runs before A's call returns (A's call waits for B's
/// message), so the monitor must have retaken the slot.
#[test]
fn retake_lets_b_run_while_a_is_in_a_call() {
    watchdog(60, "retake", || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let (b_tx, b_rx) = mpsc::channel::<()>();
        let a = rt.spawn(async move {
            // B is spawned from A's poll, so it sits in A's slot.
            let b = spawn(async move {
                b_tx.send(()).unwrap();
            });
            let got = blocking(move || b_rx.recv_timeout(Duration::from_secs(20))).await;
            got.expect("B never ran while A was in its call: the slot was not retaken");
            b.await.unwrap();
            42
        });
        assert_eq!(rt.block_on(a).unwrap(), 42);
        let m = rt.metrics();
        assert!(m.retakes >= 1, "{m:?}");
        assert!(m.handoffs >= 1, "{m:?}");
    });
}

/// One round of the retake scenario on a one-slot runtime: A enters a call
/// that waits for B, B is queued behind A in A's slot.
fn retake_round(rt: &Runtime) {
    let (b_tx, b_rx) = mpsc::channel::<()>();
    let a = rt.spawn(async move {
        let b = spawn(async move {
            b_tx.send(()).unwrap();
        });
        let got = blocking(move || b_rx.recv_timeout(Duration::from_secs(20))).await;
        got.expect("B never ran while A was in its call: the slot was not retaken");
        b.await.unwrap();
    });
    rt.block_on(a).unwrap();
}

/// Waits (bounded) until the monitor has stopped waking: it then sleeps
/// with no deadline, as after any quiet spell.
fn wait_monitor_asleep(rt: &Runtime) {
    let mut last = rt.metrics().monitor_wakes;
    for _ in 0..500 {
        std::thread::sleep(Duration::from_millis(20));
        let now = rt.metrics().monitor_wakes;
        if now == last && rt.metrics().threads_idle >= 1 {
            return;
        }
        last = now;
    }
    panic!("the monitor kept waking for 10 s in an idle runtime");
}

/// standby.rs: a call entered after a quiet spell, with an idle thread to
/// take its slot, is timed and retaken by that thread; the monitor is not
/// woken (one wake-up on the hand-off path instead of two in series). An
/// attempt may find the idle thread busy re-listing itself, and then the
/// monitor retakes as before: three attempts.
#[test]
fn standby_retakes_after_a_quiet_spell_without_the_monitor() {
    watchdog(60, "standby retake", || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        // A first retake starts the second thread, which then idles.
        retake_round(&rt);
        let mut attempts = Vec::new();
        for _ in 0..3 {
            wait_monitor_asleep(&rt);
            let m0 = rt.metrics();
            retake_round(&rt);
            let m1 = rt.metrics();
            assert!(m1.retakes > m0.retakes, "{m1:?}");
            // The slot went to an idle thread, not a new one. (Taking the
            // only idle thread out of the reactor also starts one spare with
            // no slot, `Shared::poller_taken`: at most one.)
            assert!(m1.threads_spawned <= m0.threads_spawned + 1, "{m1:?}");
            let wakes = m1.monitor_wakes - m0.monitor_wakes;
            if wakes == 0 {
                return;
            }
            attempts.push(wakes);
        }
        panic!("every retake after a quiet spell woke the monitor: {attempts:?} wakes");
    });
}

/// After a retake, A's call returns while the only slot is busy (B spins in
/// its poll until A's call has returned): A's exit is slow; its result
/// arrives intact, and every other task runs exactly once.
#[test]
fn slow_exit_keeps_the_result_and_loses_no_task() {
    watchdog(60, "slow exit", || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let exits = Arc::new(Mutex::new(Vec::new()));
        let returned = Arc::new(AtomicBool::new(false));
        let runs = Arc::new(AtomicUsize::new(0));
        let (b_tx, b_rx) = mpsc::channel::<()>();
        let (r2, e2, runs2) = (returned.clone(), exits.clone(), runs.clone());
        let a = rt.spawn(async move {
            let r3 = r2.clone();
            let b = spawn(async move {
                b_tx.send(()).unwrap();
                // Hold the only slot until A's call is back (and a bit more).
                while !r3.load(Ordering::SeqCst) {
                    std::hint::spin_loop();
                }
                std::thread::sleep(Duration::from_millis(20));
            });
            let others: Vec<_> = (0..100)
                .map(|_| {
                    let runs = runs2.clone();
                    spawn(async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                    })
                })
                .collect();
            let mut call = blocking(move || {
                b_rx.recv_timeout(Duration::from_secs(20))
                    .expect("B never ran");
                r2.store(true, Ordering::SeqCst);
                vec![1u8, 2, 3]
            });
            call.exits = Some(e2);
            let out = call.await;
            b.await.unwrap();
            for o in others {
                o.await.unwrap();
            }
            out
        });
        assert_eq!(rt.block_on(a).unwrap(), vec![1, 2, 3]);
        assert_eq!(runs.load(Ordering::SeqCst), 100);
        let exits = exits.lock().unwrap().clone();
        assert_eq!(exits.len(), 1);
        let m = rt.metrics();
        assert!(matches!(exits[0], Exit::Slow | Exit::IdleSlot), "{exits:?}");
        assert!(
            m.blocking_slow_exits + m.blocking_idle_slot_exits >= 1,
            "{m:?}"
        );
        assert!(m.retakes >= 1, "{m:?}");
    });
}

/// `Long` hands the slot off before the call: B runs even though the monitor
/// would not retake for 10 s.
#[test]
fn long_call_hands_the_slot_off_before_the_call() {
    watchdog(60, "blocking_long", || {
        let rt = Runtime::builder()
            .worker_threads(1)
            .retake_after(Duration::from_secs(10))
            .build()
            .unwrap();
        let (b_tx, b_rx) = mpsc::channel::<()>();
        let a = rt.spawn(async move {
            let b = spawn(async move {
                b_tx.send(()).unwrap();
            });
            blocking_long(move || b_rx.recv_timeout(Duration::from_secs(20)))
                .await
                .expect("B never ran: blocking_long did not hand the slot off");
            b.await.unwrap();
        });
        rt.block_on(a).unwrap();
        let m = rt.metrics();
        assert_eq!(m.retakes, 0, "{m:?}");
        assert!(m.long_handoffs >= 1, "{m:?}");
    });
}

/// A spawn made from inside a call goes to the global queue and runs.
#[test]
fn spawn_from_inside_a_call_runs() {
    watchdog(30, "spawn in a call", || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let v = rt.block_on(async {
            spawn(async {
                let h = blocking(|| spawn(async { 5 })).await;
                h.await.unwrap()
            })
            .await
            .unwrap()
        });
        assert_eq!(v, 5);
    });
}

/// 200 concurrent 5 ms calls with max_threads(8): the thread count never
/// passes the cap, every call completes, nothing deadlocks.
#[test]
fn thread_cap_is_respected() {
    watchdog(120, "thread cap", || {
        let rt = Runtime::builder()
            .worker_threads(2)
            .max_threads(8)
            .thread_keep_alive(Duration::from_millis(200))
            .build()
            .unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let max_seen = Arc::new(AtomicUsize::new(0));
        let h = rt.handle().clone();
        let (d2, m2) = (done.clone(), max_seen.clone());
        let sampler = std::thread::spawn(move || {
            while !d2.load(Ordering::SeqCst) {
                let n = h.metrics().threads_alive as usize;
                m2.fetch_max(n, Ordering::SeqCst);
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        let n = rt.block_on(async {
            let hs: Vec<_> = (0..200)
                .map(|_| spawn(blocking(|| std::thread::sleep(Duration::from_millis(5)))))
                .collect();
            let mut n = 0;
            for h in hs {
                h.await.unwrap();
                n += 1;
            }
            n
        });
        done.store(true, Ordering::SeqCst);
        sampler.join().unwrap();
        assert_eq!(n, 200);
        let m = rt.metrics();
        assert!(
            max_seen.load(Ordering::SeqCst) <= 8,
            "threads: {} {m:?}",
            max_seen.load(Ordering::SeqCst)
        );
        assert!(m.retakes >= 1, "{m:?}");
        // Idle surplus threads exit after the keep-alive.
        let mut alive = m.worker_threads_alive;
        for _ in 0..100 {
            if alive <= 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            alive = rt.metrics().worker_threads_alive;
        }
        assert!(
            alive <= 2,
            "surplus threads did not exit: {:?}",
            rt.metrics()
        );
    });
}
