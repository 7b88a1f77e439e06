//! The task state word: six flag bits and a reference count in one
//! `AtomicUsize`, so every hot transition (a wake of an idle task, the start
//! of a poll, the end of a poll) is one compare-and-swap loop, with no lock
//! and no allocation.
//!
//! ```text
//!  63 ......................... 6   5           4             3          2         1         0
//! [ reference count            ] [JOIN_WAKER] [JOIN_INTEREST] [CANCELLED] [NOTIFIED] [COMPLETE] [RUNNING]
//! ```
//!
//! Lifecycle: a task is *idle* (neither `RUNNING` nor `COMPLETE`), *running*
//! (`RUNNING`), or *complete* (`COMPLETE`, terminal). `RUNNING` and `COMPLETE`
//! are never both set. The holder of `RUNNING` has exclusive access to the
//! future; after `COMPLETE` the output belongs to the `JoinHandle` if
//! `JOIN_INTEREST` was set at completion, else to the completing thread.
//!
//! Every transition is a `transition_to_*` function that asserts its
//! precondition and returns a `#[must_use]` outcome saying what the caller
//! must do next (schedule, cancel, deallocate, ...).
//!
//! Orderings: transitions that hand the future, the output or the join waker
//! from one thread to another are `AcqRel` (each names its partner); taking a
//! new reference from one already held is `Relaxed` (as `Arc::clone`).
use crate::loom::{AtomicUsize, Ordering};
use std::fmt;

/// The task is being polled or cancelled.
/// Set by `transition_to_running` (a runner took the task's `Notified`) or by
/// `transition_to_shutdown` (a canceller found the task idle). Cleared by
/// `transition_to_idle` (the poll returned `Pending`) or replaced by `COMPLETE`.
/// Excludes: a second runner, and any access to the future by another thread.
pub(super) const RUNNING: usize = 1 << 0;

/// The task has finished: its future is gone and its output (or the
/// `JoinError`) is stored. Set once by `transition_to_complete`, never cleared.
/// Excludes: running, scheduling, cancelling again.
pub(super) const COMPLETE: usize = 1 << 1;

/// The task must be polled (again). Set by a wake or an abort. If the task was
/// idle, the setter also created the one `Notified` (which owns one reference)
/// and scheduled it; if it was running, the runner creates the `Notified` when
/// the poll ends (`transition_to_idle` -> `OkNotified`). Cleared by
/// `transition_to_running`. Excludes: a second `Notified` (at most one exists).
pub(super) const NOTIFIED: usize = 1 << 2;

/// The task has been aborted or shut down: whoever runs it next drops the
/// future instead of polling it. Set by `transition_to_notified_and_cancel`
/// (abort) or `transition_to_shutdown`; never cleared.
pub(super) const CANCELLED: usize = 1 << 3;

/// A `JoinHandle` exists and wants the output. Set at creation; cleared when
/// the `JoinHandle` is dropped. While set and the task is complete, the output
/// belongs to the `JoinHandle`.
pub(super) const JOIN_INTEREST: usize = 1 << 4;

/// The join waker in the trailer is set and the *runtime* may read it.
/// Set by the `JoinHandle` after writing the waker (only while not complete);
/// cleared by the `JoinHandle` to replace the waker (only while not complete),
/// or by the completing thread after it woke the waker. While clear, the
/// `JoinHandle` has exclusive access to the waker field; while set, nobody
/// writes it.
pub(super) const JOIN_WAKER: usize = 1 << 5;

const LIFECYCLE_MASK: usize = RUNNING | COMPLETE;
const FLAG_BITS: u32 = 6;
const FLAG_MASK: usize = (1 << FLAG_BITS) - 1;

/// One reference in the count held in the bits above the flags.
pub(super) const REF_ONE: usize = 1 << FLAG_BITS;

/// The state of a task fresh from `OwnedTasks::bind`: three references (the
/// owned list's, the first `Notified`'s, the `JoinHandle`'s), `NOTIFIED`
/// because that first `Notified` exists, and `JOIN_INTEREST`.
pub(super) const INITIAL_BOUND: usize = (3 * REF_ONE) | NOTIFIED | JOIN_INTEREST;

/// The state of a fresh blocking task: two references (the `Runnable`'s, which
/// acts as its `Notified`, and the `JoinHandle`'s).
pub(super) const INITIAL_BLOCKING: usize = (2 * REF_ONE) | NOTIFIED | JOIN_INTEREST;

