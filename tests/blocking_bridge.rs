//! Issue 4, behaviours 1–5, 7–9: the blocking bridge seen from tasks.
//!
//! Every scenario runs under a watchdog (a hang fails with a message), and
//! orders threads with channels: "B ran while A was in its call" is proven by
//! A's closure *waiting for B* (with a timeout), never by sleeping.
mod blocking_common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use blocking_common::{gettid, watchdog, CountPolls};
use handoff::Runtime;

/// Long enough that the monitor never retakes during a test.
const NEVER: Duration = Duration::from_secs(3600);
/// How long a closure waits for the other task before declaring it never ran.
const PATIENCE: Duration = Duration::from_secs(10);

fn getpid() -> i64 {
    // SAFETY: getpid has no preconditions; the raw syscall is never cached.
    unsafe { libc::syscall(libc::SYS_getpid) }
}

#[test]
fn fast_path_runs_in_the_same_poll_on_the_same_thread() {
    watchdog(60, "fast path", || {
        let rt = Runtime::builder()
            .worker_threads(2)
            .retake_after(NEVER)
            .build()
            .unwrap();
        let before = rt.metrics();
        let (task, polls) = CountPolls::new(async {
            let a = gettid();
            let b = handoff::blocking(gettid).await;
            let c = gettid();
            (a, b, c)
        });
        let main_tid = gettid();
        let (a, b, c) = rt.block_on(rt.spawn(task)).unwrap();
        assert_ne!(a, main_tid, "the task must run on a worker thread");
        assert_eq!((a, b), (b, c), "gettid before / inside / after the call");
        assert_eq!(
            polls.load(Ordering::SeqCst),
            1,
            "the call ended in one poll"
        );
        let after = rt.metrics();
        assert!(
            after.blocking_fast_exits > before.blocking_fast_exits,
            "blocking_fast_exits did not count the call: {} -> {}",
            before.blocking_fast_exits,
            after.blocking_fast_exits
        );
        assert_eq!(after.blocking_slow_exits, before.blocking_slow_exits);
    });
}

#[test]
fn a_million_fast_calls_spawn_no_thread() {
    const CALLS: u64 = 1_000_000;
    watchdog(120, "a million calls", || {
        let rt = Runtime::builder()
            .worker_threads(1)
            .retake_after(NEVER)
            .build()
            .unwrap();
        // Warm up: the worker thread exists after this.
        assert_eq!(
            rt.block_on(rt.spawn(handoff::blocking(getpid))).unwrap(),
            getpid()
        );
        let before = rt.metrics();
        let sum = rt
            .block_on(rt.spawn(async {
                let mut sum = 0u64;
                for _ in 0..CALLS {
                    sum += u64::from(handoff::blocking(getpid).await == getpid());
                }
                sum
            }))
            .unwrap();
        assert_eq!(sum, CALLS);
        let after = rt.metrics();
        assert_eq!(
            after.threads_spawned, before.threads_spawned,
            "fast calls must not create threads"
        );
        assert!(
            after.blocking_fast_exits - before.blocking_fast_exits >= CALLS,
            "fast exits {} -> {}",
            before.blocking_fast_exits,
            after.blocking_fast_exits
        );
        assert_eq!(after.retakes, before.retakes);
    });
}

#[test]
fn the_closure_borrows_the_tasks_stack() {
    watchdog(30, "borrow", || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        let out = rt
            .block_on(rt.spawn(async {
                let mut buf = [0u8; 4096];
                let label = String::from("on the task's stack");
                let n = handoff::blocking(|| {
                    use std::io::Read;
                    let mut f = std::fs::File::open("/proc/self/status")?;
                    let n = f.read(&mut buf[..])?;
                    buf[n..].fill(b'#');
                    std::io::Result::Ok(n + label.len() - label.len())
                })
                .await
                .unwrap();
                (n, buf, label)
            }))
            .unwrap();
        let (n, buf, label) = out;
        assert!(buf[..n].starts_with(b"Name:"));
        assert!(buf[n..].iter().all(|&b| b == b'#'));
        assert_eq!(label, "on the task's stack");
    });
}

