//! Helpers shared by the blocking-bridge integration tests (issue 4).
#![allow(dead_code)] // each test binary uses a different subset

#[path = "../watchdog_core/mod.rs"]
mod watchdog_core;
use watchdog_core::run_with_deadline;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Runs `f` on its own thread and returns its result; fails the test with a
/// message if it has not finished after `secs` seconds (a hang is a failure,
/// never a stuck CI run). A panic in `f` is resumed here.
pub fn watchdog<T: Send + 'static>(
    secs: u64,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    run_with_deadline(secs, what, format!("scenario: {what}"), f)
        .unwrap_or_else(|| panic!("{what}: hung for more than {secs} s (watchdog)"))
}

/// Waits until `cond` holds, checking every millisecond; panics with `what`
/// after `secs` seconds. For conditions no channel can announce (a metric).
pub fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "{what}: still false after {secs} s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The calling OS thread's id.
pub fn gettid() -> i64 {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) }
}

/// A fresh, unique directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "handoff-test-{name}-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Counts the polls of a future and fails on a poll after completion or two
/// overlapping polls (a task "polled twice").
pub struct CountPolls<F> {
    inner: Pin<Box<F>>,
    pub polls: Arc<AtomicUsize>,
    busy: Arc<AtomicBool>,
    done: bool,
}

impl<F: Future> CountPolls<F> {
    pub fn new(inner: F) -> (Self, Arc<AtomicUsize>) {
        let polls = Arc::new(AtomicUsize::new(0));
        let fut = CountPolls {
            inner: Box::pin(inner),
            polls: polls.clone(),
            busy: Arc::new(AtomicBool::new(false)),
            done: false,
        };
        (fut, polls)
    }
}

impl<F: Future> Future for CountPolls<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        assert!(!self.done, "a task was polled after it completed");
        assert!(
            !self.busy.swap(true, Ordering::SeqCst),
            "a task was polled by two threads at once"
        );
        self.polls.fetch_add(1, Ordering::SeqCst);
        let poll = self.inner.as_mut().poll(cx);
        self.busy.store(false, Ordering::SeqCst);
        if poll.is_ready() {
            self.done = true;
        }
        poll
    }
}
