//! The [`Blocking`] future: a closure run as a system call inside the task's poll.
//!
//! # Protocol (ARCHITECTURE.md, "blocking(f)")
//!
//! On its first poll a [`Blocking`] future:
//!
//! 1. asks the executor to enter a call (`bridge::enter`). `None` means the
//!    thread holds no slot (a plain thread, `block_on`, a call nested inside
//!    another call's closure): there is nothing to release, so `f` runs inline
//!    and the future is `Ready` in the same poll;
//! 2. otherwise the slot is now in `Syscall` (or, for [`blocking_long`], already
//!    handed off) and `f` runs on this thread, under `catch_unwind`;
//! 3. `exit` takes a slot back: its old one with one CAS (`Exit::Fast`), or
//!    any idle one (`Exit::IdleSlot`); either way the future is `Ready` with
//!    `f`'s output, or resumes `f`'s panic, in this same poll;
//! 4. or there is no slot to take (`Exit::Slow`): the thread must stop running
//!    tasks. The output (or the panic payload) is stored in the future, the
//!    task wakes itself — the wake goes to the global queue because the thread
//!    has no slot — and the poll returns `Pending`. The worker loop parks the
//!    thread after the poll. Whichever thread holds a slot when the task is
//!    next polled gets the stored output (`Ready`) or the panic (resumed).
//!
//! Before step 1, the call spends one unit of the task's cooperative budget
//! (`handoff_reactor::coop`), like a socket read: a task making call after
//! fast call in one poll yields every `coop::BUDGET` calls, so it cannot
//! starve the tasks queued behind it on its slot (the monitor only steps in
//! for a call that *lasts*).
//!
//! # Why this is correct
//!
//! - `f` runs exactly once: the closure is moved out of the state before it
//!   runs, and every later poll finds `Done` or `Finished`.
//! - A panic in `f` still runs `exit` (the slot protocol always completes, so
//!   the slot is either ours again or somebody else's, never stuck in
//!   `Syscall`), and then reaches the task exactly as an uncaught panic would.
//!   On the slow path the panic is resumed on the next poll, on a thread that
//!   holds a slot, so the executor completes the panicked task the usual way.
//! - `f` may borrow from the task (`F` is not `'static`): it runs inside the
//!   poll, while the borrows are alive, and never leaves the polling thread.
//! - The future never pins `F` or `R` (they are moved in and out by value), so
//!   it is `Unpin` whatever they are, and `Send` exactly when `F` and `R` are.
//!
//! # Rejected
//!
//! - Running `f` on a pool thread and awaiting it (tokio's `spawn_blocking`):
//!   a thread hop per call (~14 µs) and a `'static` bound. That is what
//!   `spawn_blocking` is for.
//! - Resuming a panic on the slow path at once: the thread holds no slot at
//!   that point, and a task that completes there would run its completion
//!   (JoinHandle wake, drop of the future) outside the slot protocol.
//! - Dropping the stored output wherever the future is dropped without
//!   protection: a panicking `Drop` of `R` (or of a panic payload) would unwind
//!   through the executor's cancel path. It is dropped under `catch_unwind`.
use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::task::{Context, Poll};

use handoff_executor::bridge::{self, Call, Exit};
use handoff_reactor::coop;

use crate::learn::Site;

/// A panic payload, as `catch_unwind` returns it.
pub(crate) type Payload = Box<dyn Any + Send + 'static>;

/// How a closure run through the bridge finished.
pub(crate) enum Ran<R> {
    /// Inline or with a slot back: continue in this poll.
    Ready(R),
    /// `Exit::Slow`: this thread has no slot. The caller must store the
    /// outcome, wake its task (`cx.waker().wake_by_ref()`) and return `Pending`;
    /// the panic, if any, is resumed on the next poll.
    Slow(Result<R, Payload>),
}