/// The atomic state word of one task.
pub(super) struct State {
    val: AtomicUsize,
}

/// A copy of the state word, to inspect and to build the next value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Snapshot(usize);

/// What `Notified::run` must do.
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(super) enum TransitionToRunning {
    /// Poll the future.
    Success,
    /// The task was aborted while queued: drop the future, complete.
    Cancelled,
    /// The task was shut down (or completed) while this `Notified` was queued;
    /// the `Notified`'s reference has been dropped. Do nothing.
    Failed,
    /// As `Failed`, and that was the last reference: deallocate.
    Dealloc,
}

/// What the runner must do after a poll returned `Pending`.
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(super) enum TransitionToIdle {
    /// Idle; the running reference has been dropped.
    Ok,
    /// Woken during the poll: the running reference is now the new
    /// `Notified`'s; hand it to the scheduler's `yield_now`.
    OkNotified,
    /// Idle, and the running reference was the last one: deallocate.
    OkDealloc,
    /// Cancelled during the poll: still `RUNNING`; drop the future, complete.
    Cancelled,
}

/// What a wake by value (consuming the waker's reference) must do.
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(super) enum TransitionToNotifiedByVal {
    /// Nothing (already notified, running, or complete); the reference was dropped.
    DoNothing,
    /// The waker's reference is now the `Notified`'s: schedule it.
    Submit,
    /// The dropped reference was the last: deallocate.
    Dealloc,
}

/// What a wake by reference must do.
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(super) enum TransitionToNotifiedByRef {
    /// Nothing (already notified, running, or complete).
    DoNothing,
    /// A new reference was taken for the `Notified`: schedule it.
    Submit,
}

/// What dropping a `JoinHandle` must do before dropping its reference.
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(super) struct TransitionToJoinHandleDropped {
    /// The task is complete and the output is the `JoinHandle`'s: drop it.
    pub(super) drop_output: bool,
    /// The join waker field is the `JoinHandle`'s: drop it.
    pub(super) drop_waker: bool,
}

impl State {
    pub(super) fn new(initial: usize) -> State {
        State {
            val: AtomicUsize::new(initial),
        }
    }

    /// The current state. `Acquire` pairs with the `AcqRel` of
    /// `transition_to_complete`, so a `JoinHandle` that sees `COMPLETE` sees
    /// the output.
    pub(super) fn load(&self) -> Snapshot {
        Snapshot(self.val.load(Ordering::Acquire))
    }

    /// Runs a CAS loop: `f` inspects the current value and returns the
    /// outcome plus the next value (`None`: leave the word unchanged).
    /// Success is `AcqRel` (each caller names its partner); the reload on
    /// failure is `Acquire` so an unchanged outcome is decided on a value
    /// whose history is visible.
    #[inline]
    fn fetch_update_action<T>(&self, mut f: impl FnMut(Snapshot) -> (T, Option<Snapshot>)) -> T {
        let mut curr = self.load();
        loop {
            let (output, next) = f(curr);
            let Some(next) = next else { return output };
            match self.val.compare_exchange_weak(
                curr.0,
                next.0,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return output,
                Err(actual) => curr = Snapshot(actual),
            }
        }
    }

    /// A runner took the task's `Notified`: idle -> running. The `Notified`'s
    /// reference becomes the running reference. Acquire pairs with the
    /// Release of the previous `transition_to_idle` (the future's state) and of
    /// every wake since (what the wakers published).
    pub(super) fn transition_to_running(&self) -> TransitionToRunning {
        self.fetch_update_action(|curr| {
            assert!(curr.is_notified(), "a task was run without NOTIFIED set");
            let mut next = curr;
            if !curr.is_idle() {
                // Shut down (or completed) while this Notified was queued.
                next.ref_dec();
                let action = if next.ref_count() == 0 {
                    TransitionToRunning::Dealloc
                } else {
                    TransitionToRunning::Failed
                };
                return (action, Some(next));
            }
            next.0 |= RUNNING;
            next.0 &= !NOTIFIED;
            let action = if next.is_cancelled() {
                TransitionToRunning::Cancelled
            } else {
                TransitionToRunning::Success
            };
            (action, Some(next))
        })
    }

