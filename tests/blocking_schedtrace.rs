//! Issue 4, behaviour 13: `HANDOFF_SCHEDTRACE=<ms>` prints the scheduler's
//! state to stderr once per interval (Go's `GODEBUG=schedtrace`).
//!
//! The test re-runs its own binary (only the `scenario` test, with the
//! variable set) and reads the child's stderr.
mod blocking_common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use blocking_common::watchdog;
use handoff::Runtime;

/// Set in the child so that `scenario` runs long enough to be traced.
const CHILD: &str = "HANDOFF_TEST_SCHEDTRACE_CHILD";

/// Retaken calls, fast calls and idle time for the trace to show. Also a
/// plain test in the parent run (shorter there).
#[test]
fn scenario() {
    let rounds = if std::env::var_os(CHILD).is_some() {
        30
    } else {
        3
    };
    watchdog(60, "schedtrace scenario", move || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        rt.block_on(async move {
            for _ in 0..rounds {
                let tasks: Vec<_> = (0..4)
                    .map(|_| {
                        handoff::spawn(async {
                            // A 5 ms call, stretched until some call was
                            // retaken: on a machine busy with other
                            // processes the monitor may run only after 5 ms.
                            let handle = handoff::Handle::current();
                            handoff::blocking(move || {
                                let start = Instant::now();
                                std::thread::sleep(Duration::from_millis(5));
                                while handle.metrics().retakes == 0
                                    && start.elapsed() < Duration::from_secs(10)
                                {
                                    std::thread::sleep(Duration::from_millis(1));
                                }
                            })
                            .await;
                            handoff::blocking(|| std::hint::black_box(1)).await
                        })
                    })
                    .collect();
                for t in tasks {
                    assert_eq!(t.await.unwrap(), 1);
                }
            }
        });
        assert!(
            rt.metrics().retakes > 0,
            "no call was retaken, though calls waited 10 s for one"
        );
    });
}

#[test]
fn schedtrace_prints_one_line_per_interval() {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", "scenario", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("HANDOFF_SCHEDTRACE", "10")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the traced child hung for 60 s (watchdog)");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "the traced child failed:\n{stderr}");
    const PREFIX: &str = "handoff schedtrace: ";
    let lines: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.find(PREFIX).map(|at| &l[at + PREFIX.len()..]))
        .collect();
    assert!(
        lines.len() >= 3,
        "expected a trace line every 10 ms over the ~150 ms run, got:\n{stderr}"
    );
    // Each line carries the fields the issue asks for: slots, idle slots,
    // slots in calls, threads (alive / idle / spinning), the global queue,
    // the per-slot local queues, retakes and exits so far.
    for field in [
        "slots=",
        " idle=",
        "incall=",
        "threads=",
        "idlethreads=",
        "spinning=",
        "runqueue=",
        " [",
        "retakes=",
        "exits=fast:",
    ] {
        assert!(
            lines.iter().all(|l| l.contains(field)),
            "a trace line lacks `{field}`:\n{}",
            lines.join("\n")
        );
    }
    // Lines come in time order, and the last one has seen the retaken calls.
    let stamps: Vec<u64> = lines
        .iter()
        .map(|l| l.split("ms").next().unwrap().trim().parse().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{stamps:?}");
    let last = lines.last().unwrap();
    let retakes: u64 = last
        .split("retakes=")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no retake count in `{last}`"));
    assert!(retakes > 0, "the 5 ms calls were retaken: `{last}`");
}
