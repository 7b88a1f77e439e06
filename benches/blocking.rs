//! Issue 4 benchmarks: the cost of a blocking system call, handoff vs tokio,
//! in one process run.
//!
//! 1. Per call: raw `getpid` (`syscall(SYS_getpid)`, which glibc cannot
//!    cache), `handoff::blocking(getpid)` in a task, tokio `block_in_place`,
//!    tokio `spawn_blocking(..).await`; sequential and with 64 concurrent
//!    tasks (also with a yield after each call, a request handler's
//!    pattern); ns/op medians over rounds, and threads created.
//! 2. Hand-off latency: one slot; task A enters a 20 ms call with task B
//!    queued behind it; the time from A's entry to B's first poll. For
//!    `blocking`, `blocking_long`, tokio `block_in_place`, and tokio with no
//!    bridge (B waits for A), in three conditions: back to back, after 200 ms
//!    idle, after the slot computed for 10 ms just before the call. Next to
//!    them, in the same run, the kernel's floor: the same rounds with bare
//!    threads and one or two raw wake-ups and no runtime at all (see "the
//!    kernel's floor" below), and our ratios to it.
//!    Under the table, each variant's rounds split by where the woken side
//!    ran (the waker's CPU, or another: see "Where the tail comes from").
//! 3. Exit latency: the call returns -> the task continues (fast path).
//!
//! Run: `cargo bench --bench blocking` (about 2.5 minutes of measuring);
//! `BLOCKING_BENCH=per_call,exit,latency` picks sections,
//! `BLOCKING_BENCH_COND=back,idle,busy` the latency conditions, and
//! `BLOCKING_BENCH_RETAKE_US` overrides handoff's `retake_after`.
use std::sync::atomic::AtomicU32;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use handoff::Runtime;

const ROUNDS: usize = 11;
/// Sequential calls are measured in chunks, alternating with raw calls.
const CHUNK: usize = 1_000;
const CHUNKS: usize = 40;
const SB_CHUNK: usize = 20;
const CONC_TASKS: usize = 64;
const CONC_CALLS_PER_TASK: usize = 1_000;
const CONC_SPAWN_BLOCKING_PER_TASK: usize = 50;
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

/// The CPU this thread runs on now (-1 if the kernel cannot say).
fn cpu_now() -> i32 {
    // SAFETY: sched_getcpu has no arguments or preconditions.
    unsafe { libc::sched_getcpu() }
}

/// One hand-off round: A's entry -> B's first poll, and whether B ran on
/// the CPU A entered its call on (see "Where the tail comes from").
#[derive(Clone, Copy)]
struct Round {
    latency: Duration,
    same_cpu: bool,
}

/// Sorted latencies of `rounds` (all, or those with `same_cpu == only`).
fn latencies(rounds: &[Round], only: Option<bool>) -> Vec<Duration> {
    let mut v: Vec<Duration> = rounds
        .iter()
        .filter(|r| only.is_none_or(|o| r.same_cpu == o))
        .map(|r| r.latency)
        .collect();
    v.sort();
    v
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

/// The handoff runtime; `BLOCKING_BENCH_RETAKE_US` overrides `retake_after`
/// (to see how much of the hand-off latency is the retake delay).
fn handoff_rt(workers: usize) -> Runtime {
    let mut b = Runtime::builder();
    b.worker_threads(workers);
    if let Some(us) = std::env::var("BLOCKING_BENCH_RETAKE_US")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        b.retake_after(Duration::from_micros(us));
    }
    b.build().expect("build the handoff runtime")
}

fn tokio_rt(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("build the tokio runtime")
}

// ---------------------------------------------------------------- per call
//
// The machine is shared and noisy, so the variants are interleaved: each
// round measures all of them back to back, and ratios are medians of the
// per-round ratios (two variants in one round saw the same load).

/// Threads of this process whose name starts with `prefix`.
fn threads_named(prefix: &str) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with(prefix))
        .count()
}

/// CPU time (user + system) of the threads named `prefix`.
fn cpu_of_threads(prefix: &str) -> Duration {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let ticks: u64 = dir
        .filter_map(|e| {
            let path = e.ok()?.path();
            let comm = std::fs::read_to_string(path.join("comm")).ok()?;
            if !comm.starts_with(prefix) {
                return None;
            }
            let stat = std::fs::read_to_string(path.join("stat")).ok()?;
            // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
            let rest = &stat[stat.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split(' ').collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum();
    Duration::from_nanos(ticks * 1_000_000_000 / hz)
}

fn per_op(t: Instant, ops: usize) -> f64 {
    t.elapsed().as_nanos() as f64 / ops as f64
}

/// `n` raw calls, ns/op.
fn raw_chunk(n: usize) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(getpid());
    }
    per_op(t, n)
}

/// The same number of raw calls as a 64-task round, split over `WORKERS`
/// plain threads: the floor of the 64-task column (ns/op), which no bridge
/// can beat.
fn raw_parallel_round() -> f64 {
    let t = Instant::now();
    let per_thread = CONC_TASKS * CONC_CALLS_PER_TASK / WORKERS;
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| raw_chunk(per_thread));
        }
    });
    per_op(t, per_thread * WORKERS)
}