    /// The poll returned `Pending`: running -> idle, unless cancelled. Release
    /// pairs with the Acquire of the next `transition_to_running`.
    pub(super) fn transition_to_idle(&self) -> TransitionToIdle {
        self.fetch_update_action(|curr| {
            assert!(
                curr.is_running(),
                "transition_to_idle on a task that is not running"
            );
            if curr.is_cancelled() {
                return (TransitionToIdle::Cancelled, None);
            }
            let mut next = curr;
            next.0 &= !RUNNING;
            let action = if next.is_notified() {
                TransitionToIdle::OkNotified
            } else {
                next.ref_dec();
                if next.ref_count() == 0 {
                    TransitionToIdle::OkDealloc
                } else {
                    TransitionToIdle::Ok
                }
            };
            (action, Some(next))
        })
    }

    /// The output (or error) is stored: running -> complete. Returns the new
    /// state. AcqRel: the Release publishes the output to the `JoinHandle`
    /// (partner: `load`, `set_join_waker` and `transition_to_join_handle_dropped`);
    /// the Acquire makes the join waker written before `set_join_waker` visible.
    pub(super) fn transition_to_complete(&self) -> Snapshot {
        let prev = Snapshot(self.val.fetch_xor(RUNNING | COMPLETE, Ordering::AcqRel));
        assert!(prev.is_running(), "a task completed without being RUNNING");
        assert!(!prev.is_complete(), "a task completed twice");
        Snapshot(prev.0 ^ (RUNNING | COMPLETE))
    }

    /// Drops `count` references after completion (the running one, and the
    /// owned list's if `release` returned it). True: that was the last; the
    /// caller deallocates. AcqRel as any reference drop (see `ref_dec`).
    pub(super) fn transition_to_terminal(&self, count: usize) -> bool {
        let prev = Snapshot(self.val.fetch_sub(count * REF_ONE, Ordering::AcqRel));
        assert!(
            prev.ref_count() >= count,
            "task reference count underflow: {} < {count}",
            prev.ref_count()
        );
        prev.ref_count() == count
    }

    /// A wake that consumes the waker's reference. Release pairs with the
    /// Acquire of `transition_to_running`: what the waker wrote before waking
    /// is visible to the next poll.
    pub(super) fn transition_to_notified_by_val(&self) -> TransitionToNotifiedByVal {
        self.fetch_update_action(|curr| {
            let mut next = curr;
            let action = if curr.is_running() {
                // The runner reschedules after its poll; it holds a reference,
                // so ours is not the last.
                next.0 |= NOTIFIED;
                next.ref_dec();
                assert!(
                    next.ref_count() > 0,
                    "a running task had only the waker's reference"
                );
                TransitionToNotifiedByVal::DoNothing
            } else if curr.is_complete() || curr.is_notified() {
                next.ref_dec();
                if next.ref_count() == 0 {
                    TransitionToNotifiedByVal::Dealloc
                } else {
                    TransitionToNotifiedByVal::DoNothing
                }
            } else {
                next.0 |= NOTIFIED;
                TransitionToNotifiedByVal::Submit
            };
            (action, Some(next))
        })
    }

    /// A wake that keeps the waker's reference. Release as
    /// `transition_to_notified_by_val`.
    pub(super) fn transition_to_notified_by_ref(&self) -> TransitionToNotifiedByRef {
        self.fetch_update_action(|curr| {
            if curr.is_complete() || curr.is_notified() {
                return (TransitionToNotifiedByRef::DoNothing, None);
            }
            let mut next = curr;
            next.0 |= NOTIFIED;
            if curr.is_running() {
                return (TransitionToNotifiedByRef::DoNothing, Some(next));
            }
            next.ref_inc();
            (TransitionToNotifiedByRef::Submit, Some(next))
        })
    }

    /// Abort from a `JoinHandle` or `AbortHandle`. True: the task was idle, a
    /// reference was taken for a new `Notified`; the caller schedules it so a
    /// runtime thread cancels the task. Release pairs with the Acquire of
    /// `transition_to_running` / `transition_to_idle` that sees `CANCELLED`.
    pub(super) fn transition_to_notified_and_cancel(&self) -> bool {
        self.fetch_update_action(|curr| {
            if curr.is_cancelled() || curr.is_complete() {
                return (false, None);
            }
            let mut next = curr;
            next.0 |= CANCELLED;
            if curr.is_running() || curr.is_notified() {
                // The runner, or the runner of the queued Notified, cancels.
                next.0 |= NOTIFIED;
                return (false, Some(next));
            }
            next.0 |= NOTIFIED;
            next.ref_inc();
            (true, Some(next))
        })
    }

