//! Stress: many tasks spawned (from workers and from outside), woken across
//! threads (plain threads, other tasks, themselves), with random aborts.
//! 100 000 tasks by default, 1 000 000 with `STRESS=long`.
//!
//! Ends with the ledger check: every future dropped exactly once, every task
//! either completed (its body ran to the end and its handle said `Ok`) or
//! was cancelled (its handle said cancelled), never both.
mod stress_common;

use futures::channel::oneshot;
use handoff::{JoinHandle, Runtime};
use std::sync::{mpsc, Arc};
use stress_common::{isolated, scale, seed, under_valgrind, watch, Ledger, XorShift};

/// Tasks per wave: spawned together, then all joined (bounds the memory of
/// the long run).
const WAVE: usize = 10_000;

enum Kind {
    /// Completes at its first poll.
    Ready,
    /// Yields `n` times (self-wakes through the local queue).
    Yield(u32),
    /// Waits for a plain OS thread to fire its channel.
    ThreadWake(oneshot::Receiver<()>),
    /// Fires the previous chained task's channel, then waits for the next
    /// chained task to fire its own (wakes between workers).
    Chain(Option<oneshot::Sender<()>>, oneshot::Receiver<()>),
}

#[allow(clippy::too_many_arguments)]
fn spawn_wave(
    first: usize,
    count: usize,
    rng: &mut XorShift,
    ledger: &Arc<Ledger>,
    wakers: &[mpsc::Sender<oneshot::Sender<()>>],
    spawn: &dyn Fn(
        std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    ) -> JoinHandle<()>,
) -> Vec<(usize, JoinHandle<()>)> {
    let mut handles = Vec::with_capacity(count);
    let mut prev_tx: Option<oneshot::Sender<()>> = None;
    for i in first..first + count {
        let kind = match rng.below(4) {
            0 => Kind::Ready,
            1 => Kind::Yield(1 + rng.below(3) as u32),
            2 => {
                let (tx, rx) = oneshot::channel();
                wakers[i % wakers.len()].send(tx).unwrap();
                Kind::ThreadWake(rx)
            }
            _ => {
                let (tx, rx) = oneshot::channel();
                Kind::Chain(prev_tx.replace(tx), rx)
            }
        };
        let guard = ledger.guard(i);
        let h = spawn(Box::pin(async move {
            let guard = guard;
            match kind {
                Kind::Ready => {}
                Kind::Yield(n) => {
                    for _ in 0..n {
                        handoff::yield_now().await;
                    }
                }
                Kind::ThreadWake(rx) => {
                    let _ = rx.await;
                }
                Kind::Chain(prev, rx) => {
                    if let Some(p) = prev {
                        let _ = p.send(());
                    }
                    // Err(Canceled) when the next chained task was aborted
                    // before it ran (its future, holding our sender, dropped).
                    let _ = rx.await;
                }
            }
            guard.done();
        }));
        // ~10% aborted at once (often before the first poll); more are
        // aborted later, racing with their completion.
        if rng.below(10) == 0 {
            h.abort();
        }
        handles.push((i, h));
    }
    // The last chained task's channel has no next task to fire it.
    drop(prev_tx);
    handles
}

fn scenario() {
    let n = if under_valgrind() {
        10_000
    } else {
        scale(100_000, 1_000_000)
    };
    let mut rng = XorShift::new(seed("stress_tasks"));
    let rt = Runtime::builder().worker_threads(4).build().unwrap();
    let _w = watch(rt.handle());
    let ledger = Ledger::new(n);

    // Two plain threads that fire channels (wakes from outside the runtime).
    let (wakers, waker_threads): (Vec<_>, Vec<_>) = (0..2)
        .map(|_| {
            let (tx, rx) = mpsc::channel::<oneshot::Sender<()>>();
            let t = std::thread::spawn(move || {
                // Fire in small batches so tasks really park first; flush a
                // partial batch as soon as no more arrive.
                let mut batch = Vec::new();
                loop {
                    let flush = match rx.recv_timeout(std::time::Duration::from_millis(1)) {
                        Ok(s) => {
                            batch.push(s);
                            batch.len() >= 16
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => true,
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    };
                    if flush {
                        for s in batch.drain(..) {
                            let _ = s.send(());
                        }
                    }
                }
                for s in batch {
                    let _ = s.send(());
                }
            });
            (tx, t)
        })
        .unzip();

    let mut first = 0;
    let mut wave_no = 0;
    while first < n {
        let count = WAVE.min(n - first);
        let mut wave_rng = XorShift::new(rng.next());
        let handles = if wave_no & 1 == 0 {
            // Spawned from outside the runtime (the injection queue).
            let h = rt.handle().clone();
            spawn_wave(first, count, &mut wave_rng, &ledger, &wakers, &move |f| {
                h.spawn(f)
            })
        } else {
            // Spawned from a worker thread (local queues, overflow, steals).
            let (ledger, wakers) = (ledger.clone(), wakers.clone());
            rt.block_on(async move {
                handoff::spawn(async move {
                    spawn_wave(first, count, &mut wave_rng, &ledger, &wakers, &|f| {
                        handoff::spawn(f)
                    })
                })
                .await
                .unwrap()
            })
        };
        // Late aborts from another thread, racing with completion.
        let late: Vec<_> = handles
            .iter()
            .filter(|_| rng.below(20) == 0)
            .map(|(_, h)| h.abort_handle())
            .collect();
        let aborter = std::thread::spawn(move || late.iter().for_each(|a| a.abort()));
        let ledger2 = ledger.clone();
        rt.block_on(async move {
            for (i, h) in handles {
                let r = h.await;
                ledger2.joined(i, &r);
            }
        });
        aborter.join().unwrap();
        first += count;
        wave_no += 1;
    }
    drop(wakers);
    for t in waker_threads {
        t.join().unwrap();
    }
    let m = rt.metrics();
    drop(rt);
    let (completed, cancelled) = ledger.check(n, true);
    println!(
        "stress_tasks: {n} tasks: {completed} completed, {cancelled} cancelled; \
         polls={} steals={} overflows={}",
        m.polls, m.steals, m.overflows
    );
    assert!(m.tasks_spawned >= n as u64);
}

#[test]
fn stress_tasks_spawn_wake_abort() {
    isolated("stress_tasks_spawn_wake_abort", 120, &[], scenario);
}
