//! Stress: a runtime created and dropped in a loop (100 times by default,
//! 1 000 with `STRESS=long`) while tasks are pending, looping through
//! `blocking` calls, sleeping on timers, spawning, and `spawn_blocking`
//! jobs are queued or running. Half the rounds end with `drop`, half with
//! `shutdown_timeout`.
//!
//! Each round checks: every future is dropped exactly once (those inside a
//! blocking call at shutdown, when their call returns), every handle then
//! resolves (cancelled, or `Ok` for a job that ran), and at the end no
//! thread is left behind.
mod stress_common;

use handoff::Runtime;
use std::sync::mpsc;
use std::time::Duration;
use stress_common::{
    isolated, scale, seed, thread_count, under_valgrind, wait_until, watch, Ledger, XorShift,
};

/// Tasks per round: 4 pending, 4 blocking loops, 2 timer loops, 1 spawner,
/// 3 spawn_blocking jobs, plus the spawner's children (at most 8).
const PER_ROUND: usize = 4 + 4 + 2 + 1 + 3 + 8;

fn round(r: usize, rng: &mut XorShift) {
    let rt = Runtime::builder()
        .worker_threads(2)
        .max_threads(16)
        .thread_keep_alive(Duration::from_millis(50))
        .build()
        .unwrap();
    let _w = watch(rt.handle());
    let ledger = Ledger::new(PER_ROUND);
    let mut handles = Vec::new();
    let mut next = 0;
    let mut guard = || {
        next += 1;
        ledger.guard(next - 1)
    };
    for _ in 0..4 {
        let g = guard();
        handles.push(rt.spawn(async move {
            let g = g;
            std::future::pending::<()>().await;
            g.done();
        }));
    }
    let (started_tx, started_rx) = mpsc::channel();
    for _ in 0..4 {
        let g = guard();
        let started = started_tx.clone();
        let us = 50 + rng.below(400);
        handles.push(rt.spawn(async move {
            let g = g;
            let _g = g; // never done: the loop runs until shutdown
            loop {
                let started = started.clone();
                handoff::blocking(move || {
                    let _ = started.send(());
                    std::thread::sleep(Duration::from_micros(us));
                })
                .await;
                handoff::yield_now().await;
            }
        }));
    }
    for k in 0..2 {
        let g = guard();
        handles.push(rt.spawn(async move {
            let _g = g; // never done: the loop runs until shutdown
            loop {
                handoff::time::sleep(Duration::from_micros(100 + 300 * k)).await;
            }
        }));
    }
    let spawner_guard = guard();
    let child_guards: Vec<_> = (0..8).map(|_| guard()).collect();
    handles.push(rt.spawn(async move {
        let g = spawner_guard;
        let mut kids = Vec::new();
        for cg in child_guards {
            kids.push(handoff::spawn(async move {
                let cg = cg;
                handoff::time::sleep(Duration::from_millis(1)).await;
                std::future::pending::<()>().await;
                cg.done();
            }));
            handoff::yield_now().await;
        }
        std::future::pending::<()>().await;
        drop(kids);
        g.done();
    }));
    for _ in 0..3 {
        let g = guard();
        let us = rng.below(2_000);
        handles.push(rt.spawn_blocking(move || {
            std::thread::sleep(Duration::from_micros(us));
            g.done();
        }));
    }
    let spawned = next;
    // Let something be in flight: at least one blocking call has started.
    started_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("a blocking call started");
    if r & 1 == 0 {
        drop(rt);
    } else {
        rt.shutdown_timeout(Duration::from_millis(rng.below(5)));
    }
    // Futures of tasks inside a call are dropped when the call returns.
    ledger.wait_all_dropped(30);
    // The spawner's children are not in `handles`; every other handle
    // resolves now, outside any runtime.
    let results: Vec<_> = handles
        .into_iter()
        .map(futures::executor::block_on)
        .collect();
    let mut ok = 0;
    for res in &results {
        match res {
            Ok(()) => ok += 1,
            Err(e) => assert!(e.is_cancelled(), "round {r}: {e:?}"),
        }
    }
    // Guards for children never spawned (the spawner was stopped first)
    // were dropped with the spawner: they count as cancelled.
    let (completed, _) = ledger.check(spawned, false);
    assert_eq!(
        completed, ok,
        "round {r}: only spawn_blocking jobs complete"
    );
    assert!(ok <= 3);
}

fn scenario() {
    let rounds = if under_valgrind() {
        30
    } else {
        scale(100, 1_000)
    };
    let mut rng = XorShift::new(seed("stress_runtime_churn"));
    let threads_before = thread_count();
    for r in 0..rounds {
        round(r, &mut rng);
    }
    // Threads left in blocking calls at shutdown exit when the call returns;
    // pool threads and workers are joined or end on their own.
    wait_until(30, "every runtime thread has exited", || {
        thread_count() <= threads_before
    });
    println!("stress_runtime_churn: {rounds} runtimes created and dropped with work in flight");
}

#[test]
fn stress_runtime_churn() {
    isolated("stress_runtime_churn", 120, &[], scenario);
}

/// Threads blocked in `Handle::block_on` on join handles while the runtime
/// is dropped: each returns (the tasks are cancelled), none hangs.
#[test]
fn stress_runtime_dropped_under_block_on_threads() {
    stress_common::watchdog(60, "drop under block_on threads", || {
        for _ in 0..scale(20, 200) {
            let rt = Runtime::builder().worker_threads(2).build().unwrap();
            let (ready_tx, ready_rx) = mpsc::channel();
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let h = rt.handle().clone();
                    let ready = ready_tx.clone();
                    std::thread::spawn(move || {
                        let j = h.spawn(std::future::pending::<()>());
                        ready.send(()).unwrap();
                        h.block_on(j)
                    })
                })
                .collect();
            for _ in 0..4 {
                ready_rx.recv().unwrap();
            }
            drop(rt);
            for t in threads {
                assert!(t.join().unwrap().unwrap_err().is_cancelled());
            }
        }
    });
}