    /// Shut the task down (runtime shutdown, or a `Notified` cancelled instead
    /// of run). True: the task was idle and is now `RUNNING | CANCELLED`; the
    /// caller drops the future and completes. False: it is running elsewhere
    /// (that runner cancels after its poll) or already complete.
    pub(super) fn transition_to_shutdown(&self) -> bool {
        self.fetch_update_action(|curr| {
            let mut next = curr;
            if curr.is_idle() {
                next.0 |= RUNNING;
            }
            next.0 |= CANCELLED;
            (curr.is_idle(), Some(next))
        })
    }

    /// The `JoinHandle` stored a waker and publishes it. Err: the task
    /// completed first (the waker field is still the `JoinHandle`'s). Release
    /// pairs with the Acquire of `transition_to_complete` (the completer reads
    /// the waker); Acquire on Err pairs with its Release (the output).
    pub(super) fn set_join_waker(&self) -> Result<Snapshot, Snapshot> {
        self.fetch_update_action(|curr| {
            assert!(
                curr.is_join_interested(),
                "set_join_waker without JOIN_INTEREST"
            );
            assert!(
                !curr.is_join_waker_set(),
                "set_join_waker with JOIN_WAKER already set"
            );
            if curr.is_complete() {
                return (Err(curr), None);
            }
            let next = Snapshot(curr.0 | JOIN_WAKER);
            (Ok(next), Some(next))
        })
    }

    /// The `JoinHandle` takes the waker field back to replace it. Err: the
    /// task completed first (the completer owns the field until it clears
    /// `JOIN_WAKER`). Orderings as `set_join_waker`.
    pub(super) fn unset_join_waker(&self) -> Result<Snapshot, Snapshot> {
        self.fetch_update_action(|curr| {
            assert!(
                curr.is_join_interested(),
                "unset_join_waker without JOIN_INTEREST"
            );
            // Completion first: between the JoinHandle's load (which saw
            // JOIN_WAKER) and this CAS, the completer may have woken the
            // waker and cleared JOIN_WAKER (found by
            // loom_join_waker_replaced_vs_complete).
            if curr.is_complete() {
                return (Err(curr), None);
            }
            assert!(
                curr.is_join_waker_set(),
                "unset_join_waker without JOIN_WAKER"
            );
            let next = Snapshot(curr.0 & !JOIN_WAKER);
            (Ok(next), Some(next))
        })
    }

    /// The completer woke the join waker and gives the field back. Returns the
    /// new state: without `JOIN_INTEREST` the `JoinHandle` is gone and the
    /// completer drops the waker. AcqRel pairs with
    /// `transition_to_join_handle_dropped`.
    pub(super) fn unset_waker_after_complete(&self) -> Snapshot {
        let prev = Snapshot(self.val.fetch_and(!JOIN_WAKER, Ordering::AcqRel));
        assert!(
            prev.is_complete(),
            "unset_waker_after_complete before COMPLETE"
        );
        assert!(
            prev.is_join_waker_set(),
            "unset_waker_after_complete without JOIN_WAKER"
        );
        Snapshot(prev.0 & !JOIN_WAKER)
    }

    /// The common detach: a `JoinHandle` dropped before completion with no
    /// waker registered clears `JOIN_INTEREST` and drops its reference in one
    /// CAS. Err: take the slow path (`transition_to_join_handle_dropped`).
    /// Release pairs with the Acquire of `transition_to_complete`, which then
    /// drops the output itself.
    pub(super) fn drop_join_handle_fast(&self) -> Result<(), ()> {
        self.fetch_update_action(|curr| {
            assert!(curr.is_join_interested(), "a JoinHandle was dropped twice");
            if curr.is_complete() || curr.is_join_waker_set() || curr.ref_count() < 2 {
                return (Err(()), None);
            }
            let mut next = curr;
            next.0 &= !JOIN_INTEREST;
            next.ref_dec();
            (Ok(()), Some(next))
        })
    }

