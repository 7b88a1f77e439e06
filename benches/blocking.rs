//! Issue 4 benchmarks: the cost of a blocking system call, handoff vs tokio,
//! in one process run.
//!
//! 1. Per call: raw `getpid` (`syscall(SYS_getpid)`, which glibc cannot
//!    cache), `handoff::blocking(getpid)` in a task, tokio `block_in_place`,
//!    tokio `spawn_blocking(..).await`; sequential and with 64 concurrent
//!    tasks; ns/op medians over rounds, and threads created.
//! 2. Hand-off latency: one slot; task A enters a 20 ms call with task B
//!    queued behind it; the time from A's entry to B's first poll. For
//!    `blocking`, `blocking_long`, tokio `block_in_place`, and tokio with no
//!    bridge (B waits for A), in three conditions: back to back, after 200 ms
//!    idle, after the slot computed for 10 ms just before the call.
//! 3. Exit latency: the call returns -> the task continues (fast path).
//!
//! Run: `cargo bench --bench blocking` (about 2–3 minutes).
use std::sync::mpsc;
use std::time::{Duration, Instant};

use handoff::Runtime;

const ROUNDS: usize = 7;
const SEQ_CALLS: usize = 200_000;
const SPAWN_BLOCKING_CALLS: usize = 5_000;
const CONC_TASKS: usize = 64;
const CONC_CALLS_PER_TASK: usize = 2_000;
const CONC_SPAWN_BLOCKING_PER_TASK: usize = 100;
const WORKERS: usize = 2;

const CALL: Duration = Duration::from_millis(20);
const LAT_ROUNDS: usize = 250;
const LAT_ROUNDS_IDLE: usize = 30;
const LAT_ROUNDS_NO_BRIDGE: usize = 50;
const IDLE_BEFORE: Duration = Duration::from_millis(200);
const BUSY_BEFORE: Duration = Duration::from_millis(10);
const EXIT_SAMPLES: usize = 100_000;

fn getpid() -> i64 {
    // SAFETY: getpid has no preconditions; the raw syscall is never cached.
    unsafe { libc::syscall(libc::SYS_getpid) }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The `p`-quantile (0..=1) of sorted samples, nearest rank.
fn pct(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn os_threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

fn fmt_d(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 10_000 {
        format!("{ns} ns")
    } else if ns < 10_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{:.2} ms", ns as f64 / 1e6)
    }
}

fn spin_for(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

fn handoff_rt(workers: usize) -> Runtime {
    Runtime::builder()
        .worker_threads(workers)
        .build()
        .expect("build the handoff runtime")
}

fn tokio_rt(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("build the tokio runtime")
}

// ---------------------------------------------------------------- per call

struct PerCall {
    name: &'static str,
    seq_ns: f64,
    conc_ns: Option<f64>,
    threads: Option<(u64, usize)>,
}

fn raw_seq() -> f64 {
    median(
        (0..ROUNDS)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..SEQ_CALLS {
                    std::hint::black_box(getpid());
                }
                t.elapsed().as_nanos() as f64 / SEQ_CALLS as f64
            })
            .collect(),
    )
}

