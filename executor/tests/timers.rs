//! Timers and the reactor under the scheduler: worker threads enter the
//! reactor, one idle thread blocks in it until the next timer, and
//! `block_on` drives it when no worker does.
mod common;

use common::watchdog;
use handoff_executor::{spawn, Runtime};
use handoff_reactor::time::sleep;
use std::time::{Duration, Instant};

#[test]
fn block_on_a_timer_with_idle_workers() {
    watchdog(30, "block_on sleep", || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        let t = Instant::now();
        rt.block_on(sleep(Duration::from_millis(20)));
        assert!(t.elapsed() >= Duration::from_millis(20));
    });
}

#[test]
fn many_tasks_sleep_and_all_wake() {
    watchdog(60, "sleeping tasks", || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        let n = rt.block_on(async {
            let hs: Vec<_> = (0..1000u64)
                .map(|i| {
                    spawn(async move {
                        sleep(Duration::from_millis(1 + i % 20)).await;
                        1u64
                    })
                })
                .collect();
            let mut n = 0;
            for h in hs {
                n += h.await.unwrap();
            }
            n
        });
        assert_eq!(n, 1000);
    });
}

#[test]
fn a_timer_fires_while_every_slot_is_in_a_blocking_call() {
    watchdog(30, "timer during calls", || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        rt.spawn(common::blocking(move || {
            let _ = rx.recv_timeout(Duration::from_secs(10));
        }));
        let woke = rt.block_on(async {
            spawn(async {
                sleep(Duration::from_millis(30)).await;
                true
            })
            .await
            .unwrap()
        });
        assert!(woke);
        tx.send(()).unwrap();
    });
}

/// The runtime is dropped while another thread is inside `Handle::block_on`
/// on a timer: the worker that drove the reactor exits, so the blocked
/// thread must take the reactor over and its timer still fires (tokio
/// panics here instead). Several rounds, because which thread holds the
/// reactor when the runtime drops varies.
#[test]
fn dropping_the_runtime_leaves_a_block_on_timer_working() {
    watchdog(60, "block_on after the runtime dropped", || {
        for round in 0..20 {
            let rt = Runtime::builder().worker_threads(2).build().unwrap();
            let handle = rt.handle().clone();
            let (inside_tx, inside_rx) = std::sync::mpsc::channel();
            let t = std::thread::spawn(move || {
                handle.block_on(async move {
                    inside_tx.send(()).unwrap();
                    let t = Instant::now();
                    sleep(Duration::from_millis(50)).await;
                    t.elapsed()
                })
            });
            inside_rx.recv().unwrap();
            drop(rt);
            let slept = t.join().unwrap();
            assert!(
                slept >= Duration::from_millis(50),
                "round {round}: a timer fired early ({slept:?})"
            );
        }
    });
}