/// Sequential calls in one task, interleaved in chunks with raw calls on the
/// same thread (so both see the same load): per-chunk ns/op, raw and bridged.
fn handoff_seq_round(rt: &Runtime) -> (Vec<f64>, Vec<f64>) {
    rt.block_on(rt.spawn(async {
        let (mut raw, mut ours) = (Vec::new(), Vec::new());
        for _ in 0..CHUNKS {
            raw.push(raw_chunk(CHUNK));
            let t = Instant::now();
            for _ in 0..CHUNK {
                std::hint::black_box(handoff::blocking(getpid).await);
            }
            ours.push(per_op(t, CHUNK));
        }
        (raw, ours)
    }))
    .unwrap()
}

/// 64 tasks making calls at once. `yield_each`: each call is followed by a
/// yield, as a request handler's call is followed by an await (the task
/// gives its thread up between calls).
fn handoff_conc_round(rt: &Runtime, yield_each: bool) -> f64 {
    let t = Instant::now();
    rt.block_on(async move {
        let tasks: Vec<_> = (0..CONC_TASKS)
            .map(|_| {
                handoff::spawn(async move {
                    for _ in 0..CONC_CALLS_PER_TASK {
                        std::hint::black_box(handoff::blocking(getpid).await);
                        if yield_each {
                            handoff::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    per_op(t, CONC_TASKS * CONC_CALLS_PER_TASK)
}

fn bip_seq_round(rt: &tokio::runtime::Runtime) -> (Vec<f64>, Vec<f64>) {
    rt.block_on(rt.spawn(async {
        let (mut raw, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..CHUNKS {
            raw.push(raw_chunk(CHUNK));
            let t = Instant::now();
            for _ in 0..CHUNK {
                std::hint::black_box(tokio::task::block_in_place(getpid));
            }
            theirs.push(per_op(t, CHUNK));
        }
        (raw, theirs)
    }))
    .unwrap()
}

fn bip_conc_round(rt: &tokio::runtime::Runtime, yield_each: bool) -> f64 {
    let t = Instant::now();
    rt.block_on(async move {
        let tasks: Vec<_> = (0..CONC_TASKS)
            .map(|_| {
                tokio::spawn(async move {
                    for _ in 0..CONC_CALLS_PER_TASK {
                        std::hint::black_box(tokio::task::block_in_place(getpid));
                        if yield_each {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    per_op(t, CONC_TASKS * CONC_CALLS_PER_TASK)
}

fn sb_seq_round(rt: &tokio::runtime::Runtime) -> (Vec<f64>, Vec<f64>) {
    rt.block_on(rt.spawn(async {
        let (mut raw, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..CHUNKS {
            raw.push(raw_chunk(CHUNK));
            let t = Instant::now();
            for _ in 0..SB_CHUNK {
                std::hint::black_box(tokio::task::spawn_blocking(getpid).await.unwrap());
            }
            theirs.push(per_op(t, SB_CHUNK));
        }
        (raw, theirs)
    }))
    .unwrap()
}

fn sb_conc_round(rt: &tokio::runtime::Runtime) -> f64 {
    let t = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..CONC_TASKS)
            .map(|_| {
                tokio::spawn(async {
                    for _ in 0..CONC_SPAWN_BLOCKING_PER_TASK {
                        std::hint::black_box(tokio::task::spawn_blocking(getpid).await.unwrap());
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    per_op(t, CONC_TASKS * CONC_SPAWN_BLOCKING_PER_TASK)
}

fn per_call() {
    println!("== per call: getpid, ns/op, {ROUNDS} interleaved rounds, {WORKERS} workers ==");
    let ours_rt = handoff_rt(WORKERS);
    let bip_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .thread_name("tok-bip")
        .build()
        .unwrap();
    let sb_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .thread_name("tok-sb")
        .build()
        .unwrap();
    // Warm up: every runtime has its workers.
    handoff_seq_round(&ours_rt);
    bip_seq_round(&bip_rt);
    sb_seq_round(&sb_rt);
    let (bip0, sb0) = (threads_named("tok-bip"), threads_named("tok-sb"));
    let ours0 = ours_rt.metrics();
    let (mut bip_peak, mut sb_peak) = (bip0, sb0);
    // seq[v] = (raw chunks, variant chunks), measured side by side.
    let mut seq: [(Vec<f64>, Vec<f64>); 3] = Default::default();
    let mut conc: [Vec<f64>; 3] = Default::default();
    // 64 tasks, a yield after each call: [handoff, block_in_place].
    let mut conc_y: [Vec<f64>; 2] = Default::default();
    // The same calls on WORKERS plain threads.
    let mut conc_raw = Vec::new();
    let (mut mon_cpu, mut mon_wall) = (Duration::ZERO, Duration::ZERO);
    let add = |into: &mut (Vec<f64>, Vec<f64>), (raw, v): (Vec<f64>, Vec<f64>)| {
        into.0.extend(raw);
        into.1.extend(v);
    };
    for _ in 0..ROUNDS {
        let (cpu0, wall0) = (cpu_of_threads("handoff-monitor"), Instant::now());
        add(&mut seq[0], handoff_seq_round(&ours_rt));
        mon_cpu += cpu_of_threads("handoff-monitor").saturating_sub(cpu0);
        mon_wall += wall0.elapsed();
        add(&mut seq[1], bip_seq_round(&bip_rt));
        add(&mut seq[2], sb_seq_round(&sb_rt));
        conc_raw.push(raw_parallel_round());
        conc[0].push(handoff_conc_round(&ours_rt, false));
        conc_y[0].push(handoff_conc_round(&ours_rt, true));
        conc[1].push(bip_conc_round(&bip_rt, false));
        conc_y[1].push(bip_conc_round(&bip_rt, true));
        bip_peak = bip_peak.max(threads_named("tok-bip"));
        conc[2].push(sb_conc_round(&sb_rt));
        sb_peak = sb_peak.max(threads_named("tok-sb"));
    }
    let ours1 = ours_rt.metrics();
    bip_rt.shutdown_timeout(Duration::from_secs(5));
    sb_rt.shutdown_timeout(Duration::from_secs(5));

    let ratio = |a: &[f64], b: &[f64]| median(a.iter().zip(b).map(|(x, y)| x / y).collect());
    // A variant's cost relative to raw, from chunks run side by side.
    let vs_raw: Vec<f64> = seq.iter().map(|(raw, v)| ratio(v, raw)).collect();
    let all_raw: Vec<f64> = seq
        .iter()
        .flat_map(|(raw, _)| raw.iter().copied())
        .collect();
    let names = [
        "handoff blocking(getpid)",
        "tokio block_in_place(getpid)",
        "tokio spawn_blocking(getpid)",
    ];
    let threads = [
        format!(
            "{} spawned ({} retakes, {} starved, {} deferred)",
            ours1.threads_spawned - ours0.threads_spawned,
            ours1.retakes - ours0.retakes,
            ours1.retakes_starved - ours0.retakes_starved,
            ours1.retakes_deferred - ours0.retakes_deferred
        ),
        format!("+{} (now {bip_peak})", bip_peak - bip0),
        format!("+{} (now {sb_peak})", sb_peak - sb0),
    ];
    println!(
        "{:<30} {:>10} {:>8} {:>10} {:>12}   threads created by the 64-task runs",
        "", "sequential", "x raw", "64 tasks", "64 + yields"
    );
    println!(
        "{:<30} {:>10.0} {:>8} {:>10.0} {:>12}   -   (64-task column: the same calls on {WORKERS} plain threads)",
        "raw syscall(SYS_getpid)",
        median(all_raw),
        "1.00x",
        median(conc_raw.clone()),
        "-"
    );
    for i in 0..3 {
        let yields = match conc_y.get(i) {
            Some(v) => format!("{:.0}", median(v.clone())),
            None => "-".to_string(),
        };
        println!(
            "{:<30} {:>10.0} {:>7.2}x {:>10.0} {:>12}   {}",
            names[i],
            median(seq[i].1.clone()),
            vs_raw[i],
            median(conc[i].clone()),
            yields,
            threads[i]
        );
    }
    println!("ratios (sequential: medians of side-by-side chunk ratios; 64 tasks: of rounds):");
    println!(
        "  blocking / raw                 {:>6.2}x            (target <= 1.2x)",
        vs_raw[0]
    );
    println!(
        "  block_in_place / blocking      {:>6.1}x  {:>6.1}x   (target >= 3x; with a yield after \
         each call: {:.1}x)",
        vs_raw[1] / vs_raw[0],
        ratio(&conc[1], &conc[0]),
        ratio(&conc_y[1], &conc_y[0])
    );
    println!(
        "  block_in_place / raw           {:>6.1}x  {:>6.1}x   (the most any bridge can reach: a \
         bridge that cost nothing would run at raw speed)",
        vs_raw[1],
        ratio(&conc[1], &conc_raw)
    );
    println!(
        "  blocking / raw                 {:>6.2}x  {:>6.2}x",
        vs_raw[0],
        ratio(&conc[0], &conc_raw)
    );
    println!(
        "  spawn_blocking / blocking      {:>6.1}x  {:>6.1}x   (target >= 60x)",
        vs_raw[2] / vs_raw[0],
        ratio(&conc[2], &conc[0])
    );
    println!(
        "  note: in a loop that never yields, tokio's block_in_place hands its core to another \
         thread on the first call and the task runs on without one, so its later sequential \
         calls are plain calls (no bridge at all); likewise in the 64-task column each task \
         pays one hand-off per poll, not per call. The '64 + yields' column (a yield after \
         each call, as a request handler awaits after its call) makes every call pay it"
    );
    println!(
        "  threads created by the 64-task blocking runs beyond the slots: {} (target 0)",
        ours1.threads_spawned - ours0.threads_spawned
    );
    println!(
        "  monitor during the sequential blocking runs: {:.1}% of a core ({} wakes in all rounds)",
        100.0 * mon_cpu.as_secs_f64() / mon_wall.as_secs_f64(),
        ours1.monitor_wakes - ours0.monitor_wakes
    );
    println!();
}

// ---------------------------------------------------------- hand-off latency

#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// `blocking` with call-site learning off: the monitor's retake path.
    Blocking,
    /// `blocking` with call-site learning on (the default): after two
    /// retaken calls the site is entered like `blocking_long`.
    BlockingLearned,
    BlockingLong,
    BlockInPlace,
    NoBridge,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Blocking => "handoff blocking",
            Variant::BlockingLearned => "blocking, site learning",
            Variant::BlockingLong => "handoff blocking_long",
            Variant::BlockInPlace => "tokio block_in_place",
            Variant::NoBridge => "tokio, no bridge",
        }
    }

    fn target(self) -> &'static str {
        match self {
            Variant::Blocking => "p99 <= 50 µs (retake path, learning off)",
            Variant::BlockingLearned => "(learning on, the default)",
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
async fn handoff_round(variant: Variant, condition: Condition) -> Round {
    if condition == Condition::AfterBusy {
        spin_for(BUSY_BEFORE);
    }
    let (tx, rx) = mpsc::channel();
    let b = handoff::spawn(async move { tx.send((Instant::now(), cpu_now())).unwrap() });
    let entry = Instant::now();
    let entry_cpu = cpu_now();
    match variant {
        Variant::Blocking | Variant::BlockingLearned => {
            handoff::blocking(|| std::thread::sleep(CALL)).await
        }
        Variant::BlockingLong => handoff::blocking_long(|| std::thread::sleep(CALL)).await,
        _ => unreachable!("tokio variants run on tokio"),
    }
    b.await.unwrap();
    let (ran, cpu) = rx.recv().unwrap();
    Round {
        latency: ran.saturating_duration_since(entry),
        same_cpu: cpu == entry_cpu,
    }
}

async fn tokio_round(variant: Variant, condition: Condition) -> Round {
    if condition == Condition::AfterBusy {
        spin_for(BUSY_BEFORE);
    }
    let (tx, rx) = mpsc::channel();
    let b = tokio::spawn(async move { tx.send((Instant::now(), cpu_now())).unwrap() });
    let entry = Instant::now();
    let entry_cpu = cpu_now();
    match variant {
        Variant::BlockInPlace => tokio::task::block_in_place(|| std::thread::sleep(CALL)),
        Variant::NoBridge => std::thread::sleep(CALL),
        _ => unreachable!("handoff variants run on handoff"),
    }
    b.await.unwrap();
    let (ran, cpu) = rx.recv().unwrap();
    Round {
        latency: ran.saturating_duration_since(entry),
        same_cpu: cpu == entry_cpu,
    }
}

fn latency_samples(variant: Variant, condition: Condition) -> Vec<Round> {
    let rounds = match (variant, condition) {
        (Variant::NoBridge, _) => LAT_ROUNDS_NO_BRIDGE,
        (_, Condition::AfterIdle) => LAT_ROUNDS_IDLE,
        _ => LAT_ROUNDS,
    };
    let idle = condition == Condition::AfterIdle;
    // The rounds are driven by a task inside the runtime, as Go's reference
    // drives them from its main goroutine (`benches/go`): each round is a
    // new task A; the driver waits for it (on the runtime's timer first,
    // after idle). Driving each round by `block_on` from the bench's own
    // thread would add that thread's wake-up to every round, and the vCPU
    // it leaves idle is where the kernel then puts the hand-off's wake-up in
    // a third to a half of the rounds ("Where the tail comes from"). One
    // unrecorded warm-up round first, on both runtimes: a fresh runtime's
    // first hand-off starts the thread the slot goes to (handoff) or the
    // blocking-pool thread (tokio), 100-250 µs here, and after idle the p99
    // of 30 rounds is their maximum.
    match variant {
        Variant::Blocking | Variant::BlockingLearned | Variant::BlockingLong => {
            let rt = handoff_rt(1);
            let learning = handoff::call_site_learning();
            handoff::set_call_site_learning(variant == Variant::BlockingLearned);
            let v = rt
                .block_on(rt.spawn(async move {
                    let mut v = Vec::with_capacity(rounds);
                    // Warm-up (see above): not recorded.
                    handoff::spawn(handoff_round(variant, condition))
                        .await
                        .unwrap();
                    for _ in 0..rounds {
                        if idle {
                            handoff::time::sleep(IDLE_BEFORE).await;
                        }
                        v.push(
                            handoff::spawn(handoff_round(variant, condition))
                                .await
                                .unwrap(),
                        );
                    }
                    v
                }))
                .unwrap();
            handoff::set_call_site_learning(learning);
            v
        }
        Variant::BlockInPlace | Variant::NoBridge => {
            let rt = tokio_rt(1);
            let v = rt
                .block_on(rt.spawn(async move {
                    let mut v = Vec::with_capacity(rounds);
                    // Warm-up (see above): not recorded.
                    tokio::spawn(tokio_round(variant, condition)).await.unwrap();
                    for _ in 0..rounds {
                        if idle {
                            tokio::time::sleep(IDLE_BEFORE).await;
                        }
                        v.push(tokio::spawn(tokio_round(variant, condition)).await.unwrap());
                    }
                    v
                }))
                .unwrap();
            rt.shutdown_timeout(Duration::from_secs(5));
            v
        }
    }
}

/// One line of the "where the tail comes from" block: the rounds whose
/// woken side ran on the waker's CPU, and those where it ran elsewhere.
fn split_line(name: &str, rounds: &[Round]) -> String {
    let part = |same: bool| {
        let v = latencies(rounds, Some(same));
        if v.is_empty() {
            format!("{:>4} {:>10} {:>10}", 0, "-", "-")
        } else {
            format!(
                "{:>4} {:>10} {:>10}",
                v.len(),
                fmt_d(pct(&v, 0.5)),
                fmt_d(pct(&v, 0.9))
            )
        }
    };
    format!("{:<20} {:<24} {} | {}", "", name, part(true), part(false))
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
    // BLOCKING_BENCH_COND=back,idle,busy selects conditions (all by default).
    let only = std::env::var("BLOCKING_BENCH_COND").unwrap_or_default();
    let conditions = [
        (Condition::BackToBack, "back"),
        (Condition::AfterIdle, "idle"),
        (Condition::AfterBusy, "busy"),
    ];
    for (condition, key) in conditions {
        if !only.is_empty() && !only.split(',').any(|s| s == key) {
            continue;
        }
        let (mut p50, mut p99) = (Vec::new(), Vec::new());
        let mut splits = Vec::new();
        for variant in [
            Variant::Blocking,
            Variant::BlockingLong,
            Variant::BlockInPlace,
            Variant::NoBridge,
            Variant::BlockingLearned,
        ] {
            let rounds = latency_samples(variant, condition);
            let v = latencies(&rounds, None);
            if variant != Variant::NoBridge {
                splits.push(split_line(variant.name(), &rounds));
            }
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
            p50.push(pct(&v, 0.5));
            p99.push(pct(&v, 0.99));
        }
        let rounds = if condition == Condition::AfterIdle {
            LAT_ROUNDS_IDLE
        } else {
            LAT_ROUNDS
        };
        let mut floors = Vec::new();
        for kind in [Floor::Futex, Floor::Eventfd, Floor::MonitorChain] {
            let samples = floor_samples(kind, rounds, condition);
            splits.push(split_line(kind.name(), &samples));
            let v = latencies(&samples, None);
            println!(
                "{:<20} {:<24} {:>10} {:>10} {:>10} {:>7}   (kernel + VM, no runtime)",
                condition.name(),
                kind.name(),
                fmt_d(pct(&v, 0.5)),
                fmt_d(pct(&v, 0.99)),
                fmt_d(*v.last().unwrap()),
                v.len(),
            );
            floors.push((pct(&v, 0.5), pct(&v, 0.99)));
        }
        let r = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
        println!(
            "{:<20} ratio p99 block_in_place / blocking: {:.1}x, / blocking_long: {:.1}x",
            "",
            r(p99[2], p99[0]),
            r(p99[2], p99[1])
        );
        // The one-wake floor: the thread that takes the slot is parked on
        // its futex (handoff's spare, `Shared::poller_taken`; tokio's
        // blocking-pool thread waits on a condvar), so it is the futex row,
        // for both runtimes.
        let (f50, f99) = floors[0];
        println!(
            "{:<20} ratio to the one-wake floor (futex), p50 / p99: blocking {:.2}x / {:.1}x, \
             blocking_long {:.2}x / {:.1}x, block_in_place {:.2}x / {:.1}x",
            "",
            r(p50[0], f50),
            r(p99[0], f99),
            r(p50[1], f50),
            r(p99[1], f99),
            r(p50[2], f50),
            r(p99[2], f99)
        );
        println!(
            "{:<20} {:<24} {:>26} | {:>26}",
            "",
            "where the woken side ran:",
            "on the waker's CPU: n p50 p90",
            "on another CPU: n p50 p90"
        );
        for line in splits {
            println!("{line}");
        }
    }
    println!();
}

// ------------------------------------------------------- the kernel's floor
//
// The hand-off is one or two thread wake-ups in series, and on a VM each
// wake-up has a scheduling tail that no runtime can remove. These rounds
// measure that floor with bare threads and system calls, in the same
// process run and the same shape as a latency round: thread A stamps its
// "entry", wakes a thread, then sleeps for the 20 ms call, and the time is
// A's entry -> the woken thread running.
// - `futex`: A wakes a thread parked on a futex (blocking_long's hand-off
//   to a parked thread);
// - `eventfd`: A writes an eventfd that a thread waits for in `epoll_wait`
//   (a hand-off to the thread blocked in the reactor);
// - `monitor chain`: A wakes a "monitor" thread (futex; SCHED_BATCH, 1 ns
//   timer slack, as handoff's monitor), which sleeps until entry +
//   `retake_after` (absolute deadline) and then wakes a parked thread
//   (futex): the wake-ups in series of a retake by a monitor that was
//   asleep, without a runtime. (handoff's `blocking` now gives such a call
//   to the idle thread itself, `standby.rs`: one wake-up, so its floor is
//   the larger of `retake_after` and the `eventfd`/`futex` rows.)
//
// Measured on the 2-vCPU VM: a wake-up alone is ~20 µs at the median
// (futex) and ~27 µs (eventfd into epoll), with millisecond tails whenever
// other processes keep both vCPUs busy; the waker's own system call takes
// ~9 µs when the woken thread runs on the waker's CPU, ~22 µs when it runs
// on the other one (the VM's inter-processor interrupt).
//
// ## Where the tail comes from
// Every round also records whether the woken side (B's first poll, or the
// floor's woken thread) ran on the CPU that A entered its call on, and the
// bench prints the two groups apart ("where the woken side ran"). On the
// reference VM (2 vCPUs, `cpuidle` haltpoll with `guest_halt_poll_ns` 0,
// so an idle vCPU halts at once) a wake-up that the kernel places on the
// other vCPU takes ~100-130 µs at the median, one on the waker's CPU
// ~20-30 µs. The bare floors almost always stay on the waker's CPU. When
// each round was a `block_on` from the bench's own thread, the runtime
// rounds (handoff's and tokio's alike) went to the other vCPU in 68-124 of
// 250 back-to-back rounds: that thread woke at the end of each round,
// spawned the next and left its vCPU idle just before A's entry, and the
// kernel's idle-CPU search picked it. Those rounds were the whole p99
// (141-166 µs). Driven from a task inside the runtime, as Go's reference
// drives them from its main goroutine, 1-4 of 250 do, and the p99 is the
// rest of the distribution plus those few. Two ways to
// steer the wake-up to the caller's CPU were measured and dropped:
// - `sched_setaffinity` on the idle thread before waking it: the kernel
//   then moves a thread that last ran on the other vCPU, which costs the
//   waker ~24 µs (p50 of the hand-off 23 -> 45 µs);
// - preferring an idle thread that last blocked on the caller's CPU: one
//   slot has one idle thread, so there is nothing to choose from, and the
//   kernel's choice did not follow the thread's last CPU anyway.

fn futex_wait_raw(word: &AtomicU32, expected: u32, deadline: Option<&libc::timespec>) {
    let ts = deadline.map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live aligned u32; `ts` is null or a live timespec.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT_BITSET | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ts,
            std::ptr::null::<u32>(),
            u32::MAX,
        )
    };
}

fn futex_wake_raw(word: &AtomicU32) {
    // SAFETY: `word` is a live aligned u32; FUTEX_WAKE only reads the address.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        )
    };
}

fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn ns_to_timespec(ns: u64) -> libc::timespec {
    libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Floor {
    Futex,
    Eventfd,
    MonitorChain,
}

impl Floor {
    fn name(self) -> &'static str {
        match self {
            Floor::Futex => "floor: futex wake",
            Floor::Eventfd => "floor: eventfd->epoll",
            Floor::MonitorChain => "floor: monitor chain",
        }
    }
}

/// A thread that waits for round numbers on `word` (or on an eventfd in
/// epoll) and writes the time it ran into `ran`.
fn floor_samples(kind: Floor, rounds: usize, condition: Condition) -> Vec<Round> {
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
    use std::sync::Arc;
    struct Sh {
        go: AtomicU32,
        mon: AtomicU32,
        entry: AtomicU64,
        ran: AtomicU64,
        ran_cpu: std::sync::atomic::AtomicI32,
        efd: i32,
        epfd: i32,
    }
    // SAFETY: plain system calls creating descriptors owned by this function.
    let (efd, epfd) = unsafe {
        let efd = libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC);
        let epfd = libc::epoll_create1(libc::EPOLL_CLOEXEC);
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32 | libc::EPOLLET as u32,
            u64: 0,
        };
        libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, efd, &mut ev);
        (efd, epfd)
    };
    let sh = Arc::new(Sh {
        go: AtomicU32::new(0),
        mon: AtomicU32::new(0),
        entry: AtomicU64::new(0),
        ran: AtomicU64::new(0),
        ran_cpu: std::sync::atomic::AtomicI32::new(-1),
        efd,
        epfd,
    });
    const STOP: u32 = u32::MAX;
    let retake = clock_retake();
    // The woken thread.
    let s = sh.clone();
    let waker = std::thread::spawn(move || {
        let mut seen = 0;
        loop {
            if kind == Floor::Eventfd {
                let mut ev = libc::epoll_event { events: 0, u64: 0 };
                // SAFETY: a live epoll descriptor and one event of room.
                unsafe { libc::epoll_wait(s.epfd, &mut ev, 1, -1) };
                let mut buf = 0u64;
                // SAFETY: reads 8 bytes into `buf` from our eventfd.
                unsafe { libc::read(s.efd, (&mut buf as *mut u64).cast(), 8) };
            } else {
                futex_wait_raw(&s.go, seen, None);
            }
            let r = s.go.load(SeqCst);
            if r == STOP {
                return;
            }
            if r != seen {
                seen = r;
                s.ran_cpu.store(cpu_now(), SeqCst);
                s.ran.store(mono_ns(), SeqCst);
            }
        }
    });
    // The "monitor" of the chain.
    let s = sh.clone();
    let monitor = std::thread::spawn(move || {
        if kind != Floor::MonitorChain {
            return;
        }
        // SAFETY: our own thread's timer slack and policy; `param` is a
        // valid sched_param the kernel only reads.
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
            let param = libc::sched_param { sched_priority: 0 };
            libc::sched_setscheduler(0, libc::SCHED_BATCH, &param);
        }
        let mut seen = 0;
        let dummy = AtomicU32::new(0);
        loop {
            futex_wait_raw(&s.mon, seen, None);
            let r = s.mon.load(SeqCst);
            if r == STOP {
                return;
            }
            if r == seen {
                continue;
            }
            seen = r;
            let deadline = ns_to_timespec(s.entry.load(SeqCst) + retake);
            while mono_ns() < s.entry.load(SeqCst) + retake {
                futex_wait_raw(&dummy, 0, Some(&deadline));
            }
            s.go.store(r, SeqCst);
            futex_wake_raw(&s.go);
        }
    });
    let mut v = Vec::with_capacity(rounds);
    for r in 1..=rounds as u32 {
        match condition {
            Condition::AfterIdle => std::thread::sleep(IDLE_BEFORE),
            Condition::AfterBusy => spin_for(BUSY_BEFORE),
            Condition::BackToBack => {}
        }
        sh.ran.store(0, SeqCst);
        let entry_cpu = cpu_now();
        let entry = mono_ns();
        sh.entry.store(entry, SeqCst);
        match kind {
            Floor::Futex => {
                sh.go.store(r, SeqCst);
                futex_wake_raw(&sh.go);
            }
            Floor::Eventfd => {
                sh.go.store(r, SeqCst);
                let one = 1u64;
                // SAFETY: writes 8 bytes from `one` to our eventfd.
                unsafe { libc::write(sh.efd, (&one as *const u64).cast(), 8) };
            }
            Floor::MonitorChain => {
                sh.mon.store(r, SeqCst);
                futex_wake_raw(&sh.mon);
            }
        }
        std::thread::sleep(CALL);
        let ran = sh.ran.load(SeqCst);
        if ran != 0 {
            v.push(Round {
                latency: Duration::from_nanos(ran.saturating_sub(entry)),
                same_cpu: sh.ran_cpu.load(SeqCst) == entry_cpu,
            });
        }
    }
    sh.go.store(STOP, SeqCst);
    sh.mon.store(STOP, SeqCst);
    futex_wake_raw(&sh.go);
    futex_wake_raw(&sh.mon);
    let one = 1u64;
    // SAFETY: as above; then close the descriptors this function created.
    unsafe {
        libc::write(sh.efd, (&one as *const u64).cast(), 8);
    }
    waker.join().unwrap();
    monitor.join().unwrap();
    // SAFETY: both descriptors are ours and no thread uses them any more.
    unsafe {
        libc::close(efd);
        libc::close(epfd);
    }
    v
}

/// `retake_after` in ns, as the handoff runtimes of this bench use it.
fn clock_retake() -> u64 {
    std::env::var("BLOCKING_BENCH_RETAKE_US")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(
            handoff_executor::DEFAULT_RETAKE_AFTER.as_nanos() as u64,
            |us| us * 1000,
        )
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
    // BLOCKING_BENCH=per_call,exit,latency selects sections (all by default).
    let only = std::env::var("BLOCKING_BENCH").unwrap_or_default();
    let run = |name: &str| only.is_empty() || only.split(',').any(|s| s == name);
    let start = Instant::now();
    if run("per_call") {
        per_call();
    }
    if run("exit") {
        exit_latency();
    }
    if run("latency") {
        handoff_latency();
    }
    if run("monitor") {
        monitor_cost();
    }
    println!("total bench time: {:.0?}", start.elapsed());
}

// -------------------------------------------------------------- monitor cost
//
// (BLOCKING_BENCH=monitor runs this section alone.) What the monitor
// thread itself costs under four loads, each run for
// MON_SPAN on a fresh runtime, MON_ROUNDS times (medians): its CPU (from
// /proc/self/task/*/schedstat, nanoseconds on the CPU) as a share of one
// core, its wakes a second (`monitor_wakes`), and wakes per call. The
// reference is Go's sysmon, whose fixed 20 µs tick showed as 6–12% of a busy
// HTTP server's CPU profile (golang/go#18236); tokio has no monitor thread.

const MON_ROUNDS: usize = 3;
const MON_SPAN: Duration = Duration::from_secs(1);
const MON_GO_REFERENCE: &str = "6-12% (golang/go#18236)";

/// CPU time of this process's monitor threads, to the nanosecond.
fn monitor_cpu() -> Duration {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    dir.filter_map(|e| {
        let path = e.ok()?.path();
        let comm = std::fs::read_to_string(path.join("comm")).ok()?;
        if comm.trim_end() != "handoff-monitor" {
            return None;
        }
        let stat = std::fs::read_to_string(path.join("schedstat")).ok()?;
        Some(Duration::from_nanos(stat.split(' ').next()?.parse().ok()?))
    })
    .sum()
}

#[derive(Clone, Copy)]
enum MonLoad {
    Idle,
    SparseCalls,
    BackToBack,
    BackToBackOneSlot,
    LongCalls,
}

impl MonLoad {
    fn name(self) -> &'static str {
        match self {
            MonLoad::Idle => "idle runtime",
            MonLoad::SparseCalls => "one 100 µs call per ms",
            MonLoad::BackToBack => "back-to-back getpid",
            MonLoad::BackToBackOneSlot => "back-to-back getpid, 1 slot",
            MonLoad::LongCalls => "20 ms calls back to back",
        }
    }
}

/// One round: (monitor CPU share of a core, wakes/s, calls/s).
fn monitor_round(load: MonLoad) -> (f64, f64, f64) {
    // With one slot nobody else could take new work: every call could
    // need a retake at `retake_after` (the monitor's worst case).
    let one_slot = matches!(load, MonLoad::BackToBackOneSlot);
    let rt = handoff_rt(if one_slot { 1 } else { WORKERS });
    // Let the threads start and the monitor settle.
    rt.block_on(async { handoff::spawn(async {}).await.unwrap() });
    std::thread::sleep(Duration::from_millis(20));
    let (m0, cpu0, t0) = (rt.metrics(), monitor_cpu(), Instant::now());
    let calls: u64 = match load {
        MonLoad::Idle => {
            std::thread::sleep(MON_SPAN);
            0
        }
        MonLoad::SparseCalls => rt
            .block_on(rt.spawn(async move {
                let mut n = 0;
                while t0.elapsed() < MON_SPAN {
                    handoff::blocking(|| std::thread::sleep(Duration::from_micros(100))).await;
                    handoff::time::sleep(Duration::from_millis(1)).await;
                    n += 1;
                }
                n
            }))
            .unwrap(),
        MonLoad::BackToBack | MonLoad::BackToBackOneSlot => rt
            .block_on(rt.spawn(async move {
                let mut n = 0;
                while t0.elapsed() < MON_SPAN {
                    for _ in 0..1_000 {
                        std::hint::black_box(handoff::blocking(getpid).await);
                    }
                    n += 1_000;
                }
                n
            }))
            .unwrap(),
        MonLoad::LongCalls => rt
            .block_on(rt.spawn(async move {
                let mut n = 0;
                while t0.elapsed() < MON_SPAN {
                    handoff::blocking(|| std::thread::sleep(CALL)).await;
                    n += 1;
                }
                n
            }))
            .unwrap(),
    };
    let wall = t0.elapsed().as_secs_f64();
    let cpu = monitor_cpu().saturating_sub(cpu0).as_secs_f64();
    let wakes = (rt.metrics().monitor_wakes - m0.monitor_wakes) as f64;
    drop(rt);
    (cpu / wall, wakes / wall, calls as f64 / wall)
}

fn monitor_cost() {
    println!(
        "== monitor cost: the monitor thread's CPU and wakes, {WORKERS} workers, {:?} per load, median of {MON_ROUNDS} rounds ==",
        MON_SPAN
    );
    println!(
        "{:<30} {:>12} {:>10} {:>11} {:>11}   Go sysmon (reference)",
        "load", "monitor CPU", "wakes/s", "calls/s", "wakes/call"
    );
    for load in [
        MonLoad::Idle,
        MonLoad::SparseCalls,
        MonLoad::BackToBack,
        MonLoad::BackToBackOneSlot,
        MonLoad::LongCalls,
    ] {
        let rounds: Vec<(f64, f64, f64)> = (0..MON_ROUNDS).map(|_| monitor_round(load)).collect();
        let cpu = median(rounds.iter().map(|r| r.0).collect());
        let wakes = median(rounds.iter().map(|r| r.1).collect());
        let calls = median(rounds.iter().map(|r| r.2).collect());
        let ratios: Vec<f64> = rounds
            .iter()
            .filter(|r| r.2 > 0.0)
            .map(|r| r.1 / r.2)
            .collect();
        let per_call = if ratios.is_empty() {
            "-".to_string()
        } else {
            format!("{:.3}", median(ratios))
        };
        println!(
            "{:<30} {:>11.2}% {:>10.0} {:>11.0} {:>11}   {MON_GO_REFERENCE}",
            load.name(),
            cpu * 100.0,
            wakes,
            calls,
            per_call
        );
    }
    println!();
}