    /// The `JoinHandle` is dropped: clear `JOIN_INTEREST` (and, before
    /// completion, `JOIN_WAKER`, taking the waker field back). The caller then
    /// drops what the outcome says and its reference. AcqRel: Acquire pairs
    /// with `transition_to_complete` (the output is visible); Release with the
    /// completer's Acquire (it will not touch the waker or output).
    pub(super) fn transition_to_join_handle_dropped(&self) -> TransitionToJoinHandleDropped {
        self.fetch_update_action(|curr| {
            assert!(curr.is_join_interested(), "a JoinHandle was dropped twice");
            let mut next = curr;
            next.0 &= !JOIN_INTEREST;
            if !curr.is_complete() {
                next.0 &= !JOIN_WAKER;
            }
            let out = TransitionToJoinHandleDropped {
                drop_output: curr.is_complete(),
                drop_waker: !next.is_join_waker_set(),
            };
            (out, Some(next))
        })
    }

    /// Takes one more reference from one the caller holds. Relaxed as in
    /// `Arc::clone`: the count cannot reach zero meanwhile, and nothing is
    /// published. Aborts the process on overflow (as `Arc` does).
    pub(super) fn ref_inc(&self) {
        let prev = self.val.fetch_add(REF_ONE, Ordering::Relaxed);
        if prev > isize::MAX as usize {
            std::process::abort();
        }
    }

    /// Drops one reference. True: it was the last; the caller deallocates.
    /// AcqRel as in `Arc::drop`: the Release orders this holder's uses before
    /// the free; the Acquire makes every other holder's uses visible to the
    /// thread that frees.
    pub(super) fn ref_dec(&self) -> bool {
        let prev = Snapshot(self.val.fetch_sub(REF_ONE, Ordering::AcqRel));
        assert!(prev.ref_count() >= 1, "task reference count underflow");
        prev.ref_count() == 1
    }
}

