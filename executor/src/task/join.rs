//! `JoinHandle` and `AbortHandle`: the user's handles on a spawned task.
use super::error::JoinError;
use super::raw::RawTask;
use super::Id;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

/// An owned permission to await a spawned task's output, or to abort it.
///
/// `JoinHandle<T>` is a future that resolves to `Ok(output)` when the task
/// returns, or to `Err(JoinError)` if it panicked ([`JoinError::is_panic`])
/// or was cancelled ([`JoinError::is_cancelled`]) by [`abort`](Self::abort)
/// or by the runtime shutting down.
///
/// Dropping a `JoinHandle` *detaches* the task: it keeps running and its
/// output is dropped when it completes (or at once, on the dropping thread,
/// if it already has). To stop a task, call [`abort`](Self::abort).
///
/// Awaiting a handle uses the cooperative budget only when the output is
/// ready, so a loop joining many finished tasks still yields to its slot's
/// other tasks.
///
/// ```
/// let rt = handoff_executor::Runtime::new().unwrap();
/// rt.block_on(async {
///     let handle = handoff_executor::spawn(async { 6 * 7 });
///     assert_eq!(handle.await.unwrap(), 42);
///
///     let never = handoff_executor::spawn(std::future::pending::<()>());
///     never.abort();
///     assert!(never.await.unwrap_err().is_cancelled());
/// });
/// ```
pub struct JoinHandle<T> {
    raw: RawTask,
    _output: PhantomData<T>,
}

// SAFETY: the handle only moves a `T` out (which needs `T: Send` to cross
// threads) and touches the task through atomic transitions.
unsafe impl<T: Send> Send for JoinHandle<T> {}
// SAFETY: `&JoinHandle` allows only `abort`, `is_finished`, `id` and
// `abort_handle`, which use atomics; the output is reached only via `&mut`.
unsafe impl<T: Send> Sync for JoinHandle<T> {}

impl<T> Unpin for JoinHandle<T> {}
impl<T> UnwindSafe for JoinHandle<T> {}
impl<T> RefUnwindSafe for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    /// Wraps the JoinHandle's reference.
    pub(super) fn new(raw: RawTask) -> JoinHandle<T> {
        JoinHandle {
            raw,
            _output: PhantomData,
        }
    }

    /// Cancels the task: its future is dropped (on a runtime thread, or by
    /// the thread polling it once its current poll returns) and awaiting the
    /// handle gives [`JoinError::is_cancelled`]. A task that already
    /// completed keeps its output. Calling `abort` more than once is fine.
    ///
    /// ```
    /// handoff_executor::Runtime::new().unwrap().block_on(async {
    ///     let h = handoff_executor::spawn(std::future::pending::<()>());
    ///     h.abort();
    ///     h.abort();
    ///     assert!(h.await.unwrap_err().is_cancelled());
    /// });
    /// ```
    pub fn abort(&self) {
        self.raw.remote_abort();
    }

    /// True once the task has completed: returned, panicked or been
    /// cancelled. Awaiting the handle then returns at once.
    ///
    /// ```
    /// handoff_executor::Runtime::new().unwrap().block_on(async {
    ///     let h = handoff_executor::spawn(async {});
    ///     while !h.is_finished() {
    ///         handoff_executor::yield_now().await;
    ///     }
    ///     h.await.unwrap();
    /// });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.raw.is_complete()
    }

    /// A handle that can abort the task without owning the output (it can
    /// be cloned and sent elsewhere).
    ///
    /// ```
    /// handoff_executor::Runtime::new().unwrap().block_on(async {
    ///     let h = handoff_executor::spawn(std::future::pending::<()>());
    ///     let abort = h.abort_handle();
    ///     std::thread::spawn(move || abort.abort()).join().unwrap();
    ///     assert!(h.await.unwrap_err().is_cancelled());
    /// });
    /// ```
    pub fn abort_handle(&self) -> AbortHandle {
        AbortHandle {
            raw: self.raw.ref_inc(),
        }
    }

    /// The task's id.
    ///
    /// ```
    /// handoff_executor::Runtime::new().unwrap().block_on(async {
    ///     let a = handoff_executor::spawn(async {});
    ///     let b = handoff_executor::spawn(async {});
    ///     assert_ne!(a.id(), b.id());
    /// });
    /// ```
    pub fn id(&self) -> Id {
        self.raw.id()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.raw.is_complete() && poll_proceed(cx).is_pending() {
            // Out of budget: poll_proceed woke us; come back after a yield.
            return Poll::Pending;
        }
        let mut out: Poll<Result<T, JoinError>> = Poll::Pending;
        // SAFETY: `out` is a `Poll<Result<T, JoinError>>` for this task's
        // output type `T`, and we are its JoinHandle.
        unsafe {
            self.raw.try_read_output(
                &mut out as *mut Poll<Result<T, JoinError>> as *mut (),
                cx.waker(),
            );
        }
        out
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        // SAFETY: we are the JoinHandle and give up its reference.
        unsafe { self.raw.drop_join_handle() }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.id())
            .finish()
    }
}

