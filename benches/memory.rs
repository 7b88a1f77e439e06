//! Memory per idle task and per idle TCP connection: handoff against
//! tokio's multi-thread runtime (same worker count).
//!
//! Each measurement runs in a fresh child process (this binary re-run with
//! `--child KIND RUNTIME N`), so one measurement's freed memory, kept by the
//! allocator, cannot hide the next one's. The child prints the growth of its
//! resident set (`/proc/self/statm`) across the measured step, divided by N.
//! Rounds alternate handoff and tokio; the table shows medians (and min–max)
//! over the rounds.
//!
//! - `task`: N tasks, each parked on a `futures` oneshot receiver (a real
//!   registered waker; the senders, kept alive, count the same for both).
//! - `tcp`: N loopback connections, each with a server task parked on a
//!   read. The clients live in the parent process, so only the server side
//!   (accepted socket, registration, task) is measured.
//!
//! `cargo bench --bench memory` (env: `BENCH_ROUNDS`, default 5;
//! `BENCH_TASKS`, default 100 000; `BENCH_CONNS`, default 5 000).
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WORKERS: usize = 2;

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    let resident: u64 = s.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    resident * page
}

fn raise_nofile() {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `l` is a valid rlimit to fill.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) };
    l.rlim_cur = l.rlim_max;
    // SAFETY: raising the soft limit up to the hard one needs no privilege.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &l) };
}

fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn wait_for(count: &AtomicUsize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while count.load(Ordering::SeqCst) < n {
        assert!(
            Instant::now() < deadline,
            "timed out: {} of {n}",
            count.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

// ------------------------------------------------------------- children

/// Spawns N tasks parked on oneshot receivers; returns bytes per task.
fn child_task(runtime: &str, n: usize) -> f64 {
    let parked = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::with_capacity(n);
    let mut receivers = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        senders.push(tx);
        receivers.push(rx);
    }
    macro_rules! body {
        ($spawn:expr, $warm:expr) => {{
            $warm;
            let before = rss_bytes();
            for rx in receivers.drain(..) {
                let parked = parked.clone();
                // The handle is dropped: the task stays, detached.
                drop($spawn(async move {
                    parked.fetch_add(1, Ordering::SeqCst);
                    let _ = rx.await;
                }));
            }
            wait_for(&parked, n);
            let after = rss_bytes();
            (after - before) as f64 / n as f64
        }};
    }
    let per = match runtime {
        "handoff" => {
            let rt = handoff::Runtime::builder()
                .worker_threads(WORKERS)
                .build()
                .unwrap();
            body!(
                |f| rt.spawn(f),
                rt.block_on(async { handoff::spawn(async {}).await.unwrap() })
            )
        }
        _ => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(WORKERS)
                .enable_all()
                .build()
                .unwrap();
            body!(
                |f| rt.spawn(f),
                rt.block_on(async { tokio::spawn(async {}).await.unwrap() })
            )
        }
    };
    drop(senders);
    per
}

/// Accepts N connections, each served by a task parked on a read; prints
/// the port first, then the bytes per connection.
fn child_tcp(runtime: &str, n: usize) -> f64 {
    raise_nofile();
    let parked = Arc::new(AtomicUsize::new(0));
    let announce = |port: u16| {
        println!("PORT {port}");
        std::io::stdout().flush().unwrap();
    };
    match runtime {
        "handoff" => {
            use futures::io::AsyncReadExt;
            let rt = handoff::Runtime::builder()
                .worker_threads(WORKERS)
                .build()
                .unwrap();
            let l = rt
                .block_on(handoff::net::TcpListener::bind("127.0.0.1:0"))
                .unwrap();
            announce(l.local_addr().unwrap().port());
            let before = rss_bytes();
            let p = parked.clone();
            rt.spawn(async move {
                for _ in 0..n {
                    let (mut s, _) = l.accept().await.unwrap();
                    let p = p.clone();
                    handoff::spawn(async move {
                        p.fetch_add(1, Ordering::SeqCst);
                        let mut b = [0u8; 1];
                        let _ = s.read(&mut b).await;
                    });
                }
            });
            wait_for(&parked, n);
            std::thread::sleep(Duration::from_millis(50)); // reads registered
            (rss_bytes() - before) as f64 / n as f64
        }
        _ => {
            use tokio::io::AsyncReadExt;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(WORKERS)
                .enable_all()
                .build()
                .unwrap();
            let l = rt
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .unwrap();
            announce(l.local_addr().unwrap().port());
            let before = rss_bytes();
            let p = parked.clone();
            rt.spawn(async move {
                for _ in 0..n {
                    let (mut s, _) = l.accept().await.unwrap();
                    let p = p.clone();
                    tokio::spawn(async move {
                        p.fetch_add(1, Ordering::SeqCst);
                        let mut b = [0u8; 1];
                        let _ = s.read(&mut b).await;
                    });
                }
            });
            wait_for(&parked, n);
            std::thread::sleep(Duration::from_millis(50));
            (rss_bytes() - before) as f64 / n as f64
        }
    }
}

// --------------------------------------------------------------- parent

fn measure(kind: &str, runtime: &str, n: usize) -> f64 {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--child", kind, runtime, &n.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut clients = Vec::new();
    let mut line = String::new();
    let result = loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child ended early");
        if let Some(port) = line.trim().strip_prefix("PORT ") {
            let addr = format!("127.0.0.1:{port}");
            for _ in 0..n {
                clients.push(std::net::TcpStream::connect(&addr).unwrap());
            }
        } else if let Some(v) = line.trim().strip_prefix("PER ") {
            break v.parse::<f64>().unwrap();
        }
    };
    drop(child.stdin.take());
    drop(clients);
    assert!(child.wait().unwrap().success());
    result
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() >= 5 && args[1] == "--child" {
        let n: usize = args[4].parse().unwrap();
        let per = match args[2].as_str() {
            "task" => child_task(&args[3], n),
            _ => child_tcp(&args[3], n),
        };
        println!("PER {per}");
        std::io::stdout().flush().unwrap();
        // Stay alive (connections open) until the parent closes stdin.
        let mut s = String::new();
        let _ = std::io::stdin().read_line(&mut s);
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    raise_nofile();
    let rounds = env_usize("BENCH_ROUNDS", 5);
    let tasks = env_usize("BENCH_TASKS", 100_000);
    let conns = env_usize("BENCH_CONNS", 5_000);
    println!(
        "memory: RSS growth per idle item, {WORKERS} workers, {rounds} rounds (fresh process each), median [min-max]"
    );
    println!(
        "{:<28} {:>22} {:>22} {:>8}",
        "item", "handoff (bytes)", "tokio (bytes)", "ratio"
    );
    for (kind, n, label) in [
        ("task", tasks, format!("idle task (N={tasks})")),
        ("tcp", conns, format!("idle TCP conn (N={conns})")),
    ] {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            ours.push(measure(kind, "handoff", n));
            theirs.push(measure(kind, "tokio", n));
        }
        let range = |v: &[f64]| {
            let min = v.iter().cloned().fold(f64::MAX, f64::min);
            let max = v.iter().cloned().fold(0.0, f64::max);
            (min, max)
        };
        let (omin, omax) = range(&ours);
        let (tmin, tmax) = range(&theirs);
        let (om, tm) = (median(&mut ours), median(&mut theirs));
        println!(
            "{:<28} {:>22} {:>22} {:>8.2}",
            label,
            format!("{om:.0} [{omin:.0}-{omax:.0}]"),
            format!("{tm:.0} [{tmin:.0}-{tmax:.0}]"),
            om / tm
        );
    }
}