impl Snapshot {
    /// Neither running nor complete.
    pub(super) fn is_idle(self) -> bool {
        self.0 & LIFECYCLE_MASK == 0
    }
    pub(super) fn is_running(self) -> bool {
        self.0 & RUNNING != 0
    }
    pub(super) fn is_complete(self) -> bool {
        self.0 & COMPLETE != 0
    }
    pub(super) fn is_notified(self) -> bool {
        self.0 & NOTIFIED != 0
    }
    pub(super) fn is_cancelled(self) -> bool {
        self.0 & CANCELLED != 0
    }
    pub(super) fn is_join_interested(self) -> bool {
        self.0 & JOIN_INTEREST != 0
    }
    pub(super) fn is_join_waker_set(self) -> bool {
        self.0 & JOIN_WAKER != 0
    }
    pub(super) fn ref_count(self) -> usize {
        (self.0 & !FLAG_MASK) >> FLAG_BITS
    }
    fn ref_inc(&mut self) {
        assert!(
            self.0 <= isize::MAX as usize,
            "task reference count overflow"
        );
        self.0 += REF_ONE;
    }
    fn ref_dec(&mut self) {
        assert!(self.ref_count() > 0, "task reference count underflow");
        self.0 -= REF_ONE;
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("running", &self.is_running())
            .field("complete", &self.is_complete())
            .field("notified", &self.is_notified())
            .field("cancelled", &self.is_cancelled())
            .field("join_interest", &self.is_join_interested())
            .field("join_waker", &self.is_join_waker_set())
            .field("ref_count", &self.ref_count())
            .finish()
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.load().fmt(f)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn flags_and_count_do_not_overlap() {
        let all = RUNNING | COMPLETE | NOTIFIED | CANCELLED | JOIN_INTEREST | JOIN_WAKER;
        assert_eq!(all, FLAG_MASK);
        assert_eq!(REF_ONE & FLAG_MASK, 0);
        assert_eq!(Snapshot(INITIAL_BOUND).ref_count(), 3);
        assert_eq!(Snapshot(INITIAL_BLOCKING).ref_count(), 2);
    }

    #[test]
    fn run_idle_wake_complete() {
        let s = State::new(INITIAL_BOUND);
        assert_eq!(s.transition_to_running(), TransitionToRunning::Success);
        // Woken while running: only NOTIFIED.
        assert_eq!(
            s.transition_to_notified_by_ref(),
            TransitionToNotifiedByRef::DoNothing
        );
        assert!(s.load().is_notified());
        assert_eq!(s.transition_to_idle(), TransitionToIdle::OkNotified);
        assert_eq!(s.load().ref_count(), 3);
        assert_eq!(s.transition_to_running(), TransitionToRunning::Success);
        assert_eq!(s.transition_to_idle(), TransitionToIdle::Ok);
        assert_eq!(s.load().ref_count(), 2);
        assert_eq!(
            s.transition_to_notified_by_ref(),
            TransitionToNotifiedByRef::Submit
        );
        assert_eq!(s.load().ref_count(), 3);
        assert_eq!(
            s.transition_to_notified_by_ref(),
            TransitionToNotifiedByRef::DoNothing
        );
        assert_eq!(s.transition_to_running(), TransitionToRunning::Success);
        let done = s.transition_to_complete();
        assert!(done.is_complete() && !done.is_running());
        assert_eq!(
            s.transition_to_notified_by_ref(),
            TransitionToNotifiedByRef::DoNothing
        );
        assert!(!s.transition_to_notified_and_cancel());
    }

    #[test]
    fn abort_idle_running_queued() {
        let s = State::new(INITIAL_BOUND);
        // Queued: abort only marks it.
        assert!(!s.transition_to_notified_and_cancel());
        assert_eq!(s.transition_to_running(), TransitionToRunning::Cancelled);

        let s = State::new(INITIAL_BOUND);
        assert_eq!(s.transition_to_running(), TransitionToRunning::Success);
        assert_eq!(s.transition_to_idle(), TransitionToIdle::Ok);
        // Idle: abort takes a reference for a new Notified.
        assert!(s.transition_to_notified_and_cancel());
        assert_eq!(s.load().ref_count(), 3);
        assert!(!s.transition_to_notified_and_cancel());

        let s = State::new(INITIAL_BOUND);
        assert_eq!(s.transition_to_running(), TransitionToRunning::Success);
        assert!(!s.transition_to_notified_and_cancel());
        assert_eq!(s.transition_to_idle(), TransitionToIdle::Cancelled);
    }

    #[test]
    fn shutdown_while_queued_makes_the_notified_fail() {
        let s = State::new(INITIAL_BOUND);
        assert!(s.transition_to_shutdown());
        assert!(!s.transition_to_shutdown());
        let _ = s.transition_to_complete();
        assert_eq!(s.transition_to_running(), TransitionToRunning::Failed);
        assert_eq!(s.load().ref_count(), 2);
    }

    #[test]
    fn join_waker_protocol() {
        let s = State::new(INITIAL_BOUND);
        assert!(s.set_join_waker().is_ok());
        assert!(s.unset_join_waker().is_ok());
        assert!(s.set_join_waker().is_ok());
        assert_eq!(s.transition_to_running(), TransitionToRunning::Success);
        let done = s.transition_to_complete();
        assert!(done.is_join_waker_set());
        assert!(s.unset_join_waker().is_err());
        let after = s.unset_waker_after_complete();
        assert!(after.is_join_interested() && !after.is_join_waker_set());
        let dropped = s.transition_to_join_handle_dropped();
        assert_eq!(
            dropped,
            TransitionToJoinHandleDropped {
                drop_output: true,
                drop_waker: true
            }
        );
    }

    #[test]
    fn unset_join_waker_after_the_completer_cleared_it_reports_complete() {
        // Regression (found by loom_join_waker_replaced_vs_complete): a
        // JoinHandle re-polled with a new waker saw JOIN_WAKER, then the task
        // completed and the completer cleared JOIN_WAKER before the
        // JoinHandle's CAS, which asserted instead of reporting completion.
        let s = State::new(INITIAL_BOUND);
        assert!(s.set_join_waker().is_ok());
        assert_eq!(s.transition_to_running(), TransitionToRunning::Success);
        let _ = s.transition_to_complete();
        let _ = s.unset_waker_after_complete();
        assert!(s.unset_join_waker().unwrap_err().is_complete());
    }

    #[test]
    fn join_handle_fast_drop_only_before_completion() {
        let s = State::new(INITIAL_BOUND);
        assert!(s.drop_join_handle_fast().is_ok());
        assert_eq!(s.load().ref_count(), 2);
        assert!(!s.load().is_join_interested());

        let s = State::new(INITIAL_BOUND);
        assert!(s.set_join_waker().is_ok());
        assert!(s.drop_join_handle_fast().is_err());
    }
}