#[test]
fn retake_lets_the_task_queued_behind_run_during_the_call() {
    watchdog(60, "retake", || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let before = rt.metrics();
        let (a_tid, b_tid, b_ran_during_call) = rt
            .block_on(rt.spawn(async {
                let (tx, rx) = mpsc::channel();
                // B is queued on A's own slot, behind A.
                let b = handoff::spawn(async move { tx.send(gettid()).unwrap() });
                let a_tid = gettid();
                // The call ends only when B has run: B can only run if the
                // monitor retook the only slot and handed it to another thread.
                let got = handoff::blocking(move || rx.recv_timeout(PATIENCE)).await;
                b.await.unwrap();
                (a_tid, got.ok(), got.is_ok())
            }))
            .unwrap();
        assert!(
            b_ran_during_call,
            "B did not run while A was in its call: the slot was not retaken"
        );
        assert_ne!(
            Some(a_tid),
            b_tid,
            "B ran on the thread the slot was handed to"
        );
        let after = rt.metrics();
        assert!(
            after.retakes > before.retakes,
            "metrics().retakes did not count it"
        );
    });
}

#[test]
fn a_computing_closure_is_retaken_and_the_task_behind_it_runs() {
    watchdog(60, "retake of a computing call", || {
        // One slot. A's closure computes (spins, never blocks) until B has
        // run, so its thread stays runnable for the whole call: the monitor
        // must tell "computing" (its CPU clock moves on) from "waiting for a
        // CPU" (executor/src/thread_state.rs) and retake it. B can only run
        // on the slot handed to another thread.
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let before = rt.metrics();
        let (a_tid, b_tid) = rt
            .block_on(rt.spawn(async {
                let b_tid = Arc::new(AtomicUsize::new(0));
                let seen = b_tid.clone();
                let b =
                    handoff::spawn(async move { seen.store(gettid() as usize, Ordering::SeqCst) });
                let a_tid = gettid();
                let got = handoff::blocking(move || {
                    let start = Instant::now();
                    loop {
                        let tid = b_tid.load(Ordering::SeqCst);
                        if tid != 0 {
                            return Some(tid as i64);
                        }
                        if start.elapsed() > PATIENCE {
                            return None;
                        }
                        std::hint::spin_loop();
                    }
                })
                .await;
                b.await.unwrap();
                (a_tid, got)
            }))
            .unwrap();
        let b_tid =
            b_tid.expect("B did not run while A's closure computed: the slot was not retaken");
        assert_ne!(a_tid, b_tid, "B ran on the thread the slot was handed to");
        let after = rt.metrics();
        assert!(
            after.retakes > before.retakes,
            "metrics().retakes did not count it"
        );
    });
}

#[test]
fn slow_exit_requeues_the_task_and_keeps_the_result() {
    watchdog(60, "slow exit", || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let before = rt.metrics();
        let extra_polls: Vec<_> = (0..50).map(|_| Arc::new(AtomicUsize::new(0))).collect();
        let extra = extra_polls.clone();
        let (result, call_polls, b_saw_exit) = rt
            .block_on(rt.spawn(async move {
                let (tx, rx) = mpsc::channel::<()>();
                // Tasks queued on the slot alongside B: none may be lost or
                // polled twice across the retake and the slow exit.
                let mut extras = Vec::new();
                for polls in extra {
                    let (task, _) =
                        CountPolls::new(async move { polls.fetch_add(1, Ordering::SeqCst) });
                    extras.push(handoff::spawn(task));
                }
                // B runs once the slot is handed off, tells A's call to
                // return, and then keeps the only slot busy until A's exit
                // was counted: that exit found no slot.
                let b = handoff::spawn(async move {
                    tx.send(()).unwrap();
                    let start = Instant::now();
                    loop {
                        let m = handoff::Handle::current().metrics();
                        if m.blocking_slow_exits + m.blocking_idle_slot_exits
                            > before.blocking_slow_exits + before.blocking_idle_slot_exits
                        {
                            return true;
                        }
                        if start.elapsed() > PATIENCE {
                            return false;
                        }
                        std::hint::spin_loop();
                    }
                });
                let (call, polls) = CountPolls::new(handoff::blocking(move || {
                    rx.recv_timeout(PATIENCE).expect("B never ran: no retake");
                    (0..1000u32).collect::<Vec<_>>()
                }));
                let result = call.await;
                let b_saw_exit = b.await.unwrap();
                for e in extras {
                    e.await.unwrap();
                }
                (result, polls.load(Ordering::SeqCst), b_saw_exit)
            }))
            .unwrap();
        assert!(
            b_saw_exit,
            "A's exit was never counted while B held the slot"
        );
        assert_eq!(
            result,
            (0..1000u32).collect::<Vec<_>>(),
            "A's result intact"
        );
        assert_eq!(
            call_polls, 2,
            "slow path: Pending once, then Ready with the stored output"
        );
        for (i, polls) in extra_polls.iter().enumerate() {
            assert_eq!(
                polls.load(Ordering::SeqCst),
                1,
                "extra task {i} polled once"
            );
        }
        let after = rt.metrics();
        assert!(
            after.blocking_slow_exits > before.blocking_slow_exits,
            "the only slot was busy: the exit must be slow ({} -> {})",
            before.blocking_slow_exits,
            after.blocking_slow_exits
        );
        assert!(after.retakes > before.retakes);
    });
}

