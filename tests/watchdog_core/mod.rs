//! The core of the test watchdogs in `blocking_common` and `stress_common`:
//! run a scenario on its own thread and wait for its result with a deadline.
//!
//! What to do on a timeout differs by design (the blocking tests panic; the
//! stress tests print the watched runtimes' metrics and exit the process so
//! the parent shows the schedtrace tail), so that stays with each caller;
//! spawning, waiting, joining and resuming the scenario's panic live here
//! once.
use std::sync::mpsc;
use std::time::Duration;

/// Runs `f` on a thread called `thread_name`; returns `Some(result)`, or
/// `None` if it has not finished after `secs` seconds (the thread is left
/// running: a hung thread cannot be unwound). A panic in `f` is resumed here.
pub fn run_with_deadline<T: Send + 'static>(
    secs: u64,
    what: &str,
    thread_name: String,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(thread_name)
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawn the scenario thread");
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(value) => {
            let _ = thread.join();
            Some(value)
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
            Err(payload) => std::panic::resume_unwind(payload),
            Ok(()) => panic!("{what}: the scenario ended without a result"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => None,
    }
}