/// Spends one unit of cooperative budget (not under loom: see
/// `harness::with_budget`).
#[inline]
fn poll_proceed(cx: &mut Context<'_>) -> Poll<()> {
    #[cfg(not(loom))]
    {
        handoff_reactor::coop::poll_proceed(cx)
    }
    #[cfg(loom)]
    {
        let _ = cx;
        Poll::Ready(())
    }
}

/// A handle that aborts a task without owning its output. Cheap to clone;
/// dropping it does nothing to the task.
///
/// ```
/// handoff_executor::Runtime::new().unwrap().block_on(async {
///     let h = handoff_executor::spawn(std::future::pending::<()>());
///     let a = h.abort_handle();
///     assert!(!a.is_finished());
///     a.clone().abort();
///     assert!(h.await.unwrap_err().is_cancelled());
///     assert!(a.is_finished());
/// });
/// ```
pub struct AbortHandle {
    raw: RawTask,
}

// SAFETY: an AbortHandle only drives atomic transitions of the task and
// never touches its future or output.
unsafe impl Send for AbortHandle {}
// SAFETY: as Send.
unsafe impl Sync for AbortHandle {}

impl UnwindSafe for AbortHandle {}
impl RefUnwindSafe for AbortHandle {}

impl AbortHandle {
    /// Cancels the task, as [`JoinHandle::abort`].
    ///
    /// ```
    /// handoff_executor::Runtime::new().unwrap().block_on(async {
    ///     let h = handoff_executor::spawn(std::future::pending::<()>());
    ///     h.abort_handle().abort();
    ///     assert!(h.await.unwrap_err().is_cancelled());
    /// });
    /// ```
    pub fn abort(&self) {
        self.raw.remote_abort();
    }

    /// True once the task has completed, as [`JoinHandle::is_finished`].
    ///
    /// ```
    /// handoff_executor::Runtime::new().unwrap().block_on(async {
    ///     let h = handoff_executor::spawn(async {});
    ///     let a = h.abort_handle();
    ///     h.await.unwrap();
    ///     assert!(a.is_finished());
    /// });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.raw.is_complete()
    }

    /// The task's id.
    ///
    /// ```
    /// handoff_executor::Runtime::new().unwrap().block_on(async {
    ///     let h = handoff_executor::spawn(async {});
    ///     assert_eq!(h.abort_handle().id(), h.id());
    /// });
    /// ```
    pub fn id(&self) -> Id {
        self.raw.id()
    }
}

impl Clone for AbortHandle {
    fn clone(&self) -> AbortHandle {
        AbortHandle {
            raw: self.raw.ref_inc(),
        }
    }
}

impl Drop for AbortHandle {
    fn drop(&mut self) {
        self.raw.drop_reference();
    }
}

impl fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortHandle")
            .field("id", &self.id())
            .finish()
    }
}