#[test]
fn blocking_long_hands_off_before_the_call() {
    watchdog(60, "blocking_long", || {
        // The monitor would wait an hour: only the hand-off at entry lets B run.
        let rt = Runtime::builder()
            .worker_threads(1)
            .retake_after(NEVER)
            .build()
            .unwrap();
        let before = rt.metrics();
        let b_ran = rt
            .block_on(rt.spawn(async {
                let (tx, rx) = mpsc::channel();
                let b = handoff::spawn(async move { tx.send(()).unwrap() });
                let got = handoff::blocking_long(move || rx.recv_timeout(PATIENCE)).await;
                b.await.unwrap();
                got.is_ok()
            }))
            .unwrap();
        assert!(b_ran, "B did not run during A's blocking_long call");
        let after = rt.metrics();
        assert_eq!(after.retakes, before.retakes, "no retake was needed");
        assert!(after.handoffs > before.handoffs, "the hand-off is counted");
    });
}

#[test]
fn panic_in_the_closure_reaches_the_join_handle_and_frees_the_slot() {
    const SLOTS: usize = 2;
    watchdog(60, "panic", || {
        let rt = Runtime::builder().worker_threads(SLOTS).build().unwrap();
        for i in 0..2 * SLOTS {
            let h = rt.spawn(async move {
                handoff::blocking(move || -> u32 { panic!("closure panic {i}") }).await
            });
            let err = rt
                .block_on(h)
                .expect_err("the panic must reach the JoinHandle");
            assert!(err.is_panic());
            let payload = err.into_panic();
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_default();
            assert_eq!(msg, format!("closure panic {i}"));
        }
        // Every slot still works: SLOTS tasks meet on a barrier, which only
        // happens if SLOTS slots run them at the same time.
        let barrier = Arc::new(Barrier::new(SLOTS));
        let tids: Vec<_> = (0..SLOTS)
            .map(|_| {
                let barrier = barrier.clone();
                rt.spawn(async move {
                    barrier.wait();
                    gettid()
                })
            })
            .collect();
        let mut tids: Vec<_> = tids.into_iter().map(|h| rt.block_on(h).unwrap()).collect();
        tids.sort_unstable();
        tids.dedup();
        assert_eq!(
            tids.len(),
            SLOTS,
            "the barrier tasks ran on distinct threads"
        );
    });
}

