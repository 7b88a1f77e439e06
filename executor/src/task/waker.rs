//! The task's `Waker` is the task pointer: the `RawWaker` data is the header
//! pointer and the waker owns one task reference.
//!
//! - clone: `ref_inc` (one `fetch_add`, no allocation);
//! - wake: `transition_to_notified_by_val`: an idle task is scheduled with the
//!   waker's reference as its `Notified`'s; a running one only gets `NOTIFIED`
//!   (its runner reschedules it after the poll); a notified or complete one is
//!   left alone;
//! - wake_by_ref: the same, taking a new reference only when it schedules;
//! - drop: `ref_dec`, freeing the task on the last reference.
//!
//! A waker that outlives its runtime holds a reference, which keeps the
//! allocation (and the scheduler handle inside it) alive: waking a task that
//! completed or was cancelled at shutdown does nothing, and dropping the
//! waker frees the task. No path touches freed memory.
use super::raw::{Header, RawTask};
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::ptr::NonNull;
use std::task::{RawWaker, RawWakerVTable, Waker};

static WAKER_VTABLE: RawWakerVTable =
    RawWakerVTable::new(clone, wake_by_val, wake_by_ref, drop_waker);

fn raw_waker(ptr: NonNull<Header>) -> RawWaker {
    RawWaker::new(ptr.as_ptr() as *const (), &WAKER_VTABLE)
}

/// # Safety (all four entries)
///
/// `data` is the header pointer of a live task and the waker owns one of its
/// references (the `RawWakerVTable` contract plus how `waker_ref` and `clone`
/// build wakers).
unsafe fn raw_task(data: *const ()) -> RawTask {
    // SAFETY: `data` came from `raw_waker`, a non-null header pointer.
    let ptr = unsafe { NonNull::new_unchecked(data as *mut Header) };
    // SAFETY: the waker's reference (see above).
    unsafe { RawTask::from_raw(ptr) }
}

unsafe fn clone(data: *const ()) -> RawWaker {
    // SAFETY: the vtable entry's contract.
    let raw = unsafe { raw_task(data) };
    raw_waker(raw.ref_inc().header_ptr())
}

unsafe fn wake_by_val(data: *const ()) {
    // SAFETY: the vtable entry's contract; the wake consumes the waker's reference.
    unsafe { raw_task(data) }.wake_by_val();
}

unsafe fn wake_by_ref(data: *const ()) {
    // SAFETY: the vtable entry's contract.
    unsafe { raw_task(data) }.wake_by_ref();
}

unsafe fn drop_waker(data: *const ()) {
    // SAFETY: the vtable entry's contract; the waker's reference goes.
    unsafe { raw_task(data) }.drop_reference();
}

/// A waker borrowed for one poll: it owns no reference (the runner's running
/// reference keeps the task alive for `'a`) and is never dropped as a waker;
/// `clone` takes a real reference.
pub(super) struct WakerRef<'a> {
    waker: ManuallyDrop<Waker>,
    _borrow: PhantomData<&'a Header>,
}

/// Builds the borrowed waker for a poll.
pub(super) fn waker_ref<'a>(ptr: NonNull<Header>) -> WakerRef<'a> {
    // SAFETY: the vtable upholds the RawWaker contract (each clone owns a
    // reference); this instance is ManuallyDrop, so it never drops the
    // reference it does not own.
    let waker = unsafe { Waker::from_raw(raw_waker(ptr)) };
    WakerRef {
        waker: ManuallyDrop::new(waker),
        _borrow: PhantomData,
    }
}

impl Deref for WakerRef<'_> {
    type Target = Waker;

    fn deref(&self) -> &Waker {
        &self.waker
    }
}