/// Runs `f` as a system call: steps 1–4 of the module header, without the
/// storing. Used by [`Blocking`] and by the `poll_*` functions of `fs::File`.
///
/// With a `site`, a `Short` call at a site that has been learnt to block is
/// entered as `Long`, and how the call exited teaches the site
/// (`crate::learn`).
pub(crate) fn run_at<R>(call: Call, site: Option<Site>, f: impl FnOnce() -> R) -> Ran<R> {
    let call = match site {
        Some(site) if call == Call::Short => site.call(),
        _ => call,
    };
    let Some(syscall) = bridge::enter(call) else {
        // No slot to release: a plain call. A panic unwinds as usual.
        return Ran::Ready(f());
    };
    // AssertUnwindSafe: a panic is never swallowed; it is resumed into the task
    // (now or on the next poll), which sees it exactly as if uncaught.
    let out = catch_unwind(AssertUnwindSafe(f));
    let (exit, cause) = syscall.exit_with_cause();
    if let Some(site) = site {
        site.learn(call, exit, cause);
    }
    match exit {
        Exit::Fast | Exit::IdleSlot => match out {
            Ok(value) => Ran::Ready(value),
            Err(payload) => resume_unwind(payload),
        },
        Exit::Slow => Ran::Slow(out),
    }
}

/// Drops `value` so that a panic in its `Drop` cannot unwind into the caller
/// (the executor's cancel path); a payload that panics when dropped is leaked.
pub(crate) fn drop_quietly<T>(value: T) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(value))) {
        if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
            std::mem::forget(again);
        }
    }
}

enum State<F, R> {
    /// Not polled yet: the closure to run.
    Start(F),
    /// The call took the slow exit: its outcome, returned by the next poll.
    Done(Result<R, Payload>),
    /// The output was returned (or the closure is running).
    Finished,
}

/// The future returned by [`blocking`] and [`blocking_long`].
///
/// It runs its closure once, inline, on the first poll (see the crate docs for
/// the protocol). It is `Ready` in that same poll unless the call outlasted its
/// slot, in which case it is `Pending` once and `Ready` on the next poll.
/// Polling it again after it returned `Ready` panics.
///
/// Dropping it before the first poll drops the closure without running it.
/// Dropping it between a slow exit and the next poll drops the stored output;
/// a panic in that drop is caught and discarded so that it cannot unwind
/// through the executor.
///
/// ```
/// use std::future::Future;
/// fn assert_send<T: Send>(_: &T) {}
///
/// let fut = handoff_blocking::blocking(|| 1 + 1);
/// assert_send(&fut); // Send because the closure and its output are
/// assert_eq!(futures::executor::block_on(fut), 2);
/// ```
#[must_use = "a Blocking future does nothing unless polled"]
pub struct Blocking<F, R> {
    state: State<F, R>,
    call: Call,
    /// Where `blocking` was called, for call-site learning (`None` for
    /// `blocking_long`, which always hands off).
    site: Option<Site>,
}

// The future moves `F` and `R` by value and never hands out a pinned
// reference to either, so pinning it pins nothing structurally.
impl<F, R> Unpin for Blocking<F, R> {}

impl<F, R> fmt::Debug for Blocking<F, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Start(_) => "not started",
            State::Done(_) => "done, output stored",
            State::Finished => "finished",
        };
        f.debug_struct("Blocking")
            .field("call", &self.call)
            .field("state", &state)
            .finish()
    }
}

impl<F, R> Future for Blocking<F, R>
where
    F: FnOnce() -> R,
{
    type Output = R;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        let this = self.get_mut();
        if matches!(this.state, State::Start(_)) && coop::poll_proceed(cx).is_pending() {
            // Budget spent (the task already made its share of calls or
            // other ready operations in this poll): yield before the call.
            return Poll::Pending;
        }
        match std::mem::replace(&mut this.state, State::Finished) {
            State::Start(f) => match run_at(this.call, this.site, f) {
                Ran::Ready(value) => Poll::Ready(value),
                Ran::Slow(out) => {
                    this.state = State::Done(out);
                    // No slot: this wake lands in the global queue, and the
                    // next poll (on a thread with a slot) returns the output.
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            },
            State::Done(Ok(value)) => Poll::Ready(value),
            State::Done(Err(payload)) => resume_unwind(payload),
            State::Finished => panic!(
                "a handoff Blocking future was polled after it completed; \
                 await it once (or stop polling it once it returned Ready)"
            ),
        }
    }
}

