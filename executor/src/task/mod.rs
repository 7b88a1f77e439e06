//! Tasks: a spawned future, its output and everything that refers to it, in
//! one heap allocation.
//!
//! # The allocation
//!
//! ```text
//! Cell<F, S> (#[repr(C)], harness.rs)
//! +-- Header (raw.rs; non-generic, offset 0)
//! |     state       AtomicUsize: 6 flags + reference count   (state.rs)
//! |     vtable      &'static Vtable of the generic functions  (harness.rs)
//! |     owned       prev/next in the OwnedTasks shard list    (list.rs, under the shard lock)
//! |     queue_next  link for a scheduler's intrusive queue    (holder of the Notified)
//! |     owner_id, id
//! +-- Core: scheduler S, stage Running(F) | Finished(Result<F::Output, JoinError>) | Consumed
//! +-- Trailer: join waker (UnsafeCell<Option<Waker>>, guarded by JOIN_WAKER)
//! ```
//!
//! Everything that points at a task is a `NonNull<Header>` owning one
//! reference in the state word: the owned list's `Task`, the queued
//! `Notified`, the [`JoinHandle`], each [`AbortHandle`] and each `Waker`.
//! Type-erased code (wakers, queues) reaches the typed code through the
//! vtable. The last reference to go frees the allocation.
//!
//! # Protocol
//!
//! 1. Spawn: `OwnedTasks::bind` allocates with three references (list,
//!    `Notified`, `JoinHandle`) and `NOTIFIED`, links the task into its
//!    shard, and hands the `Notified` to the scheduler's queue.
//! 2. Run: a worker pops the `Notified` and calls `Notified::run`:
//!    `NOTIFIED -> RUNNING`, poll inside the coop budget, catching panics.
//! 3. Wake: the waker's CAS sets `NOTIFIED`. Idle task: the waker schedules a
//!    `Notified` (`Schedule::schedule`). Running task: nothing else; when the
//!    poll returns `Pending` the runner sees `NOTIFIED` and hands the task to
//!    `Schedule::yield_now`. Notified or complete: nothing.
//! 4. Complete: output stored, `COMPLETE` set, join waker woken,
//!    `Schedule::release` unlinks from the owned list, references dropped.
//! 5. Abort: `CANCELLED | NOTIFIED`; an idle task is scheduled so a runtime
//!    thread drops its future; a running one is cancelled by its runner after
//!    the poll; a queued one by whoever runs its `Notified`.
//! 6. Shutdown: `OwnedTasks::close_and_shutdown_all` cancels every idle task
//!    on the calling thread; running ones are cancelled by their runners.
//!
//! Why a future is dropped exactly once: only the holder of `RUNNING` touches
//! the future, `RUNNING` is taken by one CAS (`transition_to_running` or
//! `transition_to_shutdown`, both failing if the task is running or
//! complete), and it is given up either to idle (future kept) or to
//! `COMPLETE` (future dropped in place just before, its slot overwritten with
//! `Consumed` even if its Drop panicked), which no transition leaves.
//!
//! # Rejected
//!
//! - `Arc<dyn Task>` plus a separate `Arc` for the join state (async-std
//!   style): two allocations and two reference counts per spawn.
//! - A mutex around the stage: the state word already gives the runner
//!   exclusive access; a lock would add an atomic pair per poll.
//! - Letting a wake of a running task schedule it at once: a second
//!   `Notified` would exist while the first is being polled, and two threads
//!   would race for `RUNNING`. `NOTIFIED` defers it instead: after the poll
//!   the runner's reference becomes the new `Notified`
//!   (`TransitionToIdle::OkNotified`), so a wake during a poll costs one bit.
//! - Moving the future out of the cell to drop it (`mem::replace`): a pinned
//!   future must be dropped where it was polled; the stage is dropped in
//!   place (`drop_in_place`) and then overwritten.
mod blocking;
mod error;
mod harness;
mod id;
mod join;
// The scheduler (branch `sched`) is the user of the owned list and the
// queue links; until it lands they are only exercised by the tests.
#[cfg_attr(any(not(test), loom), allow(dead_code))]
mod list;
#[cfg_attr(any(not(test), loom), allow(dead_code))]
mod raw;
mod state;
mod waker;

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(test, loom))]
mod loom_tests;

pub use blocking::{blocking_task, Runnable};
pub use error::JoinError;
pub use id::{id, try_id, Id};
pub use join::{AbortHandle, JoinHandle};
#[allow(unused_imports)]
pub(crate) use list::OwnedTasks;
#[allow(unused_imports)]
pub(crate) use raw::Header;

use raw::RawTask;
use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;

/// How a task reaches its scheduler. Implemented by the runtime's handle (an
/// `Arc` of its shared state); every task stores one.
pub(crate) trait Schedule: Send + Sync + Sized + 'static {
    /// Puts a task that was woken (from any thread, via its Waker) or aborted
    /// while idle into a run queue. After the runtime shut down, dropping the
    /// `Notified` (or calling `Notified::shutdown`) is correct.
    fn schedule(&self, task: Notified<Self>);

    /// A task that was woken while it was running is handed back here after
    /// its poll returned `Pending` (e.g. `yield_now`).
    fn yield_now(&self, task: Notified<Self>) {
        self.schedule(task)
    }

    /// Called exactly once when the task completes or is cancelled, to
    /// unlink it from the `OwnedTasks` list it was bound to
    /// (`OwnedTasks::remove`). Returns the list's reference, if it held one.
    fn release(&self, task: &Task<Self>) -> Option<Task<Self>>;
}

