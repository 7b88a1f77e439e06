//! The type-erased task: the `Header` every task allocation starts with, the
//! vtable that reaches the generic code, and `RawTask`, the untyped pointer
//! that wakers, `Notified`, `Task`, `JoinHandle` and `AbortHandle` wrap.
//!
//! The allocation is a `#[repr(C)]` `Cell<F, S>` (see `harness.rs`):
//! `Header` first, so a `NonNull<Header>` is also a pointer to the whole
//! cell, then the core (scheduler, future/output), then the trailer (join
//! waker). Code that does not know `F` and `S` goes through `Header::vtable`.
use super::state::{State, TransitionToNotifiedByRef, TransitionToNotifiedByVal};
use super::Id;
use crate::loom::UnsafeCell;
use std::ptr::NonNull;
use std::task::Waker;

/// The first field of every task allocation.
///
/// Who may touch what:
/// - `state`: anyone holding a reference, through its atomic transitions.
/// - `vtable`, `id`, `owner_id`: immutable after creation.
/// - `owned`: only under the lock of the `OwnedTasks` shard the task hashes to.
/// - `queue_next`: only the holder of the task's `Notified` (a scheduler's
///   intrusive queue links notified tasks through it).
#[repr(C)]
pub(crate) struct Header {
    pub(super) state: State,
    pub(super) vtable: &'static Vtable,
    /// Links in the owned-task shard list; guarded by the shard's mutex.
    pub(super) owned: UnsafeCell<Pointers>,
    /// Link for a scheduler's intrusive run queue.
    queue_next: UnsafeCell<Option<NonNull<Header>>>,
    /// The `OwnedTasks` the task was created for (0: none, a blocking task).
    pub(super) owner_id: u64,
    pub(super) id: Id,
}

/// Doubly-linked list links (see `list.rs`).
pub(super) struct Pointers {
    pub(super) prev: Option<NonNull<Header>>,
    pub(super) next: Option<NonNull<Header>>,
}

/// The generic half of a task, reached from type-erased code. Every entry
/// takes the header pointer of a live task.
pub(super) struct Vtable {
    /// Runs the task once; consumes the `Notified`'s reference.
    pub(super) poll: unsafe fn(NonNull<Header>),
    /// Hands a new `Notified` to the scheduler; consumes one reference.
    pub(super) schedule: unsafe fn(NonNull<Header>),
    /// Frees the allocation (the last reference is gone).
    pub(super) dealloc: unsafe fn(NonNull<Header>),
    /// `JoinHandle::poll`: writes `Poll::Ready(output)` to the
    /// `*mut Poll<Result<T, JoinError>>` if complete, else registers the waker.
    pub(super) try_read_output: unsafe fn(NonNull<Header>, *mut (), &Waker),
    /// `JoinHandle::drop` when the fast path failed; consumes its reference.
    pub(super) drop_join_handle_slow: unsafe fn(NonNull<Header>),
    /// Cancels the task (drop the future, complete) if it is idle; consumes
    /// one reference.
    pub(super) shutdown: unsafe fn(NonNull<Header>),
}

impl Header {
    pub(super) fn new(state: usize, vtable: &'static Vtable, owner_id: u64, id: Id) -> Header {
        Header {
            state: State::new(state),
            vtable,
            owned: UnsafeCell::new(Pointers {
                prev: None,
                next: None,
            }),
            queue_next: UnsafeCell::new(None),
            owner_id,
            id,
        }
    }

    /// The next task in a scheduler's intrusive queue.
    ///
    /// # Safety
    ///
    /// The caller holds this task's `Notified` (or the lock of the queue that
    /// holds it), so no other thread accesses the link.
    pub(crate) unsafe fn queue_next(&self) -> Option<NonNull<Header>> {
        // SAFETY: exclusive access per the caller's contract.
        self.queue_next.with(|p| unsafe { *p })
    }

    /// Sets the intrusive queue link.
    ///
    /// # Safety
    ///
    /// As [`Header::queue_next`].
    pub(crate) unsafe fn set_queue_next(&self, next: Option<NonNull<Header>>) {
        // SAFETY: exclusive access per the caller's contract.
        self.queue_next.with_mut(|p| unsafe { *p = next })
    }

    pub(crate) fn id(&self) -> Id {
        self.id
    }
}