#[test]
fn panic_after_a_slow_exit_is_resumed_on_the_next_poll() {
    watchdog(60, "panic on the slow path", || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let before = rt.metrics();
        let h = rt.spawn(async move {
            let (tx, rx) = mpsc::channel::<()>();
            let b = handoff::spawn(async move {
                tx.send(()).unwrap();
                let start = Instant::now();
                while handoff::Handle::current().metrics().blocking_slow_exits
                    == before.blocking_slow_exits
                    && start.elapsed() < PATIENCE
                {
                    std::hint::spin_loop();
                }
            });
            let r = handoff::blocking(move || -> u32 {
                rx.recv_timeout(PATIENCE).expect("B never ran: no retake");
                panic!("slow panic")
            })
            .await;
            b.await.unwrap();
            r
        });
        let err: handoff::JoinError = rt.block_on(h).expect_err("must panic");
        assert!(err.is_panic());
        assert_eq!(err.into_panic().downcast_ref::<&str>(), Some(&"slow panic"));
        assert!(rt.metrics().blocking_slow_exits > before.blocking_slow_exits);
        // The runtime still runs tasks.
        assert_eq!(rt.block_on(rt.spawn(async { 7 })).unwrap(), 7);
    });
}

#[test]
fn outside_a_runtime_the_closure_runs_inline() {
    watchdog(30, "outside", || {
        let me = gettid();
        assert_eq!(futures::executor::block_on(handoff::blocking(gettid)), me);
        assert_eq!(
            futures::executor::block_on(handoff::blocking_long(gettid)),
            me
        );
        let other = std::thread::spawn(|| {
            let t = gettid();
            (t, futures::executor::block_on(handoff::blocking(gettid)))
        })
        .join()
        .unwrap();
        assert_eq!(other.0, other.1);
        // On the block_on thread of a runtime (it holds no slot) and nested
        // inside another call's closure, too.
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let before = rt.metrics();
        let inside = rt.block_on(async { handoff::blocking(gettid).await });
        assert_eq!(inside, me);
        let (outer, inner) = rt
            .block_on(rt.spawn(async {
                handoff::blocking(|| {
                    let outer = gettid();
                    (
                        outer,
                        futures::executor::block_on(handoff::blocking(gettid)),
                    )
                })
                .await
            }))
            .unwrap();
        assert_eq!(outer, inner, "a nested call runs inline");
        let after = rt.metrics();
        let exits = |m: &handoff::Metrics| {
            m.blocking_fast_exits + m.blocking_idle_slot_exits + m.blocking_slow_exits
        };
        assert_eq!(
            exits(&after) - exits(&before),
            1,
            "only the outer call entered"
        );
    });
}

/// A future that parks on its first poll, handing its waker out.
struct ParkOnce {
    waker: Arc<Mutex<Option<Waker>>>,
    parked: bool,
}

impl std::future::Future for ParkOnce {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        if self.parked {
            return Poll::Ready(());
        }
        self.parked = true;
        *self.waker.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[test]
fn spawn_and_wake_from_inside_the_closure_go_to_the_global_queue() {
    watchdog(60, "spawn and wake from a call", || {
        // Two slots, no retake: A's slot stays in `Syscall` for the whole
        // call. Had the spawn or the wake gone to A's own slot, nobody could
        // run the task before the call returns and the call would time out.
        let rt = Runtime::builder()
            .worker_threads(2)
            .retake_after(NEVER)
            .build()
            .unwrap();
        let before = rt.metrics();
        let (a, spawned, woken) = rt
            .block_on(rt.spawn(async {
                let waker = Arc::new(Mutex::new(None));
                let (c_tx, c_rx) = mpsc::channel();
                let slot = waker.clone();
                let c = handoff::spawn(async move {
                    ParkOnce {
                        waker: slot,
                        parked: false,
                    }
                    .await;
                    c_tx.send(gettid()).unwrap();
                });
                let start = Instant::now();
                while waker.lock().unwrap().is_none() {
                    assert!(start.elapsed() < PATIENCE, "C never parked");
                    handoff::yield_now().await;
                }
                let a = gettid();
                let (spawned, woken) = handoff::blocking(move || {
                    let (b_tx, b_rx) = mpsc::channel();
                    let b = handoff::spawn(async move { b_tx.send(gettid()).unwrap() });
                    let spawned = b_rx.recv_timeout(PATIENCE);
                    waker.lock().unwrap().take().unwrap().wake();
                    let woken = c_rx.recv_timeout(PATIENCE);
                    drop(b);
                    (spawned, woken)
                })
                .await;
                c.await.unwrap();
                (a, spawned, woken)
            }))
            .unwrap();
        let spawned = spawned.expect("a task spawned inside the call did not run during it");
        let woken = woken.expect("a task woken inside the call did not run during it");
        assert_ne!(spawned, a, "the spawned task ran on another thread");
        assert_ne!(woken, a, "the woken task ran on another thread");
        assert_eq!(
            rt.metrics().retakes,
            before.retakes,
            "no retake was involved"
        );
    });
}

/// An output whose `Drop` counts and then panics (issue 6: it must not tear
/// down the worker that drops it).
struct PanickyOutput(Arc<AtomicUsize>);

impl Drop for PanickyOutput {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("the stored output panicked in Drop");
    }
}

