//! The typed half of a task: the allocation `Cell<F, S>` and the generic
//! functions behind the vtable (run, complete, cancel, read the output, drop
//! the `JoinHandle`, free).
//!
//! Run, step by step (`Harness::poll`):
//! 1. `transition_to_running` turns the `Notified`'s reference into the
//!    running reference, or reports that the task was cancelled while queued
//!    (drop the future, go to 4) or shut down meanwhile (drop the reference).
//! 2. Poll the future inside the cooperative budget, catching a panic. A
//!    `Ready` or a panic: drop the future (catching a panicking `Drop`), store
//!    the output or `JoinError::panic`, go to 4.
//! 3. `Pending`: `transition_to_idle`. Woken during the poll -> the running
//!    reference becomes a new `Notified`, handed to `Schedule::yield_now`.
//!    Cancelled during the poll -> drop the future, store
//!    `JoinError::cancelled`, go to 4.
//! 4. Complete: `transition_to_complete`; no `JoinHandle` -> drop the output
//!    here; a join waker registered -> wake it, then give the field back
//!    (`unset_waker_after_complete`). Then `Schedule::release` unlinks the
//!    task from its owned list, and one `fetch_sub` drops the running
//!    reference and the list's.
//!
//! User code (the future's poll and Drop, the output's Drop, the join
//! waker) runs inside `catch_unwind`, so a panic never unwinds through a
//! half-done transition or takes down the runtime thread.
use super::error::JoinError;
use super::id::IdGuard;
use super::raw::{Header, RawTask, Vtable};
use super::state::{TransitionToIdle, TransitionToRunning};
use super::waker::waker_ref;
use super::{Id, Notified, Schedule, Task};
use crate::loom::UnsafeCell;
use std::any::Any;
use std::future::Future;
use std::mem::{self, ManuallyDrop};
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::task::{Context, Poll, Waker};

/// One task, one allocation. `#[repr(C)]` keeps `header` at offset 0.
#[repr(C)]
pub(super) struct Cell<F: Future, S> {
    pub(super) header: Header,
    core: Core<F, S>,
    trailer: Trailer,
}

/// The scheduler (immutable, shared) and the stage. The stage belongs to the
/// holder of `RUNNING` until `COMPLETE`; after that, to the `JoinHandle` if
/// `JOIN_INTEREST` was set at completion, else to the completing thread.
struct Core<F: Future, S> {
    scheduler: S,
    stage: UnsafeCell<Stage<F>>,
}

enum Stage<F: Future> {
    Running(F),
    Finished(Result<F::Output, JoinError>),
    Consumed,
}

/// The join waker, owned as the `JOIN_WAKER` bit says (see `state.rs`).
struct Trailer {
    waker: UnsafeCell<Option<Waker>>,
}

impl<F: Future, S: Schedule> Cell<F, S> {
    /// Allocates a task (the one heap allocation) and returns its header.
    pub(super) fn allocate(
        future: F,
        scheduler: S,
        id: Id,
        owner_id: u64,
        state: usize,
    ) -> NonNull<Header> {
        let cell = Box::new(Cell {
            header: Header::new(state, vtable::<F, S>(), owner_id, id),
            core: Core {
                scheduler,
                stage: UnsafeCell::new(Stage::Running(future)),
            },
            trailer: Trailer {
                waker: UnsafeCell::new(None),
            },
        });
        NonNull::from(Box::leak(cell)).cast::<Header>()
    }
}

fn vtable<F: Future, S: Schedule>() -> &'static Vtable {
    &Vtable {
        poll: poll::<F, S>,
        schedule: schedule::<F, S>,
        dealloc: dealloc::<F, S>,
        try_read_output: try_read_output::<F, S>,
        drop_join_handle_slow: drop_join_handle_slow::<F, S>,
        shutdown: shutdown::<F, S>,
    }
}

// The vtable entries. Each: # Safety: `ptr` is the header of a live
// `Cell<F, S>` and the caller holds the reference the entry's doc in
// `raw.rs` says it consumes (or, for `dealloc`, holds the last one).

unsafe fn poll<F: Future, S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: the vtable entry's contract.
    unsafe { Harness::<F, S>::from_raw(ptr) }.poll();
}

