//! The scheduler against tokio's multi-thread scheduler, on tokio's own
//! micro-benchmarks (`benches/rt_multi_threaded.rs` in tokio): the same
//! workloads, the same worker count, in the same process, alternating
//! rounds. Prints median and p90 time per iteration and ours/tokio.
//!
//! `cargo bench --bench executor` (env: `BENCH_WORKERS`, default 2;
//! `BENCH_ROUNDS`, default 15).
use futures::channel::oneshot;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// A boxed future run by `block_on` (it may borrow the caller's channels).
type LocalFut<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>;

const NUM_SPAWN: usize = 10_000;
const NUM_YIELD: usize = 1_000;
const YIELD_TASKS: usize = 200;
const NUM_PINGS: usize = 1_000;
const CHAIN: usize = 1_000;
/// Iterations per round (after one warm-up iteration).
const ITERS: usize = 10;

/// The same workload code for both runtimes: `$spawn` is the free spawn
/// function, `$yield` the yield future, `$rt` the runtime type with
/// `block_on` / `spawn` / `handle().spawn`.
macro_rules! workloads {
    ($modname:ident, $spawn:path, $yield:path) => {
        mod $modname {
            use super::*;

            pub fn spawn_many_local(block_on: &dyn Fn(LocalFut<'_>)) {
                block_on(Box::pin(async {
                    $spawn(async {
                        let mut handles = Vec::with_capacity(NUM_SPAWN);
                        for _ in 0..NUM_SPAWN {
                            handles.push($spawn(async {}));
                        }
                        for h in handles {
                            h.await.unwrap();
                        }
                    })
                    .await
                    .unwrap();
                }));
            }

            pub fn spawn_many_remote<S, H>(spawn: &S, block_on: &dyn Fn(LocalFut<'_>))
            where
                S: Fn(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) -> H,
                H: std::future::Future + 'static,
            {
                let mut handles = Vec::with_capacity(NUM_SPAWN);
                for _ in 0..NUM_SPAWN {
                    handles.push(spawn(Box::pin(async {})));
                }
                block_on(Box::pin(async move {
                    for h in handles {
                        h.await;
                    }
                }));
            }

            pub fn busy_tasks<S, H>(spawn: &S, n: usize, stop: Arc<AtomicBool>)
            where
                S: Fn(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) -> H,
            {
                for _ in 0..n {
                    let stop = stop.clone();
                    let _ = spawn(Box::pin(async move {
                        while !stop.load(Relaxed) {
                            $yield().await;
                        }
                    }));
                }
            }

            pub fn yield_many<S, H>(spawn: &S, tx: &mpsc::SyncSender<()>, rx: &mpsc::Receiver<()>)
            where
                S: Fn(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) -> H,
            {
                for _ in 0..YIELD_TASKS {
                    let tx = tx.clone();
                    let _ = spawn(Box::pin(async move {
                        for _ in 0..NUM_YIELD {
                            $yield().await;
                        }
                        tx.send(()).unwrap();
                    }));
                }
                for _ in 0..YIELD_TASKS {
                    rx.recv().unwrap();
                }
            }

            pub fn ping_pong(
                block_on: &dyn Fn(LocalFut<'_>),
                done_tx: &mpsc::SyncSender<()>,
                done_rx: &mpsc::Receiver<()>,
            ) {
                let rem = Arc::new(AtomicUsize::new(NUM_PINGS));
                let done_tx = done_tx.clone();
                block_on(Box::pin(async move {
                    $spawn(async move {
                        for _ in 0..NUM_PINGS {
                            let rem = rem.clone();
                            let done_tx = done_tx.clone();
                            $spawn(async move {
                                let (tx1, rx1) = oneshot::channel::<()>();
                                let (tx2, rx2) = oneshot::channel::<()>();
                                $spawn(async move {
                                    rx1.await.unwrap();
                                    tx2.send(()).unwrap();
                                });
                                tx1.send(()).unwrap();
                                rx2.await.unwrap();
                                if 1 == rem.fetch_sub(1, Relaxed) {
                                    done_tx.send(()).unwrap();
                                }
                            });
                        }
                    });
                    done_rx.recv().unwrap();
                }));
            }

            fn chain(done_tx: mpsc::SyncSender<()>, n: usize) {
                if n == 0 {
                    done_tx.send(()).unwrap();
                } else {
                    $spawn(async move {
                        chain(done_tx, n - 1);
                    });
                }
            }

            pub fn chained_spawn(
                block_on: &dyn Fn(LocalFut<'_>),
                done_tx: &mpsc::SyncSender<()>,
                done_rx: &mpsc::Receiver<()>,
            ) {
                let done_tx = done_tx.clone();
                block_on(Box::pin(async move {
                    $spawn(async move {
                        chain(done_tx, CHAIN);
                    });
                    done_rx.recv().unwrap();
                }));
            }
        }
    };
}

workloads!(ours, handoff::spawn, handoff::yield_now);
workloads!(theirs, tokio::spawn, tokio::task::yield_now);

/// Time per iteration of `f`, one warm-up then `ITERS` timed.
fn round(mut f: impl FnMut()) -> Duration {
    f();
    let t = Instant::now();
    for _ in 0..ITERS {
        f();
    }
    t.elapsed() / ITERS as u32
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}

fn main() {
    let workers: usize = std::env::var("BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let ours_rt = handoff::Runtime::builder()
        .worker_threads(workers)
        .build()
        .unwrap();
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    let ob = |f: LocalFut<'_>| ours_rt.block_on(f);
    let tb = |f: LocalFut<'_>| tokio_rt.block_on(f);
    let oh = ours_rt.handle().clone();
    let th = tokio_rt.handle().clone();
    let ospawn = move |f: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>| {
        let h = oh.spawn(f);
        async move {
            h.await.unwrap();
        }
    };
    let tspawn = move |f: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>| {
        let h = th.spawn(f);
        async move {
            h.await.unwrap();
        }
    };
    let (tx, rx) = mpsc::sync_channel::<()>(1000);

    type Bench<'a> = (&'static str, Box<dyn FnMut() + 'a>, Box<dyn FnMut() + 'a>);
    let mut benches: Vec<Bench<'_>> = vec![
        (
            "spawn_many_local",
            Box::new(|| ours::spawn_many_local(&ob)),
            Box::new(|| theirs::spawn_many_local(&tb)),
        ),
        (
            "spawn_many_remote_idle",
            Box::new(|| ours::spawn_many_remote(&ospawn, &ob)),
            Box::new(|| theirs::spawn_many_remote(&tspawn, &tb)),
        ),
        (
            "spawn_many_remote_busy",
            Box::new(|| {
                let stop = Arc::new(AtomicBool::new(false));
                ours::busy_tasks(&ospawn, workers, stop.clone());
                ours::spawn_many_remote(&ospawn, &ob);
                stop.store(true, Relaxed);
            }),
            Box::new(|| {
                let stop = Arc::new(AtomicBool::new(false));
                theirs::busy_tasks(&tspawn, workers, stop.clone());
                theirs::spawn_many_remote(&tspawn, &tb);
                stop.store(true, Relaxed);
            }),
        ),
        (
            "yield_many",
            Box::new(|| ours::yield_many(&ospawn, &tx, &rx)),
            Box::new(|| theirs::yield_many(&tspawn, &tx, &rx)),
        ),
        (
            "ping_pong",
            Box::new(|| ours::ping_pong(&ob, &tx, &rx)),
            Box::new(|| theirs::ping_pong(&tb, &tx, &rx)),
        ),
        (
            "chained_spawn",
            Box::new(|| ours::chained_spawn(&ob, &tx, &rx)),
            Box::new(|| theirs::chained_spawn(&tb, &tx, &rx)),
        ),
    ];

    println!("executor benchmarks: {workers} workers, {rounds} rounds x {ITERS} iterations, alternating handoff / tokio");
    println!(
        "{:<24} {:>12} {:>12} {:>12} {:>12} {:>9} {:>9}",
        "benchmark", "ours p50", "tokio p50", "ours p90", "tokio p90", "p50 ratio", "p90 ratio"
    );
    let mut worst: f64 = 0.0;
    for (name, o, t) in benches.iter_mut() {
        let mut ov = Vec::with_capacity(rounds);
        let mut tv = Vec::with_capacity(rounds);
        for r in 0..rounds {
            if r % 2 == 0 {
                ov.push(round(&mut *o));
                tv.push(round(&mut *t));
            } else {
                tv.push(round(&mut *t));
                ov.push(round(&mut *o));
            }
        }
        let (o50, t50) = (pct(&mut ov, 0.5), pct(&mut tv, 0.5));
        let (o90, t90) = (pct(&mut ov, 0.9), pct(&mut tv, 0.9));
        let r50 = o50.as_secs_f64() / t50.as_secs_f64();
        let r90 = o90.as_secs_f64() / t90.as_secs_f64();
        worst = worst.max(r50);
        println!(
            "{:<24} {:>12} {:>12} {:>12} {:>12} {:>9.2} {:>9.2}",
            name,
            fmt(o50),
            fmt(t50),
            fmt(o90),
            fmt(t90),
            r50,
            r90
        );
    }
    println!("worst p50 ratio (ours/tokio, target <= 1.00): {worst:.2}");
    let m = ours_rt.metrics();
    println!(
        "handoff metrics: polls={} steals={} stolen={} overflows={} threads_spawned={} spawned={}",
        m.polls, m.steals, m.stolen_tasks, m.overflows, m.threads_spawned, m.tasks_spawned
    );
}