/// `is_terminated` once the output was returned, for `select!` loops.
impl<F, R> futures::future::FusedFuture for Blocking<F, R>
where
    F: FnOnce() -> R,
{
    fn is_terminated(&self) -> bool {
        matches!(self.state, State::Finished)
    }
}

impl<F, R> Drop for Blocking<F, R> {
    #[inline]
    fn drop(&mut self) {
        // The common case (awaited to the end) is one compare, on the path of
        // every call.
        if !matches!(self.state, State::Finished) {
            drop_quietly(std::mem::replace(&mut self.state, State::Finished));
        }
    }
}

/// Runs `f` as a blocking system call, inline on the current worker thread.
///
/// This is handoff's reason to exist: `f` runs inside the task's own poll,
/// with no thread hop and no `'static` bound, so it may borrow the task's
/// data. While it runs, the worker's slot is released; a call that lasts
/// longer than `retake_after` (20 µs by default) has its slot retaken by the
/// monitor and handed to another thread, so the other tasks keep running.
/// When `f` returns, the thread takes its slot back with one CAS if it is
/// still free (the usual case), else any idle slot, else the task is
/// requeued and resumes on whichever thread picks it up.
///
/// Outside a runtime worker (a plain thread, `block_on`, or inside another
/// `blocking` closure), `f` simply runs inline.
///
/// Use it for short calls that *may* block: `fsync`, `read` of a file, a C
/// library call, `getaddrinfo`. For calls known to block for long, see
/// [`blocking_long`]; for `'static` work that must not hold the task, see
/// `spawn_blocking`.
///
/// A spawn or a wake made from inside `f` goes to the runtime's global queue
/// (the thread holds no slot while `f` runs).
///
/// Each call spends one unit of the task's cooperative budget, like a socket
/// read, so a task looping over fast calls yields now and then instead of
/// starving the tasks queued behind it.
///
/// `blocking` learns per call site (the line that calls it): a site whose
/// calls keep outlasting `retake_after` is entered like [`blocking_long`]
/// (the slot is handed off at entry, so the tasks behind it do not wait for
/// the monitor), and is measured again every few calls, so a site that stops
/// blocking goes back to the inline fast path. The [`fs`](crate::fs)
/// functions and [`lookup_host`](crate::lookup_host) learn at *their*
/// caller's line in the same way. See
/// [`set_call_site_learning`](crate::set_call_site_learning).
///
/// # Panics
///
/// A panic in `f` is resumed in the task after the slot protocol completed,
/// exactly as if `f` had been called directly: a spawned task's `JoinHandle`
/// reports it with `JoinError::is_panic`.
///
/// # Examples
///
/// In a task on a runtime worker: the call runs on the worker thread, and
/// a call that lasts lets the other tasks run (here with one slot, the task
/// queued behind the call runs *during* it, once the monitor retook the slot):
///
/// ```
/// use std::sync::mpsc;
/// use std::time::Duration;
///
/// let rt = handoff_executor::Runtime::builder().worker_threads(1).build().unwrap();
/// let ran_during_the_call = rt.block_on(async {
///     handoff_executor::spawn(async {
///         let (tx, rx) = mpsc::channel();
///         handoff_executor::spawn(async move { tx.send(()).unwrap() });
///         // Waits for the other task, which needs this task's only slot.
///         handoff_blocking::blocking(move || rx.recv_timeout(Duration::from_secs(10)).is_ok())
///             .await
///     })
///     .await
///     .unwrap()
/// });
/// assert!(ran_during_the_call);
/// assert!(rt.metrics().retakes >= 1);
/// ```
///
/// Borrowing from the caller's stack, which `spawn_blocking` cannot do:
///
/// ```
/// use std::io::Read;
///
/// let mut buf = [0u8; 8];
/// let n = futures::executor::block_on(handoff_blocking::blocking(|| {
///     std::io::repeat(7).read(&mut buf)
/// }))
/// .unwrap();
/// assert_eq!(n, 8);
/// assert_eq!(buf, [7; 8]);
/// ```
///
/// A raw system call:
///
/// ```
/// # futures::executor::block_on(async {
/// // SAFETY: getpid has no preconditions.
/// let pid = handoff_blocking::blocking(|| unsafe { libc::getpid() }).await;
/// assert_eq!(pid as u32, std::process::id());
/// # });
/// ```
#[track_caller]
pub fn blocking<F, R>(f: F) -> Blocking<F, R>
where
    F: FnOnce() -> R,
{
    blocking_at(Location::caller(), f)
}