unsafe fn schedule<F: Future, S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: the vtable entry's contract.
    let harness = unsafe { Harness::<F, S>::from_raw(ptr) };
    // SAFETY: the consumed reference becomes the Notified's.
    let notified = unsafe { Notified::<S>::from_raw_ref(ptr) };
    harness.core().scheduler.schedule(notified);
}

unsafe fn dealloc<F: Future, S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: the vtable entry's contract.
    unsafe { Harness::<F, S>::from_raw(ptr) }.dealloc();
}

unsafe fn try_read_output<F: Future, S: Schedule>(
    ptr: NonNull<Header>,
    dst: *mut (),
    waker: &Waker,
) {
    // SAFETY: the vtable entry's contract.
    let harness = unsafe { Harness::<F, S>::from_raw(ptr) };
    if harness.can_read_output(waker) {
        // SAFETY: `dst` is a `Poll<Result<F::Output, JoinError>>` (RawTask::try_read_output's
        // contract), and COMPLETE with JOIN_INTEREST gives the JoinHandle the output.
        unsafe {
            *dst.cast::<Poll<Result<F::Output, JoinError>>>() = Poll::Ready(harness.take_output());
        }
    }
}

unsafe fn drop_join_handle_slow<F: Future, S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: the vtable entry's contract.
    unsafe { Harness::<F, S>::from_raw(ptr) }.drop_join_handle_slow();
}

unsafe fn shutdown<F: Future, S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: the vtable entry's contract.
    unsafe { Harness::<F, S>::from_raw(ptr) }.shutdown();
}

/// A typed view of a task allocation.
struct Harness<F: Future, S: 'static> {
    cell: NonNull<Cell<F, S>>,
}

impl<F: Future, S: Schedule> Harness<F, S> {
    /// # Safety
    ///
    /// `ptr` is the header of a live `Cell<F, S>`.
    unsafe fn from_raw(ptr: NonNull<Header>) -> Harness<F, S> {
        Harness { cell: ptr.cast() }
    }

    fn cell(&self) -> &Cell<F, S> {
        // SAFETY: live per `from_raw`'s contract; the caller's reference keeps it so.
        unsafe { self.cell.as_ref() }
    }

    fn header(&self) -> &Header {
        &self.cell().header
    }

    fn core(&self) -> &Core<F, S> {
        &self.cell().core
    }

    fn trailer(&self) -> &Trailer {
        &self.cell().trailer
    }

    fn raw(&self) -> RawTask {
        // SAFETY: the pointer is live; the RawTask borrows the caller's reference.
        unsafe { RawTask::from_raw(self.cell.cast()) }
    }

    fn id(&self) -> Id {
        self.header().id
    }

    /// Step 1-3 of the module header.
    fn poll(self) {
        match self.header().state.transition_to_running() {
            TransitionToRunning::Success => {}
            TransitionToRunning::Cancelled => {
                self.cancel_future();
                self.complete();
                return;
            }
            TransitionToRunning::Failed => return,
            TransitionToRunning::Dealloc => {
                self.dealloc();
                return;
            }
        }
        if self.poll_future().is_ready() {
            self.complete();
            return;
        }
        match self.header().state.transition_to_idle() {
            TransitionToIdle::Ok => {}
            TransitionToIdle::OkNotified => {
                // SAFETY: the running reference is the new Notified's.
                let notified = unsafe { Notified::<S>::from_raw_ref(self.raw().header_ptr()) };
                self.core().scheduler.yield_now(notified);
            }
            TransitionToIdle::OkDealloc => self.dealloc(),
            TransitionToIdle::Cancelled => {
                self.cancel_future();
                self.complete();
            }
        }
    }

