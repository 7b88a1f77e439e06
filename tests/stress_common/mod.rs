//! Helpers shared by the stress and fault tests (issue 6).
//!
//! - [`isolated`]: runs a scenario in a child process (the same test binary,
//!   filtered to the one test) with `HANDOFF_SCHEDTRACE=100`, so a hang is
//!   killed after a deadline and fails with the child's last schedtrace
//!   lines and its metrics, never a silent CI timeout. Faults that change
//!   process-wide limits (`setrlimit`, `setuid`) use it for isolation too.
//! - [`Ledger`]: every task's future carries a [`Guard`]; at the end of a run
//!   `created == dropped`, and each task either completed or was cancelled,
//!   exactly once.
//! - [`XorShift`]: a tiny RNG (no `rand` crate).
//! - [`scale`]: short sizes by default, long ones with `STRESS=long`.
#![allow(dead_code)] // each test binary uses a different subset

#[path = "../watchdog_core/mod.rs"]
mod watchdog_core;
use watchdog_core::run_with_deadline;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Set (to the test's name) in the child process that runs a scenario.
pub const CHILD_ENV: &str = "HANDOFF_STRESS_CHILD";

/// `STRESS=long` selects the long sizes.
pub fn long() -> bool {
    std::env::var("STRESS").is_ok_and(|v| v == "long")
}

/// `short` by default, `long` with `STRESS=long`.
pub fn scale(short: usize, long_: usize) -> usize {
    if long() {
        long_
    } else {
        short
    }
}

/// Whether the tests run under valgrind (`scripts/valgrind.sh` sets it):
/// no child processes (valgrind would not follow them), smaller sizes.
pub fn under_valgrind() -> bool {
    std::env::var_os("HANDOFF_UNDER_VALGRIND").is_some()
}

/// xorshift64* (Vigna): enough randomness for choosing aborts and sleeps.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform-ish in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A seed that differs per run, printed so a failure can be replayed with
/// `STRESS_SEED=<n>`.
pub fn seed(what: &str) -> u64 {
    let s = std::env::var("STRESS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("{what}: STRESS_SEED={s}");
    s
}

// ---------------------------------------------------------------- ledger

const BODY_DONE: u8 = 1 << 0;
const JOINED_OK: u8 = 1 << 1;
const JOINED_CANCELLED: u8 = 1 << 2;
const DROPPED: u8 = 1 << 3;

/// Per-task bookkeeping for "every task completed or was cancelled exactly
/// once, and every future was dropped exactly once".
pub struct Ledger {
    states: Vec<AtomicU8>,
    created: AtomicUsize,
    dropped: AtomicUsize,
    /// A bit set twice (a double drop, a double completion).
    twice: AtomicUsize,
}

impl Ledger {
    pub fn new(tasks: usize) -> Arc<Ledger> {
        Arc::new(Ledger {
            states: (0..tasks).map(|_| AtomicU8::new(0)).collect(),
            created: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            twice: AtomicUsize::new(0),
        })
    }

    fn set(&self, i: usize, bit: u8) {
        if self.states[i].fetch_or(bit, Ordering::SeqCst) & bit != 0 {
            self.twice.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A guard for task `i`; move it into the task's future.
    pub fn guard(self: &Arc<Self>, i: usize) -> Guard {
        self.created.fetch_add(1, Ordering::SeqCst);
        Guard {
            ledger: self.clone(),
            i,
        }
    }

    /// Task `i`'s future ran to its end (call it as the body's last step).
    pub fn body_done(&self, i: usize) {
        self.set(i, BODY_DONE);
    }

    /// Records what awaiting task `i`'s `JoinHandle` returned.
    pub fn joined<T>(&self, i: usize, r: &Result<T, handoff::JoinError>) {
        match r {
            Ok(_) => self.set(i, JOINED_OK),
            Err(e) if e.is_cancelled() => self.set(i, JOINED_CANCELLED),
            Err(e) => panic!("task {i} failed unexpectedly: {e:?}"),
        }
    }

    pub fn created(&self) -> usize {
        self.created.load(Ordering::SeqCst)
    }

    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until every guard is dropped: futures of tasks that
    /// were inside a blocking call at shutdown are dropped when it returns.
    pub fn wait_all_dropped(&self, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.dropped() < self.created() {
            assert!(
                Instant::now() < deadline,
                "ledger: {} futures created, only {} dropped after {secs} s (a leaked task)",
                self.created(),
                self.dropped()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The end-of-run check. `joined`: every handle was awaited (then each
    /// task's body completing must match its handle saying `Ok`); when
    /// handles were dropped unawaited (runtime shutdown), only the guard
    /// counts are checked. Returns (completed, cancelled).
    pub fn check(&self, spawned: usize, joined: bool) -> (usize, usize) {
        assert_eq!(
            self.twice.load(Ordering::SeqCst),
            0,
            "a task's future was dropped twice or completed twice"
        );
        assert_eq!(self.created(), spawned, "guards created vs tasks spawned");
        assert_eq!(
            self.dropped(),
            self.created(),
            "futures created vs dropped (each exactly once)"
        );
        let (mut completed, mut cancelled) = (0, 0);
        for (i, s) in self.states.iter().take(spawned).enumerate() {
            let s = s.load(Ordering::SeqCst);
            assert!(s & DROPPED != 0, "task {i}: future never dropped");
            if joined {
                match (
                    s & BODY_DONE != 0,
                    s & JOINED_OK != 0,
                    s & JOINED_CANCELLED != 0,
                ) {
                    (true, true, false) => completed += 1,
                    (false, false, true) => cancelled += 1,
                    other => panic!(
                        "task {i}: (body done, joined ok, joined cancelled) = {other:?}; \
                         expected exactly one of completed / cancelled"
                    ),
                }
            } else if s & BODY_DONE != 0 {
                completed += 1;
            } else {
                cancelled += 1;
            }
        }
        assert_eq!(completed + cancelled, spawned);
        (completed, cancelled)
    }
}

/// Lives inside one task's future; counts its drop.
pub struct Guard {
    ledger: Arc<Ledger>,
    i: usize,
}

impl Guard {
    pub fn index(&self) -> usize {
        self.i
    }
    pub fn done(&self) {
        self.ledger.body_done(self.i);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.ledger.set(self.i, DROPPED);
        self.ledger.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------- watchdog

type Report = Box<dyn Fn() -> String + Send>;

/// What the in-process watchdog prints on a hang: the metrics of the
/// runtimes the scenario registered with [`watch`].
static WATCHED: Mutex<Vec<(u64, Report)>> = Mutex::new(Vec::new());
static NEXT_WATCH: AtomicU64 = AtomicU64::new(0);

/// Registers a runtime so a hang prints its metrics; unregistered on drop.
pub fn watch(handle: &handoff::Handle) -> Watch {
    let id = NEXT_WATCH.fetch_add(1, Ordering::Relaxed);
    let h = handle.clone();
    WATCHED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((id, Box::new(move || format!("{:#?}", h.metrics()))));
    Watch(id)
}

pub struct Watch(u64);

impl Drop for Watch {
    fn drop(&mut self) {
        WATCHED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(id, _)| *id != self.0);
    }
}

fn dump_watched() -> String {
    let w = WATCHED.lock().unwrap_or_else(|e| e.into_inner());
    if w.is_empty() {
        return "(no runtime registered)".to_string();
    }
    w.iter().map(|(_, r)| r()).collect::<Vec<_>>().join("\n")
}

/// Runs `f` on a thread; after `secs` without a result, prints the watched
/// runtimes' metrics to stderr and exits the process with status 3 (in a
/// child, the parent then shows the schedtrace tail). A panic in `f` is
/// resumed.
pub fn watchdog<T: Send + 'static>(
    secs: u64,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    match run_with_deadline(secs, what, format!("scenario {what}"), f) {
        Some(v) => v,
        None => {
            eprintln!(
                "WATCHDOG: {what} hung for more than {secs} s; metrics:\n{}",
                dump_watched()
            );
            // A hung scenario thread cannot be unwound; end the process so
            // the failure is reported now (the parent prints the trace).
            std::process::exit(3);
        }
    }
}

/// Runs `scenario` (named `test`, the test function's name) in a child
/// process with `HANDOFF_SCHEDTRACE=100`; the child runs it under
/// [`watchdog`] with `secs`. The parent kills the child after `secs + 30`
/// and fails with the child's output tail (schedtrace lines, metrics).
/// `envs` are extra variables for the child. Under valgrind (or when
/// already the child) the scenario runs in this process.
pub fn isolated(
    test: &str,
    secs: u64,
    envs: &[(&str, String)],
    scenario: impl FnOnce() + Send + 'static,
) {
    if std::env::var(CHILD_ENV).is_ok_and(|v| v == test) || under_valgrind() {
        let start = Instant::now();
        println!(); // end the harness's "test NAME ... " line
        watchdog(secs, test, scenario);
        println!("{test}: scenario took {:?}", start.elapsed());
        return;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test)
        .env("HANDOFF_SCHEDTRACE", "100")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let start = Instant::now();
    let mut child = cmd.spawn().expect("re-run the test binary as a child");
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let readers: Vec<_> = [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .into_iter()
    .map(|r| {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(r).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(l);
            }
        })
    })
    .collect();
    let deadline = start + Duration::from_secs(secs + 30);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for the child") {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    for r in readers {
        let _ = r.join();
    }
    let out = lines.lock().unwrap();
    let tail = |n: usize| out[out.len().saturating_sub(n)..].join("\n");
    match status {
        Some(st) if st.success() => {
            // Pass on the child's own report lines (not the trace).
            for l in out
                .iter()
                .filter(|l| l.starts_with("stress") || l.starts_with("fault"))
            {
                println!("[child] {l}");
            }
            println!("{test}: child took {:?}", start.elapsed());
        }
        Some(st) => panic!("{test}: child failed ({st}); last output:\n{}", tail(60)),
        None => panic!(
            "{test}: child hung for more than {} s and was killed; last output:\n{}",
            secs + 30,
            tail(60)
        ),
    }
}

/// The number of threads of this process (from /proc).
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// Waits (bounded) until `cond` holds.
pub fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "{what}: still false after {secs} s"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}