#[test]
fn aborting_after_a_slow_exit_drops_the_stored_output_once() {
    watchdog(60, "abort after a slow exit", || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let before = rt.metrics();
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        let (abort_tx, abort_rx) = mpsc::channel::<handoff::AbortHandle>();
        let a = rt.spawn(async move {
            let (tx, rx) = mpsc::channel::<()>();
            // B: runs once the slot is handed off, lets A's call return, holds
            // the only slot until A's slow exit was counted, then aborts A
            // while its output sits in the Blocking future.
            handoff::spawn(async move {
                let abort = abort_rx.recv_timeout(PATIENCE).unwrap();
                tx.send(()).unwrap();
                let start = Instant::now();
                while handoff::Handle::current().metrics().blocking_slow_exits
                    == before.blocking_slow_exits
                {
                    assert!(start.elapsed() < PATIENCE, "A's slow exit never came");
                    std::hint::spin_loop();
                }
                abort.abort();
            });
            let out = handoff::blocking(move || {
                rx.recv_timeout(PATIENCE).expect("B never ran: no retake");
                PanickyOutput(d)
            })
            .await;
            std::mem::forget(out);
            unreachable!("A was aborted before its next poll");
        });
        abort_tx.send(a.abort_handle()).unwrap();
        let err = rt.block_on(a).map(drop).expect_err("A was aborted");
        assert!(err.is_cancelled(), "A ends cancelled, not panicked");
        assert_eq!(
            drops.load(Ordering::SeqCst),
            1,
            "the stored output dropped once"
        );
        // The worker that dropped it is still fine.
        assert_eq!(rt.block_on(rt.spawn(async { 5 })).unwrap(), 5);
    });
}

#[test]
fn exit_after_a_retake_takes_an_idle_slot_in_the_same_poll() {
    watchdog(60, "idle-slot exit", || {
        // Two slots. C keeps slot 2 busy so that nobody can steal B, which is
        // queued on A's slot 1: B runs only once slot 1 is retaken and handed
        // off. B then lets C finish, and A's call returns only once a slot is
        // idle: the exit must take it and A continue in the same poll.
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        let before = rt.metrics();
        let stop_c = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (c_tx, c_rx) = mpsc::channel();
        let stop = stop_c.clone();
        let c = rt.spawn(async move {
            c_tx.send(()).unwrap();
            let start = Instant::now();
            while !stop.load(Ordering::SeqCst) && start.elapsed() < PATIENCE {
                std::hint::spin_loop();
            }
        });
        c_rx.recv_timeout(PATIENCE).expect("C never started");
        let handle = rt.handle().clone();
        let (polls, value) = rt
            .block_on(rt.spawn(async move {
                let (tx, rx) = mpsc::channel();
                let b = handoff::spawn(async move { tx.send(()).unwrap() });
                let (call, polls) = CountPolls::new(handoff::blocking(move || {
                    rx.recv_timeout(PATIENCE).expect("B never ran: no retake");
                    stop_c.store(true, Ordering::SeqCst);
                    let start = Instant::now();
                    while handle.metrics().slots_idle == 0 {
                        assert!(start.elapsed() < PATIENCE, "no slot ever went idle");
                        std::thread::yield_now();
                    }
                    "intact"
                }));
                let value = call.await;
                b.await.unwrap();
                (polls.load(Ordering::SeqCst), value)
            }))
            .unwrap();
        rt.block_on(c).unwrap();
        let after = rt.metrics();
        assert_eq!(value, "intact");
        assert!(after.retakes > before.retakes, "A's slot was retaken");
        assert_eq!(
            (
                after.blocking_idle_slot_exits - before.blocking_idle_slot_exits,
                after.blocking_slow_exits - before.blocking_slow_exits
            ),
            (1, 0),
            "with a slot idle, the exit takes it (idle-slot exits, slow exits)"
        );
        assert_eq!(polls, 1, "an idle-slot exit continues in the same poll");
    });
}