/// [`blocking`] learning at `site` instead of its own caller's location: for
/// wrappers (`fs::read`, `File::read`, `lookup_host`) that are
/// `#[track_caller]` and take `Location::caller()` in their synchronous part,
/// so that each *user* call site learns on its own (an `async fn` cannot be
/// `#[track_caller]`: called from inside one, `blocking` would see the
/// wrapper's line, one site shared by every caller of the wrapper).
pub(crate) fn blocking_at<F, R>(site: &'static Location<'static>, f: F) -> Blocking<F, R>
where
    F: FnOnce() -> R,
{
    Blocking {
        state: State::Start(f),
        call: Call::Short,
        site: Some(Site::of(site)),
    }
}

/// Runs `f` as a system call that is known to block for long (Go's
/// `entersyscallblock`): the worker's slot is handed to another thread
/// *before* `f` runs, so the other tasks do not wait for the monitor.
///
/// Use it for calls that will sleep: `accept` on a blocking socket, a read
/// from a pipe or terminal, `waitpid`, a lock held by another process. It
/// costs a hand-off (a thread wake-up) per call, so prefer [`blocking`] for
/// calls that usually return quickly. When `f` returns, the thread takes an
/// idle slot if there is one; otherwise the task is requeued (the result is
/// kept) and resumes on whichever thread picks it up.
///
/// Outside a runtime worker, `f` simply runs inline. Borrowing, panics and
/// spawns from inside `f` behave as for [`blocking`].
///
/// # Panics
///
/// A panic in `f` is resumed in the task, as for [`blocking`].
///
/// # Examples
///
/// With one slot and a monitor that would wait an hour, the task queued
/// behind the call still runs during it: the slot was handed off at entry.
///
/// ```
/// use std::sync::mpsc;
/// use std::time::Duration;
///
/// let rt = handoff_executor::Runtime::builder()
///     .worker_threads(1)
///     .retake_after(Duration::from_secs(3600))
///     .build()
///     .unwrap();
/// let ran_during_the_call = rt.block_on(async {
///     handoff_executor::spawn(async {
///         let (tx, rx) = mpsc::channel();
///         handoff_executor::spawn(async move { tx.send(()).unwrap() });
///         handoff_blocking::blocking_long(move || rx.recv_timeout(Duration::from_secs(10)).is_ok())
///             .await
///     })
///     .await
///     .unwrap()
/// });
/// assert!(ran_during_the_call);
/// assert_eq!(rt.metrics().retakes, 0);
/// ```
///
/// Outside a runtime it simply runs inline:
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
///
/// let (mut a, mut b) = UnixStream::pair().unwrap();
/// let writer = std::thread::spawn(move || b.write_all(b"ping").unwrap());
/// let mut buf = [0u8; 4];
/// futures::executor::block_on(handoff_blocking::blocking_long(|| a.read_exact(&mut buf)))
///     .unwrap();
/// assert_eq!(&buf, b"ping");
/// writer.join().unwrap();
/// ```
pub fn blocking_long<F, R>(f: F) -> Blocking<F, R>
where
    F: FnOnce() -> R,
{
    Blocking {
        state: State::Start(f),
        call: Call::Long,
        site: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn noop_cx<T>(f: impl FnOnce(&mut Context<'_>) -> T) -> T {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        f(&mut cx)
    }

    #[test]
    fn runs_inline_without_a_slot() {
        let mut fut = blocking(|| std::thread::current().id());
        let id = noop_cx(|cx| Pin::new(&mut fut).poll(cx));
        assert_eq!(id, Poll::Ready(std::thread::current().id()));
    }

    #[test]
    fn is_send_when_closure_and_output_are() {
        fn assert_send<T: Send>(_: &T) {}
        let v = String::from("borrowed");
        let fut = blocking(|| v.len());
        assert_send(&fut);
        let fut = blocking_long(|| std::fs::read("/nonexistent"));
        assert_send(&fut);
    }

    #[test]
    fn fused_after_completion() {
        use futures::future::FusedFuture;
        let mut fut = blocking(|| 3);
        assert!(!fut.is_terminated());
        assert_eq!(noop_cx(|cx| Pin::new(&mut fut).poll(cx)), Poll::Ready(3));
        assert!(fut.is_terminated());
    }

    #[test]
    #[should_panic(expected = "polled after it completed")]
    fn polled_after_completion_panics() {
        let mut fut = blocking(|| 1);
        noop_cx(|cx| {
            assert_eq!(Pin::new(&mut fut).poll(cx), Poll::Ready(1));
            let _ = Pin::new(&mut fut).poll(cx);
        });
    }

    #[test]
    fn inline_panic_reaches_the_caller() {
        let mut fut = blocking(|| -> u8 { panic!("boom in closure") });
        let caught = catch_unwind(AssertUnwindSafe(|| {
            let _ = noop_cx(|cx| Pin::new(&mut fut).poll(cx));
        }));
        let payload = caught.expect_err("the closure's panic must propagate");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom in closure"));
    }

    /// Counts drops and panics in its own `Drop`, like a misbehaving output.
    struct PanicOnDrop(Arc<AtomicUsize>);
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
            panic!("output dropped with a panic");
        }
    }

    #[test]
    fn stored_output_dropped_quietly() {
        // The slow path stores the output; dropping the future then must not
        // unwind even if the output's Drop panics.
        let drops = Arc::new(AtomicUsize::new(0));
        let fut: Blocking<fn() -> PanicOnDrop, PanicOnDrop> = Blocking {
            state: State::Done(Ok(PanicOnDrop(drops.clone()))),
            call: Call::Short,
            site: None,
        };
        drop(fut);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn stored_panic_resumed_on_next_poll() {
        let mut fut: Blocking<fn() -> u8, u8> = Blocking {
            state: State::Done(Err(Box::new("stored panic"))),
            call: Call::Short,
            site: None,
        };
        let caught = catch_unwind(AssertUnwindSafe(|| {
            let _ = noop_cx(|cx| Pin::new(&mut fut).poll(cx));
        }));
        let payload = caught.expect_err("the stored panic must be resumed");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"stored panic"));
    }

    #[test]
    fn stored_output_returned_on_next_poll() {
        let mut fut: Blocking<fn() -> u8, u8> = Blocking {
            state: State::Done(Ok(42)),
            call: Call::Long,
            site: None,
        };
        assert_eq!(noop_cx(|cx| Pin::new(&mut fut).poll(cx)), Poll::Ready(42));
    }

    #[test]
    fn a_spent_budget_yields_before_the_call() {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let ran = AtomicUsize::new(0);
        coop::budget(|| {
            while coop::poll_proceed(&mut cx).is_ready() {}
            let mut fut = blocking(|| ran.fetch_add(1, Ordering::SeqCst));
            assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
            assert_eq!(
                ran.load(Ordering::SeqCst),
                0,
                "the call waits for a new budget"
            );
            coop::budget(|| assert_eq!(Pin::new(&mut fut).poll(&mut cx), Poll::Ready(0)));
        });
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn unstarted_closure_dropped_without_running() {
        let ran = AtomicUsize::new(0);
        let fut = blocking(|| ran.fetch_add(1, Ordering::SeqCst));
        drop(fut);
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }
}
