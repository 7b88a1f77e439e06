//! The scheduler's behaviour (issue 3): spawn/join at scale, chains,
//! ping-pong, stealing, abort, panics, shutdown, wakers outliving the runtime.
mod common;

use common::{panic_message, watchdog, DropCounter};
use futures::channel::{mpsc as fmpsc, oneshot};
use futures::{SinkExt, StreamExt};
use handoff_executor::{spawn, Handle, Runtime};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::Waker;
use std::time::Duration;

fn rt(n: usize) -> Runtime {
    Runtime::builder().worker_threads(n).build().unwrap()
}

#[test]
fn spawn_200_000_tasks_and_join_them() {
    watchdog(120, "200 000 tasks", || {
        let rt = rt(2);
        let sum = rt.block_on(async {
            let handles: Vec<_> = (0..200_000u64).map(|i| spawn(async move { i })).collect();
            let mut sum = 0;
            for h in handles {
                sum += h.await.unwrap();
            }
            sum
        });
        assert_eq!(sum, 199_999 * 200_000 / 2);
        let m = rt.metrics();
        assert!(m.tasks_spawned >= 200_000, "{m:?}");
    });
}

#[test]
fn spawn_200_000_tasks_from_outside_the_runtime() {
    watchdog(120, "200 000 remote tasks", || {
        let rt = rt(2);
        let handles: Vec<_> = (0..200_000u64)
            .map(|i| rt.spawn(async move { i }))
            .collect();
        let sum = rt.block_on(async {
            let mut sum = 0;
            for h in handles {
                sum += h.await.unwrap();
            }
            sum
        });
        assert_eq!(sum, 199_999 * 200_000 / 2);
    });
}

#[test]
fn chained_spawn_10_000_deep() {
    fn link(n: usize, done: oneshot::Sender<usize>) {
        if n == 0 {
            let _ = done.send(10_000);
        } else {
            spawn(async move { link(n - 1, done) });
        }
    }
    watchdog(60, "chained spawn", || {
        let rt = rt(2);
        let got = rt.block_on(async {
            let (tx, rx) = oneshot::channel();
            spawn(async move { link(10_000, tx) });
            rx.await.unwrap()
        });
        assert_eq!(got, 10_000);
    });
}

#[test]
fn ping_pong_between_two_tasks_over_channels() {
    watchdog(60, "ping-pong", || {
        let rt = rt(2);
        let rounds = rt.block_on(async {
            let (mut to_b, mut b_rx) = fmpsc::channel::<u32>(1);
            let (mut to_a, mut a_rx) = fmpsc::channel::<u32>(1);
            let b = spawn(async move {
                while let Some(v) = b_rx.next().await {
                    if to_a.send(v + 1).await.is_err() {
                        break;
                    }
                }
            });
            let a = spawn(async move {
                let mut v = 0;
                for _ in 0..10_000 {
                    to_b.send(v).await.unwrap();
                    v = a_rx.next().await.unwrap();
                }
                drop(to_b);
                v
            });
            let v = a.await.unwrap();
            b.await.unwrap();
            v
        });
        assert_eq!(rounds, 10_000);
    });
}

/// A task stuck in a long poll (not a blocking call) on one slot must not
/// stall the tasks queued behind it in that slot's ring: another slot
/// steals them. The stuck task waits (std channel, inside its poll) for
/// every task it queued, so the test passes only if they were stolen.
/// (The most recent spawn sits in the LIFO slot, which is not stealable,
/// as in tokio: a marker task is spawned last to take that place.)
#[test]
fn a_task_stuck_in_a_long_poll_does_not_stall_the_tasks_behind_it() {
    watchdog(60, "steal from a stuck slot", || {
        let rt = rt(2);
        let (tx, rx) = mpsc::channel::<usize>();
        let stuck = rt.spawn(async move {
            let n = 50;
            for i in 0..n {
                let tx = tx.clone();
                spawn(async move {
                    tx.send(i).unwrap();
                });
            }
            spawn(async {}); // takes the LIFO slot
            let mut got = Vec::new();
            for _ in 0..n {
                got.push(
                    rx.recv_timeout(Duration::from_secs(20))
                        .expect("tasks queued behind a stuck task were never stolen"),
                );
            }
            got.sort();
            got
        });
        let got = rt.block_on(stuck).unwrap();
        assert_eq!(got, (0..50).collect::<Vec<_>>());
        assert!(rt.metrics().steals >= 1, "{:?}", rt.metrics());
    });
}

