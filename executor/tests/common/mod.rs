//! Helpers shared by the executor's integration tests.
#![allow(dead_code)]
use handoff_executor::bridge::{enter, Call, Exit};
use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::task::{Context, Poll};
use std::time::Duration;

/// Runs `f` on its own thread and fails the test with `what` if it does not
/// finish within `secs` (a hang fails instead of stalling the suite).
pub fn watchdog<R: Send + 'static>(
    secs: u64,
    what: &str,
    f: impl FnOnce() -> R + Send + 'static,
) -> R {
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => {
            t.join().unwrap();
            v
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // The body panicked: re-raise its panic here.
            match t.join() {
                Err(p) => std::panic::resume_unwind(p),
                Ok(()) => unreachable!(),
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("watchdog: {what} did not finish within {secs} s (hang)")
        }
    }
}

/// A minimal `blocking(f)` over the bridge, as handoff-blocking builds it:
/// run `f` inline with the slot released; on a slow exit keep the output,
/// wake the task and return `Pending` once.
pub struct Blocking<F, R> {
    f: Option<F>,
    out: Option<R>,
    call: Call,
    pub exits: Option<std::sync::Arc<std::sync::Mutex<Vec<Exit>>>>,
}

impl<F, R> Unpin for Blocking<F, R> {}

pub fn blocking<F: FnOnce() -> R, R>(f: F) -> Blocking<F, R> {
    Blocking {
        f: Some(f),
        out: None,
        call: Call::Short,
        exits: None,
    }
}

pub fn blocking_long<F: FnOnce() -> R, R>(f: F) -> Blocking<F, R> {
    Blocking {
        f: Some(f),
        out: None,
        call: Call::Long,
        exits: None,
    }
}

impl<F: FnOnce() -> R, R> Future for Blocking<F, R> {
    type Output = R;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        if let Some(out) = self.out.take() {
            return Poll::Ready(out);
        }
        let f = self.f.take().expect("Blocking polled after completion");
        let Some(call) = enter(self.call) else {
            return Poll::Ready(f());
        };
        let out = f();
        let exit = call.exit();
        if let Some(e) = &self.exits {
            e.lock().unwrap().push(exit);
        }
        match exit {
            Exit::Fast | Exit::IdleSlot => Poll::Ready(out),
            Exit::Slow => {
                self.out = Some(out);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}

/// Counts drops of the value it guards.
pub struct DropCounter(pub std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The panic message of a caught panic payload.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic>".to_string()
    }
}

pub fn getpid() -> i32 {
    // SAFETY: getpid has no arguments and cannot fail.
    unsafe { libc::getpid() }
}

pub fn gettid() -> i32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::gettid() }
}

/// Waits (at most 10 s, then panics) until the monitor has stopped waking:
/// no new wake in 100 ms. After a stream of calls its call rate decays over
/// some 40 rounds: under a millisecond on a quiet machine, longer when other
/// processes keep the CPUs busy and each round waits for a CPU.
#[allow(dead_code)]
pub fn wait_monitor_quiet(rt: &handoff_executor::Runtime) {
    let mut last = rt.metrics().monitor_wakes;
    let mut still = 0;
    for _ in 0..500 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let now = rt.metrics().monitor_wakes;
        still = if now == last { still + 1 } else { 0 };
        last = now;
        if still == 5 {
            return;
        }
    }
    panic!("the monitor kept waking for 10 s after the calls ended");
}
