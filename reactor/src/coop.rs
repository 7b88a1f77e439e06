//! The cooperative budget: a task that is always ready yields after a budget
//! of ready operations, so it cannot starve the other tasks of its slot.
//!
//! 1. The executor wraps each task poll in [`budget`], which sets a
//!    thread-local counter to [`BUDGET`] and restores the previous value after.
//! 2. Every leaf resource (a socket read, a timer, a channel) calls
//!    [`poll_proceed`] before it reports `Ready`. It decrements the counter;
//!    at zero it wakes the task and returns `Pending`, so the task goes to the
//!    back of the queue.
//! 3. Outside [`budget`] (plain `block_on`, a foreign executor) the budget is
//!    unconstrained and `poll_proceed` always proceeds.
//!
//! Rejected: counting polls in the executor only. A task that loops over an
//! always-ready socket inside one poll never returns to the executor, so the
//! count has to live where readiness is reported.
use std::cell::Cell;
use std::task::{Context, Poll};

/// Ready operations a task may perform in one poll before it is made to
/// yield. 128 is tokio's figure: large enough that a busy socket moves real
/// data per poll, small enough that a slot switches tasks every few µs.
pub const BUDGET: u8 = 128;

thread_local! {
    /// `None`: unconstrained. `Some(n)`: n ready operations left in this poll.
    static CURRENT: Cell<Option<u8>> = const { Cell::new(None) };
}

/// Runs `f` with a fresh budget of [`BUDGET`], restoring the previous budget after
/// (also on unwind).
///
/// ```
/// let left = handoff_reactor::coop::budget(|| handoff_reactor::coop::remaining());
/// assert_eq!(left, Some(handoff_reactor::coop::BUDGET));
/// ```
pub fn budget<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(Option<u8>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.replace(Some(BUDGET))));
    f()
}

/// The budget left in this poll (`None` when unconstrained).
///
/// ```
/// assert_eq!(handoff_reactor::coop::remaining(), None);
/// ```
pub fn remaining() -> Option<u8> {
    CURRENT.with(|c| c.get())
}

/// Spends one unit of budget. Returns `Pending` (after waking the task so it
/// is polled again later) when the budget is exhausted.
///
/// ```
/// use std::task::{Context, Poll};
/// let waker = futures::task::noop_waker();
/// let mut cx = Context::from_waker(&waker);
/// assert!(handoff_reactor::coop::poll_proceed(&mut cx).is_ready());
/// ```
pub fn poll_proceed(cx: &mut Context<'_>) -> Poll<()> {
    CURRENT.with(|c| match c.get() {
        None => Poll::Ready(()),
        Some(0) => {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        Some(n) => {
            c.set(Some(n - 1));
            Poll::Ready(())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_runs_out_and_wakes() {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        budget(|| {
            for _ in 0..BUDGET {
                assert!(poll_proceed(&mut cx).is_ready());
            }
            assert!(poll_proceed(&mut cx).is_pending());
        });
        assert_eq!(remaining(), None);
    }
}