#[test]
fn abort_drops_the_future_and_reports_cancelled() {
    watchdog(30, "abort", || {
        let rt = rt(2);
        let drops = Arc::new(AtomicUsize::new(0));
        let guard = DropCounter(drops.clone());
        let (started_tx, started_rx) = oneshot::channel();
        let h = rt.spawn(async move {
            let _g = guard;
            let _ = started_tx.send(());
            std::future::pending::<()>().await
        });
        rt.block_on(async { started_rx.await.unwrap() });
        h.abort();
        let err = rt.block_on(h).unwrap_err();
        assert!(err.is_cancelled());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn panicking_tasks_do_not_kill_workers() {
    watchdog(30, "panics", || {
        let rt = rt(2);
        let before = rt.metrics().worker_threads_alive;
        let errs = rt.block_on(async {
            let hs: Vec<_> = (0..100)
                .map(|i| spawn(async move { panic!("boom {i}") }))
                .collect();
            let mut errs = Vec::new();
            for h in hs {
                errs.push(h.await.unwrap_err());
            }
            errs
        });
        assert!(errs.iter().all(|e| e.is_panic()));
        // The runtime still runs tasks on both slots.
        let v = rt.block_on(async {
            let hs: Vec<_> = (0..1000).map(|i| spawn(async move { i })).collect();
            let mut s = 0;
            for h in hs {
                s += h.await.unwrap();
            }
            s
        });
        assert_eq!(v, 999 * 1000 / 2);
        assert!(rt.metrics().worker_threads_alive >= before);
    });
}

#[test]
fn runtime_drop_drops_1000_pending_tasks_exactly_once() {
    watchdog(30, "drop with pending tasks", || {
        let rt = rt(2);
        let drops = Arc::new(AtomicUsize::new(0));
        let polled = Arc::new(AtomicUsize::new(0));
        let (all_tx, all_rx) = mpsc::channel();
        for _ in 0..1000 {
            let g = DropCounter(drops.clone());
            let p = polled.clone();
            let tx = all_tx.clone();
            rt.spawn(async move {
                let _g = g;
                if p.fetch_add(1, Ordering::SeqCst) + 1 == 1000 {
                    tx.send(()).unwrap();
                }
                std::future::pending::<()>().await
            });
        }
        all_rx.recv_timeout(Duration::from_secs(20)).unwrap();
        // and some that never ran at all
        for _ in 0..100 {
            let g = DropCounter(drops.clone());
            rt.spawn(async move {
                let _g = g;
            });
        }
        drop(rt);
        let d = drops.load(Ordering::SeqCst);
        assert!(d >= 1000, "only {d} futures were dropped");
        assert_eq!(d, 1100, "each future is dropped exactly once");
    });
}

#[test]
fn wakers_outliving_the_runtime_are_harmless() {
    watchdog(30, "late wakers", || {
        let rt = rt(2);
        let wakers: Arc<Mutex<Vec<Waker>>> = Arc::default();
        let (tx, rx) = mpsc::channel();
        for _ in 0..10 {
            let w = wakers.clone();
            let tx = tx.clone();
            rt.spawn(std::future::poll_fn(move |cx| {
                w.lock().unwrap().push(cx.waker().clone());
                let _ = tx.send(());
                std::task::Poll::<()>::Pending
            }));
        }
        for _ in 0..10 {
            rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        drop(rt);
        let ws = std::mem::take(&mut *wakers.lock().unwrap());
        for w in &ws {
            w.wake_by_ref();
        }
        for w in ws {
            w.wake();
        }
    });
}

#[test]
fn spawn_outside_a_runtime_panics_with_a_sentence() {
    let p = std::panic::catch_unwind(|| {
        spawn(async {});
    })
    .unwrap_err();
    let msg = panic_message(&*p);
    assert!(msg.contains("outside a handoff runtime"), "{msg}");
    assert!(msg.contains("Handle::spawn"), "{msg}");
}

#[test]
fn block_on_from_a_worker_panics_with_a_sentence() {
    watchdog(30, "nested block_on", || {
        let rt = rt(1);
        let err = rt
            .block_on(async { spawn(async { Handle::current().block_on(async {}) }).await })
            .unwrap_err();
        let msg = panic_message(&*err.into_panic());
        assert!(msg.contains("inside a handoff runtime"), "{msg}");
        // and from inside block_on itself
        let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(async { Handle::current().block_on(async {}) })
        }))
        .unwrap_err();
        assert!(panic_message(&*p).contains("inside a handoff runtime"));
    });
}

#[test]
fn shutdown_timeout_returns_while_a_task_is_stuck_in_a_blocking_call() {
    watchdog(30, "shutdown_timeout", || {
        let rt = rt(1);
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        rt.spawn(common::blocking(move || {
            entered_tx.send(()).unwrap();
            // Stuck until the test releases it, after shutdown returned.
            let _ = release_rx.recv_timeout(Duration::from_secs(20));
        }));
        entered_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        rt.shutdown_timeout(Duration::from_millis(100));
        // shutdown returned while the call is still blocked.
        release_tx.send(()).unwrap();
    });
}

#[test]
fn drop_returns_while_a_task_is_stuck_in_a_blocking_call() {
    watchdog(30, "drop during a call", || {
        let rt = rt(2);
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        rt.spawn(common::blocking(move || {
            entered_tx.send(()).unwrap();
            let _ = release_rx.recv_timeout(Duration::from_secs(20));
        }));
        entered_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        drop(rt);
        release_tx.send(()).unwrap();
    });
}

#[test]
fn yield_now_lets_the_other_tasks_run() {
    watchdog(30, "yield_now", || {
        let rt = rt(1);
        let order = rt.block_on(async {
            let log = Arc::new(Mutex::new(Vec::new()));
            let (l1, l2) = (log.clone(), log.clone());
            let a = spawn(async move {
                l1.lock().unwrap().push("a1");
                handoff_executor::yield_now().await;
                l1.lock().unwrap().push("a2");
            });
            let b = spawn(async move {
                l2.lock().unwrap().push("b");
            });
            a.await.unwrap();
            b.await.unwrap();
            let v = log.lock().unwrap().clone();
            v
        });
        let a1 = order.iter().position(|x| *x == "a1").unwrap();
        let a2 = order.iter().position(|x| *x == "a2").unwrap();
        assert!(a1 < a2);
        assert_eq!(order.len(), 3);
    });
}

#[test]
fn spawn_blocking_runs_on_a_pool_thread_and_is_cancelled_at_shutdown() {
    watchdog(30, "spawn_blocking", || {
        let rt = rt(1);
        let main_tid = common::gettid();
        let tid = rt.block_on(async {
            handoff_executor::spawn_blocking(common::gettid)
                .await
                .unwrap()
        });
        assert_ne!(tid, main_tid);
        let v = rt.block_on(async { handoff_executor::spawn_blocking(|| 6 * 7).await.unwrap() });
        assert_eq!(v, 42);
        let err = rt
            .block_on(async { handoff_executor::spawn_blocking(|| panic!("pool boom")).await })
            .unwrap_err();
        assert!(err.is_panic());
        let m = rt.metrics();
        assert!(m.spawn_blocking_tasks >= 3, "{m:?}");
    });
}

#[test]
fn handle_current_works_in_tasks_and_block_on_and_not_outside() {
    assert!(Handle::try_current().is_none());
    let rt = rt(1);
    rt.block_on(async {
        let h = Handle::current();
        let inner = h.spawn(async { Handle::try_current().is_some() });
        assert!(inner.await.unwrap());
    });
    let p = std::panic::catch_unwind(Handle::current).unwrap_err();
    assert!(panic_message(&*p).contains("outside a handoff runtime"));
}

#[test]
fn handle_block_on_from_another_thread() {
    watchdog(30, "Handle::block_on", || {
        let rt = rt(2);
        let h = rt.handle().clone();
        let v = std::thread::spawn(move || h.block_on(async { spawn(async { 9 }).await.unwrap() }))
            .join()
            .unwrap();
        assert_eq!(v, 9);
    });
}

#[test]
#[should_panic(expected = "must be greater than worker_threads")]
fn max_threads_not_above_worker_threads_panics() {
    let _ = Runtime::builder().worker_threads(4).max_threads(4).build();
}

#[test]
fn thread_hooks_and_name() {
    watchdog(30, "hooks", || {
        let started = Arc::new(AtomicUsize::new(0));
        let stopped = Arc::new(AtomicUsize::new(0));
        let (s1, s2) = (started.clone(), stopped.clone());
        let rt = Runtime::builder()
            .worker_threads(2)
            .thread_name("hooked")
            .on_thread_start(move || {
                s1.fetch_add(1, Ordering::SeqCst);
            })
            .on_thread_stop(move || {
                s2.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .unwrap();
        let name = rt.block_on(async {
            spawn(async { std::thread::current().name().map(String::from) })
                .await
                .unwrap()
        });
        assert_eq!(name.as_deref(), Some("hooked"));
        drop(rt);
        assert!(started.load(Ordering::SeqCst) >= 2);
        assert_eq!(
            started.load(Ordering::SeqCst),
            stopped.load(Ordering::SeqCst)
        );
    });
}

/// A task whose resource is always ready (every `poll_proceed` says go)
/// still yields after its cooperative budget, so a task queued behind it on
/// the only slot runs while it loops.
#[test]
fn an_always_ready_task_cannot_starve_its_slot() {
    watchdog(30, "coop budget", || {
        let rt = rt(1);
        let b_ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let b2 = b_ran.clone();
        let spins = rt.block_on(async move {
            spawn(async move {
                let b3 = b2.clone();
                spawn(async move {
                    b3.store(true, Ordering::SeqCst);
                });
                let mut spins = 0u64;
                while !b2.load(Ordering::SeqCst) {
                    std::future::poll_fn(handoff_reactor::coop::poll_proceed).await;
                    spins += 1;
                }
                spins
            })
            .await
            .unwrap()
        });
        assert!(b_ran.load(Ordering::SeqCst));
        assert!(spins >= u64::from(handoff_reactor::coop::BUDGET), "{spins}");
    });
}

/// Nanoseconds on a CPU (schedstat) of the threads in `tids` other than
/// `tid` (a thread that exited counts 0).
fn others_cpu_ns(tids: &Mutex<Vec<i32>>, tid: i32) -> u64 {
    tids.lock()
        .unwrap()
        .iter()
        .filter(|&&t| t != tid)
        .map(|t| cpu_ns(*t))
        .sum()
}

fn cpu_ns(tid: i32) -> u64 {
    let path = format!("/proc/self/task/{tid}/schedstat");
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    stat.split(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A task that yields while it is its core's only work runs next on the
/// same thread, and no other thread is woken to steal it: one wake per
/// yield cost a system call and a context switch, or kept the other worker
/// spinning, 25-40% of the cost of a loop of `blocking(getpid)` calls
/// (which yields every 128 calls). Measured by the other threads' CPU time
/// against the yielding thread's during 20 000 yields (a ratio of two
/// measurements in the same run, not a speed). On a machine that other
/// processes keep busy the kernel may preempt the task's thread long
/// enough for the other worker to steal it (rightly): the CPU split of such
/// a round says nothing, so rounds are repeated until one ran on one thread.
#[test]
fn a_lone_yielding_task_wakes_no_other_thread() {
    watchdog(120, "lone yields", || {
        // This runtime's threads only: the tests of this binary run at once.
        let tids = Arc::new(Mutex::new(Vec::new()));
        let t2 = tids.clone();
        let rt = Runtime::builder()
            .worker_threads(2)
            .on_thread_start(move || {
                // SAFETY: gettid has no preconditions.
                t2.lock().unwrap().push(unsafe { libc::gettid() });
            })
            .build()
            .unwrap();
        let mut ratios = Vec::new();
        for _round in 0..10 {
            let tids = tids.clone();
            let (cpu, moves) = rt.block_on(async move {
                spawn(async move {
                    // SAFETY: gettid has no preconditions.
                    let tid = unsafe { libc::gettid() };
                    let before = (others_cpu_ns(&tids, tid), cpu_ns(tid));
                    let (mut moves, mut last) = (0, tid);
                    for _ in 0..20_000 {
                        handoff_executor::yield_now().await;
                        // SAFETY: as above.
                        let now = unsafe { libc::gettid() };
                        if now != last {
                            moves += 1;
                            last = now;
                        }
                    }
                    let others = others_cpu_ns(&tids, tid).saturating_sub(before.0);
                    let own = cpu_ns(tid).saturating_sub(before.1);
                    (others as f64 / own.max(1) as f64, moves)
                })
                .await
                .unwrap()
            });
            assert!(moves < 50, "the task moved to another thread {moves} times");
            if moves == 0 {
                assert!(
                    cpu < 0.2,
                    "the other threads used {cpu:.2}x the yielding thread's CPU time"
                );
                return;
            }
            ratios.push((moves, cpu));
        }
        // Every round was stolen at least once: only a machine far busier
        // than its cores does that, and the moves stayed bounded.
        eprintln!("every round moved at least once (moves, cpu ratio): {ratios:?}");
    });
}
