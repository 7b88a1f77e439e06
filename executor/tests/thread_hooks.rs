//! Thread hooks that panic. Its own binary: the panics print to stderr and
//! the thread counts are read from the runtime's metrics.
mod common;

use common::watchdog;
use handoff_executor::{spawn, Runtime};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Regression: a panicking `on_thread_start` never gave its thread's place
/// in the `max_threads` budget back (and dropped the core handed to it), so
/// at the cap no thread could ever be started again and the task waited
/// for good. One slot, a budget of two threads, a hook that panics on the
/// first two threads (the one `build` starts and the one started for the
/// task): the third thread runs the task, and the budget counts only it.
///
/// It also pins a lost wake-up at the cap: when the second dying thread
/// handed its core on while the first still held its place, `start_thread`
/// could not spawn and parked the core (with the task queued) on the idle
/// list; the first thread's exit then freed the place without anyone taking
/// it, and the runtime sat with work, an idle core and no thread (hung in
/// ~1 run of 4 under CPU load until `Shared::thread_exited` re-ran the wake
/// protocol).
#[test]
fn a_panicking_on_thread_start_gives_its_thread_budget_back() {
    watchdog(30, "panicking start hook", || {
        let starts = Arc::new(AtomicUsize::new(0));
        let s = starts.clone();
        let rt = Runtime::builder()
            .worker_threads(1)
            .max_threads(2)
            .on_thread_start(move || {
                if s.fetch_add(1, Ordering::SeqCst) < 2 {
                    panic!("on_thread_start fails on the first two threads (test)");
                }
            })
            .build()
            .unwrap();
        let v = rt.block_on(async { spawn(async { 7 }).await.unwrap() });
        assert_eq!(v, 7);
        assert!(starts.load(Ordering::SeqCst) >= 3);
        // The dead threads' reservations are given back as they unwind.
        let mut m = rt.metrics();
        while m.threads_alive != 1 || m.worker_threads_alive != 1 {
            std::thread::sleep(Duration::from_millis(1));
            m = rt.metrics();
        }
        // And the budget still allows a call to hand its slot off.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let ran = rt.block_on(async move {
            let b = spawn(async move { tx.send(()).unwrap() });
            let a = spawn(async move {
                common::blocking(move || rx.recv_timeout(Duration::from_secs(20)).is_ok()).await
            });
            a.await.unwrap() && b.await.is_ok()
        });
        assert!(ran, "B never ran while A waited for it in a blocking call");
    });
}

/// A panicking `on_thread_stop` still gives the budget back: after
/// shutdown no thread counts against `max_threads`.
#[test]
fn a_panicking_on_thread_stop_gives_its_thread_budget_back() {
    watchdog(30, "panicking stop hook", || {
        let rt = Runtime::builder()
            .worker_threads(2)
            .thread_keep_alive(Duration::from_millis(10))
            .on_thread_stop(|| panic!("on_thread_stop fails (test)"))
            .build()
            .unwrap();
        assert_eq!(rt.block_on(async { spawn(async { 1 }).await.unwrap() }), 1);
        let h = rt.handle().clone();
        rt.shutdown_timeout(Duration::from_secs(10));
        // Every thread unwinds through its stop hook and gives its place
        // back (the watchdog fails the test if one never does).
        while h.metrics().threads_alive != 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

/// Regression: a pool thread whose `on_thread_start` panicked kept its place
/// in the pool's thread count and in the `max_threads` budget, so with a
/// budget of one pool thread the queued `spawn_blocking` job never ran. The
/// hook panics on the first pool thread only: the job runs on the next one.
#[test]
fn a_panicking_on_thread_start_in_the_pool_gives_its_thread_budget_back() {
    watchdog(30, "panicking start hook in the pool", || {
        let pool_starts = Arc::new(AtomicUsize::new(0));
        let s = pool_starts.clone();
        let rt = Runtime::builder()
            .worker_threads(1)
            .max_threads(2)
            .on_thread_start(move || {
                let pool = std::thread::current().name() == Some("handoff-blocking");
                if pool && s.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("on_thread_start fails on the first pool thread (test)");
                }
            })
            .build()
            .unwrap();
        let v = rt.block_on(async { handoff_executor::spawn_blocking(|| 7).await.unwrap() });
        assert_eq!(v, 7);
        assert_eq!(pool_starts.load(Ordering::SeqCst), 2);
    });
}