#[test]
fn a_loop_of_fast_calls_yields_to_the_tasks_behind_it() {
    const CALLS: usize = 10_000;
    watchdog(60, "cooperative budget", || {
        // One slot, no retake: only the cooperative budget lets B run while
        // A is still looping over fast calls.
        let rt = Runtime::builder()
            .worker_threads(1)
            .retake_after(NEVER)
            .build()
            .unwrap();
        let seen_at = rt
            .block_on(rt.spawn(async {
                let flag = Arc::new(AtomicUsize::new(0));
                let f = flag.clone();
                let b = handoff::spawn(async move { f.store(1, Ordering::SeqCst) });
                let mut seen_at = None;
                for i in 0..CALLS {
                    handoff::blocking(getpid).await;
                    if seen_at.is_none() && flag.load(Ordering::SeqCst) == 1 {
                        seen_at = Some(i);
                    }
                }
                b.await.unwrap();
                seen_at
            }))
            .unwrap();
        let at = seen_at.expect("B never ran during A's 10 000 calls");
        assert!(at < CALLS / 2, "B ran only after call {at}");
    });
}

/// Go's `handoffp`: a slot retaken from a lasting call with no task queued
/// still needs someone in the reactor, or a socket read (or a timer) of
/// another task waits for the call to end. One slot; task R waits on a
/// socket; task A's call lasts until R has read the byte, which a plain
/// thread writes only once A's call has started. R must run (on the
/// retaken slot) before A's call returns.
#[test]
fn io_is_polled_while_the_only_slot_sits_in_a_call() {
    use futures::AsyncReadExt;
    use std::io::Write;
    watchdog(60, "io during a call", || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let got = rt
            .block_on(rt.spawn(async move {
                let mut ours = handoff::net::UnixStream::from_std(ours).unwrap();
                let (tx, rx) = mpsc::channel::<u8>();
                let reader = handoff::spawn(async move {
                    let mut buf = [0u8; 1];
                    ours.read_exact(&mut buf).await.unwrap();
                    tx.send(buf[0]).unwrap();
                });
                // The reader polls once and waits on the socket.
                handoff::yield_now().await;
                let (started_tx, started_rx) = mpsc::channel::<()>();
                let writer = std::thread::spawn(move || {
                    started_rx.recv().unwrap();
                    theirs.write_all(b"x").unwrap();
                    theirs
                });
                let got = handoff::blocking(move || {
                    started_tx.send(()).unwrap();
                    rx.recv_timeout(PATIENCE)
                })
                .await;
                reader.await.unwrap();
                drop(writer.join().unwrap());
                got
            }))
            .unwrap();
        assert_eq!(
            got,
            Ok(b'x'),
            "the reader never ran while the call lasted: nobody polled the reactor"
        );
    });
}

/// The same for a timer: task T sleeps 20 ms while the only slot's call
/// lasts until T has woken.
#[test]
fn timers_fire_while_the_only_slot_sits_in_a_call() {
    watchdog(60, "timer during a call", || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let got = rt
            .block_on(rt.spawn(async move {
                let (tx, rx) = mpsc::channel::<()>();
                let sleeper = handoff::spawn(async move {
                    handoff::time::sleep(Duration::from_millis(20)).await;
                    tx.send(()).unwrap();
                });
                // The sleeper polls once and arms its timer.
                handoff::yield_now().await;
                let got = handoff::blocking(move || rx.recv_timeout(PATIENCE)).await;
                sleeper.await.unwrap();
                got
            }))
            .unwrap();
        assert_eq!(
            got,
            Ok(()),
            "the timer never fired while the call lasted: nobody polled the reactor"
        );
    });
}