fn handoff_per_call() -> PerCall {
    let rt = handoff_rt(WORKERS);
    let seq = median(
        (0..ROUNDS)
            .map(|_| {
                rt.block_on(rt.spawn(async {
                    let t = Instant::now();
                    for _ in 0..SEQ_CALLS {
                        std::hint::black_box(handoff::blocking(getpid).await);
                    }
                    t.elapsed().as_nanos() as f64 / SEQ_CALLS as f64
                }))
                .unwrap()
            })
            .collect(),
    );
    let (spawned0, os0) = (rt.metrics().threads_spawned, os_threads());
    let mut os_peak = os0;
    let conc = median(
        (0..ROUNDS)
            .map(|_| {
                let t = Instant::now();
                rt.block_on(async {
                    let tasks: Vec<_> = (0..CONC_TASKS)
                        .map(|_| {
                            handoff::spawn(async {
                                for _ in 0..CONC_CALLS_PER_TASK {
                                    std::hint::black_box(handoff::blocking(getpid).await);
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.unwrap();
                    }
                });
                os_peak = os_peak.max(os_threads());
                t.elapsed().as_nanos() as f64 / (CONC_TASKS * CONC_CALLS_PER_TASK) as f64
            })
            .collect(),
    );
    let spawned = rt.metrics().threads_spawned - spawned0;
    PerCall {
        name: "handoff blocking(getpid)",
        seq_ns: seq,
        conc_ns: Some(conc),
        threads: Some((spawned, os_peak.saturating_sub(os0))),
    }
}

fn tokio_block_in_place() -> PerCall {
    let rt = tokio_rt(WORKERS);
    let seq = median(
        (0..ROUNDS)
            .map(|_| {
                rt.block_on(rt.spawn(async {
                    let t = Instant::now();
                    for _ in 0..SEQ_CALLS {
                        std::hint::black_box(tokio::task::block_in_place(getpid));
                    }
                    t.elapsed().as_nanos() as f64 / SEQ_CALLS as f64
                }))
                .unwrap()
            })
            .collect(),
    );
    let os0 = os_threads();
    let mut os_peak = os0;
    let conc = median(
        (0..ROUNDS)
            .map(|_| {
                let t = Instant::now();
                rt.block_on(async {
                    let tasks: Vec<_> = (0..CONC_TASKS)
                        .map(|_| {
                            tokio::spawn(async {
                                for _ in 0..CONC_CALLS_PER_TASK {
                                    std::hint::black_box(tokio::task::block_in_place(getpid));
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.unwrap();
                    }
                });
                os_peak = os_peak.max(os_threads());
                t.elapsed().as_nanos() as f64 / (CONC_TASKS * CONC_CALLS_PER_TASK) as f64
            })
            .collect(),
    );
    rt.shutdown_timeout(Duration::from_secs(5));
    PerCall {
        name: "tokio block_in_place(getpid)",
        seq_ns: seq,
        conc_ns: Some(conc),
        threads: Some((0, os_peak.saturating_sub(os0))),
    }
}

fn tokio_spawn_blocking() -> PerCall {
    let rt = tokio_rt(WORKERS);
    let seq = median(
        (0..ROUNDS)
            .map(|_| {
                rt.block_on(rt.spawn(async {
                    let t = Instant::now();
                    for _ in 0..SPAWN_BLOCKING_CALLS {
                        std::hint::black_box(tokio::task::spawn_blocking(getpid).await.unwrap());
                    }
                    t.elapsed().as_nanos() as f64 / SPAWN_BLOCKING_CALLS as f64
                }))
                .unwrap()
            })
            .collect(),
    );
    let os0 = os_threads();
    let mut os_peak = os0;
    let conc = median(
        (0..ROUNDS)
            .map(|_| {
                let t = Instant::now();
                rt.block_on(async {
                    let tasks: Vec<_> = (0..CONC_TASKS)
                        .map(|_| {
                            tokio::spawn(async {
                                for _ in 0..CONC_SPAWN_BLOCKING_PER_TASK {
                                    std::hint::black_box(
                                        tokio::task::spawn_blocking(getpid).await.unwrap(),
                                    );
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.unwrap();
                    }
                });
                os_peak = os_peak.max(os_threads());
                t.elapsed().as_nanos() as f64 / (CONC_TASKS * CONC_SPAWN_BLOCKING_PER_TASK) as f64
            })
            .collect(),
    );
    rt.shutdown_timeout(Duration::from_secs(5));
    PerCall {
        name: "tokio spawn_blocking(getpid)",
        seq_ns: seq,
        conc_ns: Some(conc),
        threads: Some((0, os_peak.saturating_sub(os0))),
    }
}

fn per_call() {
    println!("== per call: getpid, ns/op (median of {ROUNDS} rounds), {WORKERS} workers ==");
    let raw = PerCall {
        name: "raw syscall(SYS_getpid)",
        seq_ns: raw_seq(),
        conc_ns: None,
        threads: None,
    };
    let ours = handoff_per_call();
    let bip = tokio_block_in_place();
    let sb = tokio_spawn_blocking();
    println!(
        "{:<30} {:>12} {:>14} {:>26}",
        "", "sequential", "64 tasks", "threads created (64 tasks)"
    );
    for r in [&raw, &ours, &bip, &sb] {
        let conc = r.conc_ns.map_or("-".into(), |n| format!("{n:.0}"));
        let threads = match r.threads {
            None => "-".to_string(),
            Some((spawned, os)) if r.name.starts_with("handoff") => {
                format!("{spawned} spawned, OS +{os}")
            }
            Some((_, os)) => format!("OS +{os} (peak)"),
        };
        println!(
            "{:<30} {:>12.0} {:>14} {:>26}",
            r.name, r.seq_ns, conc, threads
        );
    }
    let conc = |r: &PerCall| r.conc_ns.unwrap_or(f64::NAN);
    println!("ratios (sequential / 64 tasks):");
    println!(
        "  blocking / raw                 {:>6.2}x            (target <= 1.2x)",
        ours.seq_ns / raw.seq_ns
    );
    println!(
        "  block_in_place / blocking      {:>6.1}x  {:>6.1}x   (target >= 3x)",
        bip.seq_ns / ours.seq_ns,
        conc(&bip) / conc(&ours)
    );
    println!(
        "  spawn_blocking / blocking      {:>6.1}x  {:>6.1}x   (target >= 60x)",
        sb.seq_ns / ours.seq_ns,
        conc(&sb) / conc(&ours)
    );
    println!(
        "  threads created by the 64-task blocking run beyond the slots: {} (target 0)",
        ours.threads.map_or(0, |t| t.0)
    );
    println!();
}

// ---------------------------------------------------------- hand-off latency

#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Blocking,
    BlockingLong,
    BlockInPlace,
    NoBridge,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Blocking => "handoff blocking",
            Variant::BlockingLong => "handoff blocking_long",
            Variant::BlockInPlace => "tokio block_in_place",
            Variant::NoBridge => "tokio, no bridge",
        }
    }

    fn target(self) -> &'static str {
        match self {
            Variant::Blocking => "p99 <= 50 µs",
            Variant::BlockingLong => "p99 <= 35 µs",
            Variant::BlockInPlace | Variant::NoBridge => "(baseline)",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Condition {
    BackToBack,
    AfterIdle,
    AfterBusy,
}

impl Condition {
    fn name(self) -> &'static str {
        match self {
            Condition::BackToBack => "back to back",
            Condition::AfterIdle => "after 200 ms idle",
            Condition::AfterBusy => "after 10 ms busy",
        }
    }
}

/// One round in a task on a one-slot runtime: maybe compute, spawn B behind
/// us, stamp, enter the 20 ms call; returns B's first poll - our entry.
async fn handoff_round(variant: Variant, condition: Condition) -> Duration {
    if condition == Condition::AfterBusy {
        spin_for(BUSY_BEFORE);
    }
    let (tx, rx) = mpsc::channel();
    let b = handoff::spawn(async move { tx.send(Instant::now()).unwrap() });
    let entry = Instant::now();
    match variant {
        Variant::Blocking => handoff::blocking(|| std::thread::sleep(CALL)).await,
        Variant::BlockingLong => handoff::blocking_long(|| std::thread::sleep(CALL)).await,
        _ => unreachable!("tokio variants run on tokio"),
    }
    b.await.unwrap();
    rx.recv().unwrap().saturating_duration_since(entry)
}

async fn tokio_round(variant: Variant, condition: Condition) -> Duration {
    if condition == Condition::AfterBusy {
        spin_for(BUSY_BEFORE);
    }
    let (tx, rx) = mpsc::channel();
    let b = tokio::spawn(async move { tx.send(Instant::now()).unwrap() });
    let entry = Instant::now();
    match variant {
        Variant::BlockInPlace => tokio::task::block_in_place(|| std::thread::sleep(CALL)),
        Variant::NoBridge => std::thread::sleep(CALL),
        _ => unreachable!("handoff variants run on handoff"),
    }
    b.await.unwrap();
    rx.recv().unwrap().saturating_duration_since(entry)
}

fn latency_samples(variant: Variant, condition: Condition) -> Vec<Duration> {
    let rounds = match (variant, condition) {
        (Variant::NoBridge, _) => LAT_ROUNDS_NO_BRIDGE,
        (_, Condition::AfterIdle) => LAT_ROUNDS_IDLE,
        _ => LAT_ROUNDS,
    };
    let idle = || {
        if condition == Condition::AfterIdle {
            std::thread::sleep(IDLE_BEFORE);
        }
    };
    let mut v: Vec<Duration> = match variant {
        Variant::Blocking | Variant::BlockingLong => {
            let rt = handoff_rt(1);
            (0..rounds)
                .map(|_| {
                    idle();
                    rt.block_on(rt.spawn(handoff_round(variant, condition)))
                        .unwrap()
                })
                .collect()
        }
        Variant::BlockInPlace | Variant::NoBridge => {
            let rt = tokio_rt(1);
            let v = (0..rounds)
                .map(|_| {
                    idle();
                    rt.block_on(rt.spawn(tokio_round(variant, condition)))
                        .unwrap()
                })
                .collect();
            rt.shutdown_timeout(Duration::from_secs(5));
            v
        }
    };
    v.sort();
    v
}

fn handoff_latency() {
    println!(
        "== hand-off latency: one slot, A in a 20 ms call, B queued; A's entry -> B's first poll =="
    );
    println!(
        "rounds: {LAT_ROUNDS} ({LAT_ROUNDS_IDLE} after idle, {LAT_ROUNDS_NO_BRIDGE} without a bridge)"
    );
    println!(
        "{:<20} {:<24} {:>10} {:>10} {:>10} {:>7}   target",
        "condition", "variant", "p50", "p99", "max", "rounds"
    );
    for condition in [
        Condition::BackToBack,
        Condition::AfterIdle,
        Condition::AfterBusy,
    ] {
        let mut p99 = Vec::new();
        for variant in [
            Variant::Blocking,
            Variant::BlockingLong,
            Variant::BlockInPlace,
            Variant::NoBridge,
        ] {
            let v = latency_samples(variant, condition);
            println!(
                "{:<20} {:<24} {:>10} {:>10} {:>10} {:>7}   {}",
                condition.name(),
                variant.name(),
                fmt_d(pct(&v, 0.5)),
                fmt_d(pct(&v, 0.99)),
                fmt_d(*v.last().unwrap()),
                v.len(),
                variant.target()
            );
            p99.push(pct(&v, 0.99));
        }
        println!(
            "{:<20} ratio p99 block_in_place / blocking: {:.1}x, / blocking_long: {:.1}x",
            "",
            p99[2].as_secs_f64() / p99[0].as_secs_f64(),
            p99[2].as_secs_f64() / p99[1].as_secs_f64()
        );
    }
    println!();
}

// -------------------------------------------------------------- exit latency

fn exit_latency() {
    println!("== exit latency: the call returns -> the task continues ({EXIT_SAMPLES} calls) ==");
    let rt = handoff_rt(WORKERS);
    let mut ours = rt
        .block_on(rt.spawn(async {
            let mut v = Vec::with_capacity(EXIT_SAMPLES);
            for _ in 0..EXIT_SAMPLES {
                let returned = handoff::blocking(|| {
                    std::hint::black_box(getpid());
                    Instant::now()
                })
                .await;
                v.push(returned.elapsed());
            }
            v
        }))
        .unwrap();
    let fast = rt.metrics().blocking_fast_exits;
    let trt = tokio_rt(WORKERS);
    let mut theirs = trt
        .block_on(trt.spawn(async {
            let mut v = Vec::with_capacity(EXIT_SAMPLES);
            for _ in 0..EXIT_SAMPLES {
                let returned = tokio::task::block_in_place(|| {
                    std::hint::black_box(getpid());
                    Instant::now()
                });
                v.push(returned.elapsed());
            }
            v
        }))
        .unwrap();
    trt.shutdown_timeout(Duration::from_secs(5));
    let mut clock: Vec<Duration> = (0..EXIT_SAMPLES)
        .map(|_| {
            let t = std::hint::black_box(Instant::now());
            t.elapsed()
        })
        .collect();
    ours.sort();
    theirs.sort();
    clock.sort();
    println!("{:<30} {:>10} {:>10} {:>10}", "", "p50", "p99", "max");
    for (name, v) in [
        ("handoff blocking (fast path)", &ours),
        ("tokio block_in_place", &theirs),
        ("clock only (two Instant::now)", &clock),
    ] {
        println!(
            "{:<30} {:>10} {:>10} {:>10}",
            name,
            fmt_d(pct(v, 0.5)),
            fmt_d(pct(v, 0.99)),
            fmt_d(*v.last().unwrap())
        );
    }
    println!(
        "fast exits counted: {fast}; ratio p99 block_in_place / blocking: {:.1}x (target: blocking p99 <= 2 µs)",
        pct(&theirs, 0.99).as_secs_f64() / pct(&ours, 0.99).as_secs_f64()
    );
    println!();
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass other
    // flags: run only when benchmarking.
    if !std::env::args().any(|a| a == "--bench") {
        println!("blocking bench: run with `cargo bench --bench blocking`");
        return;
    }
    let start = Instant::now();
    per_call();
    exit_latency();
    handoff_latency();
    println!("total bench time: {:.0?}", start.elapsed());
}