/// An untyped pointer to a live task.
///
/// A `RawTask` value stands for one reference the holder owns (or borrows
/// from an owner that outlives it); the wrappers in `mod.rs`, `join.rs` and
/// `waker.rs` keep that invariant, which is what makes `header()` safe.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct RawTask {
    ptr: NonNull<Header>,
}

impl RawTask {
    /// # Safety
    ///
    /// `ptr` is the header of a live task and the caller transfers (or
    /// borrows) one of its references to the result.
    pub(super) unsafe fn from_raw(ptr: NonNull<Header>) -> RawTask {
        RawTask { ptr }
    }

    pub(super) fn header_ptr(self) -> NonNull<Header> {
        self.ptr
    }

    pub(super) fn header(&self) -> &Header {
        // SAFETY: a RawTask stands for a held reference (type invariant), so
        // the allocation is alive.
        unsafe { self.ptr.as_ref() }
    }

    pub(super) fn id(self) -> Id {
        self.header().id
    }

    /// Runs the task; consumes the `Notified` reference this value stands for.
    pub(super) fn poll(self) {
        // SAFETY: the task is alive (we hold a reference) and the vtable
        // matches the allocation it was created with.
        unsafe { (self.header().vtable.poll)(self.ptr) }
    }

    /// Cancels the task if idle; consumes the reference this value stands for.
    pub(super) fn shutdown(self) {
        // SAFETY: as `poll`.
        unsafe { (self.header().vtable.shutdown)(self.ptr) }
    }

    /// # Safety
    ///
    /// `dst` points to a `Poll<Result<T, JoinError>>` whose `T` is the task's
    /// output type, and the caller is the task's `JoinHandle`.
    pub(super) unsafe fn try_read_output(self, dst: *mut (), waker: &Waker) {
        // SAFETY: the caller's contract, and the task is alive.
        unsafe { (self.header().vtable.try_read_output)(self.ptr, dst, waker) }
    }

    /// Drops the `JoinHandle`'s interest and reference.
    ///
    /// # Safety
    ///
    /// The caller is the `JoinHandle` and gives up its reference.
    pub(super) unsafe fn drop_join_handle(self) {
        if self.header().state.drop_join_handle_fast().is_ok() {
            return;
        }
        // SAFETY: as `poll`; the caller gives up the JoinHandle's reference.
        unsafe { (self.header().vtable.drop_join_handle_slow)(self.ptr) }
    }

    /// Takes one more reference; the result stands for it.
    pub(super) fn ref_inc(self) -> RawTask {
        self.header().state.ref_inc();
        self
    }

    /// Drops the reference this value stands for.
    pub(super) fn drop_reference(self) {
        if self.header().state.ref_dec() {
            self.dealloc();
        }
    }

    fn dealloc(self) {
        // SAFETY: the last reference is gone: nobody else can reach the task.
        unsafe { (self.header().vtable.dealloc)(self.ptr) }
    }

    /// `Waker::wake`: consumes the waker's reference.
    pub(super) fn wake_by_val(self) {
        match self.header().state.transition_to_notified_by_val() {
            // SAFETY: the waker's reference is the Notified's now.
            TransitionToNotifiedByVal::Submit => unsafe {
                (self.header().vtable.schedule)(self.ptr)
            },
            TransitionToNotifiedByVal::DoNothing => {}
            TransitionToNotifiedByVal::Dealloc => self.dealloc(),
        }
    }

    /// `Waker::wake_by_ref`.
    pub(super) fn wake_by_ref(self) {
        match self.header().state.transition_to_notified_by_ref() {
            // SAFETY: the transition took a new reference for the Notified.
            TransitionToNotifiedByRef::Submit => unsafe {
                (self.header().vtable.schedule)(self.ptr)
            },
            TransitionToNotifiedByRef::DoNothing => {}
        }
    }

    /// `abort()`: marks the task cancelled; if it was idle, schedules it so a
    /// runtime thread drops the future.
    pub(super) fn remote_abort(self) {
        if self.header().state.transition_to_notified_and_cancel() {
            // SAFETY: the transition took a new reference for the Notified.
            unsafe { (self.header().vtable.schedule)(self.ptr) }
        }
    }

    pub(super) fn is_complete(self) -> bool {
        self.header().state.load().is_complete()
    }
}
