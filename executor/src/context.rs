//! What the current thread is to the runtime, in thread-locals.
//!
//! - `WORKER`: a pointer to the worker context of a runtime thread (its
//!   core cell, its `ThreadCtl`), null elsewhere. A raw pointer in a `const`
//!   thread-local so the hot paths (`schedule`, `bridge::enter`) read it
//!   with one TLS load and no lazy-initialisation check. Set by the worker
//!   thread for its whole life, pointing at a value on its own stack.
//! - `CURRENT`: the runtime handle `Handle::current()` returns: set on worker
//!   threads, inside `block_on` and under `Handle::enter`.
//! - `IN_BLOCK_ON`: guards against nesting `block_on` inside a runtime.
use crate::handle::{Handle, Shared};
use crate::idle::ThreadCtl;
use crate::loom::Arc;
use crate::worker::Core;
use std::cell::{Cell, RefCell};
use std::ptr;

/// A worker thread's context. Lives on the worker's stack for the thread's
/// whole life; only that thread touches `core`.
pub(crate) struct WorkerCx {
    pub(crate) shared: Arc<Shared>,
    /// This thread's OS id, read once at thread start; stored in a slot's
    /// `thread` when this thread takes its core (`Slot::run_on`).
    pub(crate) tid: u32,
    /// The core this thread holds while it polls a task; `None` while it
    /// holds none (idle, or inside a blocking call, or after a slow exit).
    pub(crate) core: Cell<Option<Box<Core>>>,
    pub(crate) thread: Arc<ThreadCtl<Core>>,
    /// Set while this thread, holding no core, blocks in the reactor: the
    /// tasks its turn wakes are kept in `woken` (not pushed to the global
    /// queue with a thread wake each) so the thread can run them itself on
    /// an idle core afterwards (worker.rs, `park_idle`).
    pub(crate) collecting: Cell<bool>,
    pub(crate) woken: RefCell<Vec<crate::handle::Task>>,
}

thread_local! {
    static WORKER: Cell<*const WorkerCx> = const { Cell::new(ptr::null()) };
    static CURRENT: RefCell<Option<Handle>> = const { RefCell::new(None) };
    static IN_BLOCK_ON: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with this thread's worker context, if it is a worker thread.
#[inline]
pub(crate) fn with_worker<R>(f: impl FnOnce(Option<&WorkerCx>) -> R) -> R {
    let p = WORKER.with(|w| w.get());
    // SAFETY: a non-null pointer was set by `set_worker` from a reference to
    // a `WorkerCx` on this thread's stack that outlives the guard that
    // clears it; thread-locals are only read by their own thread.
    f(unsafe { p.as_ref() })
}

/// Clears the worker pointer on drop.
pub(crate) struct WorkerGuard(());

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        WORKER.with(|w| w.set(ptr::null()));
    }
}

/// Marks this thread as a worker with context `cx` until the guard drops.
/// The guard must be dropped before `cx` (declare it after `cx`).
pub(crate) fn set_worker(cx: &WorkerCx) -> WorkerGuard {
    WORKER.with(|w| w.set(cx as *const WorkerCx));
    WorkerGuard(())
}

/// Restores the previous current handle on drop.
pub(crate) struct CurrentGuard {
    prev: Option<Handle>,
}

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        CURRENT.with(|c| *c.borrow_mut() = prev);
    }
}

pub(crate) fn set_current(h: Handle) -> CurrentGuard {
    let prev = CURRENT.with(|c| c.borrow_mut().replace(h));
    CurrentGuard { prev }
}

pub(crate) fn current() -> Option<Handle> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Is this thread inside a runtime (a worker, or inside `block_on`)?
pub(crate) fn in_runtime() -> bool {
    IN_BLOCK_ON.with(|b| b.get()) || with_worker(|w| w.is_some())
}

/// Clears the block_on flag on drop.
pub(crate) struct BlockOnGuard(());

impl Drop for BlockOnGuard {
    fn drop(&mut self) {
        IN_BLOCK_ON.with(|b| b.set(false));
    }
}

/// Marks this thread as inside `block_on`.
///
/// # Panics
/// When the thread already is inside a runtime.
pub(crate) fn enter_block_on() -> BlockOnGuard {
    if in_runtime() {
        panic!(
            "block_on was called from inside a handoff runtime (a task or another block_on), \
             which would block the thread that drives it; `.await` the future instead, or \
             call block_on from a thread that is not a runtime thread"
        );
    }
    IN_BLOCK_ON.with(|b| b.set(true));
    BlockOnGuard(())
}