    /// Polls the future once. `Ready(())`: the output (or the panic) is
    /// stored and the future dropped.
    fn poll_future(&self) -> Poll<()> {
        let _id = IdGuard::enter(self.id());
        let waker = waker_ref(self.raw().header_ptr());
        let mut cx = Context::from_waker(&waker);
        let stage = &self.core().stage;
        let polled = panic::catch_unwind(AssertUnwindSafe(|| {
            with_budget(|| {
                stage.with_mut(|ptr| {
                    // SAFETY: we hold RUNNING: exclusive access to the stage.
                    let Stage::Running(future) = (unsafe { &mut *ptr }) else {
                        unreachable!("a task was polled after its future was dropped");
                    };
                    // SAFETY: the future lives in the heap cell and is never
                    // moved: `drop_stage` drops it in place.
                    unsafe { Pin::new_unchecked(future) }.poll(&mut cx)
                })
            })
        }));
        let output = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(output)) => Ok(output),
            Err(payload) => Err(JoinError::panic(self.id(), payload)),
        };
        // The future is done: drop it now (it may hold resources), not at
        // dealloc. A panic in its Drop after a Ready is ignored: the output
        // stands.
        if let Err(payload) = self.drop_stage() {
            drop_payload(payload);
        }
        self.store_output(output);
        Poll::Ready(())
    }

    /// Drops the future instead of polling it and stores `cancelled` (or
    /// `panic`, if its Drop panicked). The caller holds RUNNING.
    fn cancel_future(&self) {
        let err = match self.drop_stage() {
            Ok(()) => JoinError::cancelled(self.id()),
            Err(payload) => JoinError::panic(self.id(), payload),
        };
        self.store_output(Err(err));
    }

    /// Drops the future or output *in place* (a pinned future must not move
    /// before its Drop runs: an intrusive future unlinks itself by address),
    /// catching a panic, then marks the stage `Consumed`. The write happens
    /// whether or not the Drop panicked, so nothing is dropped twice.
    fn drop_stage(&self) -> Result<(), Box<dyn Any + Send>> {
        self.core().stage.with_mut(|ptr| {
            // SAFETY: the caller has exclusive access to the stage (RUNNING,
            // or the output's owner after COMPLETE).
            if matches!(unsafe { &*ptr }, Stage::Consumed) {
                return Ok(());
            }
            // User Drop code sees its task's id (`task::try_id`).
            let _id = IdGuard::enter(self.id());
            // SAFETY: exclusive access (above); the value is dropped once
            // here and the place is overwritten without a drop just after.
            let dropped =
                panic::catch_unwind(AssertUnwindSafe(|| unsafe { ptr::drop_in_place(ptr) }));
            // SAFETY: the old value is gone (dropped, or its Drop unwound,
            // which still dropped its fields); write without dropping it.
            unsafe { ptr.write(Stage::Consumed) };
            dropped
        })
    }

    fn store_output(&self, output: Result<F::Output, JoinError>) {
        self.core().stage.with_mut(|ptr| {
            // SAFETY: the caller holds RUNNING and the stage is `Consumed` (no
            // drop of user code happens here).
            unsafe { ptr.write(Stage::Finished(output)) }
        });
    }

    /// Takes the output for the `JoinHandle`.
    fn take_output(&self) -> Result<F::Output, JoinError> {
        let stage = self.core().stage.with_mut(|ptr| {
            // SAFETY: the task is COMPLETE and JOIN_INTEREST is the caller's: the
            // output is the JoinHandle's alone.
            unsafe { mem::replace(&mut *ptr, Stage::Consumed) }
        });
        match stage {
            Stage::Finished(output) => output,
            _ => panic!(
                "a JoinHandle was polled after it returned Ready; poll it only until it \
                 completes (wrap it in futures' `FutureExt::fuse` to poll it again safely)"
            ),
        }
    }

    /// Step 4 of the module header. Consumes the running reference.
    fn complete(self) {
        let snapshot = self.header().state.transition_to_complete();
        if !snapshot.is_join_interested() {
            // Nobody will read the output: drop it here.
            if let Err(payload) = self.drop_stage() {
                drop_payload(payload);
            }
        } else if snapshot.is_join_waker_set() {
            let woke = self.trailer().waker.with(|ptr| {
                // SAFETY: JOIN_WAKER is set: the JoinHandle does not write the
                // field until we clear the bit.
                let waker = unsafe { (*ptr).as_ref() }.expect("JOIN_WAKER set without a waker");
                panic::catch_unwind(AssertUnwindSafe(|| waker.wake_by_ref()))
            });
            if let Err(payload) = woke {
                drop_payload(payload);
            }
            let snapshot = self.header().state.unset_waker_after_complete();
            if !snapshot.is_join_interested() {
                // The JoinHandle left while we were waking: the waker is ours to drop.
                self.take_and_drop_waker();
            }
        }

        // SAFETY: the borrowed Task does not own a reference (ManuallyDrop).
        let task = ManuallyDrop::new(unsafe { Task::<S>::from_raw_ref(self.raw().header_ptr()) });
        let released = self.core().scheduler.release(&task);
        let count = match released {
            Some(list_ref) => {
                // Its reference is dropped by the single fetch_sub below.
                mem::forget(list_ref);
                2
            }
            None => 1,
        };
        if self.header().state.transition_to_terminal(count) {
            self.dealloc();
        }
    }

    /// Cancels an idle task; consumes one reference.
    fn shutdown(self) {
        if !self.header().state.transition_to_shutdown() {
            // Running elsewhere (that runner cancels) or complete.
            self.raw().drop_reference();
            return;
        }
        self.cancel_future();
        self.complete();
    }

    /// The JoinHandle's waker registration (the `JOIN_WAKER` protocol).
    /// True: the task is complete; the output may be taken.
    fn can_read_output(&self, waker: &Waker) -> bool {
        let state = &self.header().state;
        let snapshot = state.load();
        assert!(
            snapshot.is_join_interested(),
            "a JoinHandle was polled without JOIN_INTEREST"
        );
        if snapshot.is_complete() {
            return true;
        }
        let registered = if snapshot.is_join_waker_set() {
            let same = self.trailer().waker.with(|ptr| {
                // SAFETY: JOIN_WAKER is set: the field is only read, by us or the completer.
                let current = unsafe { (*ptr).as_ref() };
                current.is_some_and(|w| w.will_wake(waker))
            });
            if same {
                return false;
            }
            state
                .unset_join_waker()
                .and_then(|_| self.set_join_waker(waker.clone()))
        } else {
            self.set_join_waker(waker.clone())
        };
        match registered {
            Ok(_) => false,
            Err(snapshot) => {
                assert!(
                    snapshot.is_complete(),
                    "join waker registration failed before completion"
                );
                true
            }
        }
    }

    /// Stores `waker` and publishes it; on Err (completed first) takes it back.
    fn set_join_waker(
        &self,
        waker: Waker,
    ) -> Result<super::state::Snapshot, super::state::Snapshot> {
        let old = self.trailer().waker.with_mut(|ptr| {
            // SAFETY: JOIN_WAKER is clear and JOIN_INTEREST is ours: exclusive access.
            unsafe { (*ptr).replace(waker) }
        });
        drop_waker(old);
        let res = self.header().state.set_join_waker();
        if res.is_err() {
            // Still ours: JOIN_WAKER never got set.
            self.take_and_drop_waker();
        }
        res
    }

    fn take_and_drop_waker(&self) {
        let old = self.trailer().waker.with_mut(|ptr| {
            // SAFETY: the caller owns the field (JOIN_WAKER clear and either
            // JOIN_INTEREST is the caller's or the JoinHandle is gone).
            unsafe { (*ptr).take() }
        });
        drop_waker(old);
    }

    fn drop_join_handle_slow(self) {
        let t = self.header().state.transition_to_join_handle_dropped();
        if t.drop_output {
            // The output is ours and nobody will read it.
            if let Err(payload) = self.drop_stage() {
                drop_payload(payload);
            }
        }
        if t.drop_waker {
            self.take_and_drop_waker();
        }
        self.raw().drop_reference();
    }

    fn dealloc(self) {
        // Drop what is left of user code first, catching panics, then free.
        self.take_and_drop_waker();
        if let Err(payload) = self.drop_stage() {
            drop_payload(payload);
        }
        // SAFETY: the last reference is gone; the cell came from Box::leak in `allocate`.
        drop(unsafe { Box::from_raw(self.cell.as_ptr()) });
    }
}

/// Drops a waker, catching a panic of its drop.
fn drop_waker(waker: Option<Waker>) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(move || drop(waker))) {
        drop_payload(payload);
    }
}

/// Drops a caught panic payload; if that Drop panics too, the second payload
/// is leaked rather than letting it unwind through the runtime.
fn drop_payload(payload: Box<dyn Any + Send>) {
    if let Err(again) = panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        mem::forget(again);
    }
}

/// Polls inside the cooperative budget. Not under loom: the budget is a std
/// thread-local, and loom runs its threads on one OS thread, where the
/// interleaved save/restore of nested budgets would leak a budget across
/// model iterations.
#[inline]
fn with_budget<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(not(loom))]
    {
        handoff_reactor::coop::budget(f)
    }
    #[cfg(loom)]
    {
        f()
    }
}
