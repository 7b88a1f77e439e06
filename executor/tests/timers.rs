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