/// The owned list's reference to a task.
pub(crate) struct Task<S: 'static> {
    raw: RawTask,
    _scheduler: PhantomData<S>,
}

/// A reference to a task that is in (or about to be put in) a run queue.
/// At most one exists per task; it is consumed by [`Notified::run`] or
/// [`Notified::shutdown`]. Dropping it (e.g. a run queue dropped at shutdown)
/// only drops the reference: the task stays registered in its `OwnedTasks`,
/// whose `close_and_shutdown_all` cancels it.
pub(crate) struct Notified<S: 'static> {
    task: Task<S>,
}

// SAFETY: a task's future and output are `Send` (bind's bounds) and are
// touched only by the thread that holds RUNNING; everything else is atomic
// or under a lock. `S: Schedule` is Send + Sync.
unsafe impl<S: Schedule> Send for Task<S> {}
// SAFETY: as Send; `&Task` only reads the immutable header fields.
unsafe impl<S: Schedule> Sync for Task<S> {}

impl<S: 'static> Task<S> {
    /// # Safety
    ///
    /// `ptr` is a live task whose scheduler type is `S`; the result takes
    /// over one of its references.
    unsafe fn from_raw_ref(ptr: NonNull<Header>) -> Task<S> {
        Task {
            // SAFETY: the caller's contract.
            raw: unsafe { RawTask::from_raw(ptr) },
            _scheduler: PhantomData,
        }
    }

    /// Gives up the wrapper, keeping the reference (now the caller's).
    fn into_raw_ref(self) -> NonNull<Header> {
        let this = ManuallyDrop::new(self);
        this.raw.header_ptr()
    }

    fn header(&self) -> &Header {
        self.raw.header()
    }

    fn header_ptr(&self) -> NonNull<Header> {
        self.raw.header_ptr()
    }

    /// The task's id.
    pub(crate) fn id(&self) -> Id {
        self.raw.id()
    }

    /// Cancels the task if it is idle (drops the future on this thread);
    /// if it is running, its runner cancels it after the poll.
    pub(crate) fn shutdown(self) {
        let raw = self.raw;
        std::mem::forget(self);
        raw.shutdown();
    }
}

impl<S: 'static> Drop for Task<S> {
    fn drop(&mut self) {
        self.raw.drop_reference();
    }
}

impl<S: 'static> fmt::Debug for Task<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task").field("id", &self.id()).finish()
    }
}

impl<S: Schedule> Notified<S> {
    /// # Safety
    ///
    /// As [`Task::from_raw_ref`], and the reference is the task's one
    /// `Notified` reference (`NOTIFIED` is set for it).
    unsafe fn from_raw_ref(ptr: NonNull<Header>) -> Notified<S> {
        Notified {
            // SAFETY: the caller's contract.
            task: unsafe { Task::from_raw_ref(ptr) },
        }
    }

    /// Polls the task once inside the cooperative budget, catching a panic
    /// of the future (it becomes `JoinError::is_panic`). On `Ready`: stores
    /// the output, completes, wakes the `JoinHandle`, calls
    /// `Schedule::release`. On `Pending`: if woken during the poll, hands a
    /// new `Notified` to `Schedule::yield_now`. If the task was cancelled,
    /// drops the future instead of polling it.
    pub(crate) fn run(self) {
        let raw = self.task.raw;
        std::mem::forget(self);
        raw.poll();
    }

    /// Cancels the task instead of running it: drops the future (here, unless
    /// it is running elsewhere) and the `JoinHandle` reports cancelled.
    pub(crate) fn shutdown(self) {
        let raw = self.task.raw;
        std::mem::forget(self);
        raw.shutdown();
    }

    /// The task's id.
    pub(crate) fn id(&self) -> Id {
        self.task.id()
    }

    /// Gives up the wrapper for an intrusive queue (linked through
    /// [`Header::set_queue_next`]); the reference goes with the pointer.
    #[allow(dead_code)]
    pub(crate) fn into_raw(self) -> NonNull<Header> {
        let this = ManuallyDrop::new(self);
        this.task.raw.header_ptr()
    }

    /// Takes back a pointer from [`Notified::into_raw`].
    ///
    /// # Safety
    ///
    /// `ptr` came from `Notified::<S>::into_raw` and is taken back once.
    #[allow(dead_code)]
    pub(crate) unsafe fn from_raw(ptr: NonNull<Header>) -> Notified<S> {
        // SAFETY: the caller's contract: the Notified's reference comes back.
        unsafe { Notified::from_raw_ref(ptr) }
    }
}

impl<S: 'static> fmt::Debug for Notified<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notified")
            .field("id", &self.task.id())
            .finish()
    }
}
