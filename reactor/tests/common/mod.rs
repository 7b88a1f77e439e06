//! Helpers shared by the reactor's integration tests.
#![allow(dead_code)]
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::time::Duration;

/// Aborts the process with a message if the guard is not dropped within
/// `secs` (a hung test fails instead of hanging CI).
pub struct Watchdog(Option<mpsc::Sender<()>>);

pub fn watchdog(name: &'static str, secs: u64) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(secs)) {
            eprintln!("watchdog: test `{name}` did not finish within {secs} s; aborting");
            std::process::abort();
        }
    });
    Watchdog(Some(tx))
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// A waker that counts wakes and drops of its clones' shared state.
pub struct Counting {
    pub wakes: AtomicUsize,
    dropped: Arc<AtomicUsize>,
}

impl Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for Counting {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

/// A waker whose shared state bumps `dropped` when its last clone is dropped.
pub fn counting_waker() -> (Waker, Arc<Counting>, Arc<AtomicUsize>) {
    let dropped = Arc::new(AtomicUsize::new(0));
    let c = Arc::new(Counting {
        wakes: AtomicUsize::new(0),
        dropped: dropped.clone(),
    });
    (Waker::from(c.clone()), c, dropped)
}

/// Raises the soft RLIMIT_NOFILE to at least `want` (or the hard limit).
pub fn raise_nofile(want: u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid rlimit to fill.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    if r.rlim_cur < want {
        r.rlim_cur = want.min(r.rlim_max);
        // SAFETY: `r` is a valid rlimit.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) };
    }
}

/// Re-executes this test binary to run only the test `child` (which checks
/// `env` and does nothing without it), waits for it, and asserts that it
/// succeeded and printed `marker` (so a child that silently ran nothing
/// fails). Returns what it printed. For checks that would disturb the other
/// tests of this process (rlimits, signals).
pub fn run_child(child: &str, env: &str, marker: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--exact", child, "--nocapture", "--test-threads=1"])
        .env(env, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "child failed (status {:?}):\n{text}",
        out.status
    );
    assert!(
        text.contains(marker),
        "the child did not run the check:\n{text}"
    );
    text
}
