//! `Runtime`: owns the threads; `block_on` drives a future on the caller.
//!
//! `block_on` runs its future on the calling thread, which is not a worker
//! (tokio's multi-thread `block_on`): it polls inside the cooperative budget,
//! and while the future is pending it sleeps — in the reactor if no other
//! thread is blocked there (so a runtime whose workers are all busy or
//! asleep still fires timers), else on its own parker. Its waker unparks it
//! and, if it sits in the reactor, wakes the reactor.
use crate::builder::{Builder, Config};
use crate::context;
use crate::handle::Handle;
use crate::loom::{fence, AtomicBool, Ordering};
use crate::metrics::Metrics;
use crate::park::{Parker, Unparker};
use crate::task::JoinHandle;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

/// An async runtime: worker slots, their threads, the monitor, a reactor.
///
/// Dropping it cancels every task (each future is dropped exactly once),
/// stops the threads and waits for those that are not inside a blocking
/// call; threads inside a call are left to exit when their call returns.
///
/// ```
/// let rt = handoff_executor::Runtime::new().unwrap();
/// let out = rt.block_on(async {
///     let a = handoff_executor::spawn(async { 20 });
///     let b = handoff_executor::spawn(async { 22 });
///     a.await.unwrap() + b.await.unwrap()
/// });
/// assert_eq!(out, 42);
/// ```
pub struct Runtime {
    handle: Handle,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("handle", &self.handle)
            .finish()
    }
}

impl Runtime {
    /// A runtime with the default configuration (`Builder::new().build()`).
    ///
    /// # Errors
    /// As [`Builder::build`].
    ///
    /// ```
    /// let rt = handoff_executor::Runtime::new().unwrap();
    /// # drop(rt);
    /// ```
    pub fn new() -> std::io::Result<Runtime> {
        Builder::new().build()
    }

    /// A builder to configure a runtime.
    ///
    /// ```
    /// let rt = handoff_executor::Runtime::builder().worker_threads(1).build().unwrap();
    /// # drop(rt);
    /// ```
    pub fn builder() -> Builder {
        Builder::new()
    }

    pub(crate) fn from_config(config: Config) -> std::io::Result<Runtime> {
        Ok(Runtime {
            handle: Handle::new(config)?,
        })
    }

    /// Runs a future to completion on this thread; spawned tasks run on the
    /// workers meanwhile.
    ///
    /// # Panics
    /// When called from inside a runtime (a task, or another `block_on`).
    ///
    /// ```
    /// let rt = handoff_executor::Runtime::new().unwrap();
    /// assert_eq!(rt.block_on(async { 7 }), 7);
    /// ```
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        block_on(&self.handle, future)
    }

    /// Spawns a task.
    ///
    /// ```
    /// let rt = handoff_executor::Runtime::new().unwrap();
    /// let h = rt.spawn(async { 1 });
    /// assert_eq!(rt.block_on(h).unwrap(), 1);
    /// ```
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    /// Runs `f` on the blocking pool.
    ///
    /// ```
    /// let rt = handoff_executor::Runtime::new().unwrap();
    /// let h = rt.spawn_blocking(|| 2);
    /// assert_eq!(rt.block_on(h).unwrap(), 2);
    /// ```
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.handle.spawn_blocking(f)
    }

    /// The runtime's handle.
    ///
    /// ```
    /// let rt = handoff_executor::Runtime::new().unwrap();
    /// let h = rt.handle().clone();
    /// # drop(h);
    /// ```
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// A snapshot of the runtime's counters.
    ///
    /// ```
    /// let rt = handoff_executor::Runtime::new().unwrap();
    /// let m = rt.metrics();
    /// assert_eq!(m.blocking_slow_exits, 0);
    /// ```
    pub fn metrics(&self) -> Metrics {
        self.handle.metrics()
    }

    /// Shuts down: cancels every task, stops the threads, and waits at most
    /// `timeout` for them (threads inside blocking calls are not waited for).
    ///
    /// ```
    /// let rt = handoff_executor::Runtime::new().unwrap();
    /// rt.spawn(std::future::pending::<()>());
    /// rt.shutdown_timeout(std::time::Duration::from_secs(1));
    /// ```
    pub fn shutdown_timeout(self, timeout: Duration) {
        self.handle.shared.shutdown(Some(timeout));
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.handle.shared.shutdown(None);
    }
}

/// The waker of a `block_on` future.
struct BlockOnWaker {
    unparker: Unparker,
    woken: AtomicBool,
    in_poller: AtomicBool,
    reactor: handoff_reactor::Handle,
}

impl Wake for BlockOnWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // SeqCst pairs with the SeqCst store of `in_poller` in `block_on`:
        // either we see it set and wake the reactor, or it sees `woken`.
        self.woken.store(true, Ordering::SeqCst);
        self.unparker.unpark();
        fence(Ordering::SeqCst);
        if self.in_poller.load(Ordering::SeqCst) {
            self.reactor.wake();
        }
    }
}

pub(crate) fn block_on<F: Future>(handle: &Handle, future: F) -> F::Output {
    let _block = context::enter_block_on();
    let _enter = handle.enter();
    let parker = Parker::new();
    let reactor = handle.shared.reactor.clone();
    let w = Arc::new(BlockOnWaker {
        unparker: parker.unparker(),
        woken: AtomicBool::new(false),
        in_poller: AtomicBool::new(false),
        reactor: reactor.clone(),
    });
    let waker = Waker::from(w.clone());
    let _registered = BlockOnRegistration::new(handle, waker.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        w.woken.store(false, Ordering::Relaxed);
        if let Poll::Ready(v) = handoff_reactor::coop::budget(|| future.as_mut().poll(&mut cx)) {
            return v;
        }
        if let Some(mut poller) = reactor.try_lock_poller() {
            w.in_poller.store(true, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if !w.woken.load(Ordering::SeqCst) {
                let _ = poller.turn(None);
            }
            w.in_poller.store(false, Ordering::Relaxed);
        } else if !w.woken.load(Ordering::Acquire) {
            if handle.shared.is_shutdown() {
                // The workers are leaving, and the one holding the reactor
                // may not have let go yet: take it over as soon as it does.
                parker.park_timeout(SHUTDOWN_RETRY);
            } else {
                parker.park();
            }
        }
    }
}

/// How often a `block_on` thread retries taking the reactor over while the
/// runtime's workers leave at shutdown (only then: a worker that holds the
/// reactor lets go within one turn, and this loop ends once it has it).
const SHUTDOWN_RETRY: std::time::Duration = std::time::Duration::from_millis(1);

/// A `block_on` listed with its runtime, so that shutdown wakes it: the
/// worker that drove the reactor for it is leaving, and from then on it
/// drives the reactor itself (its timers and sockets keep working; tokio
/// panics in this case instead).
struct BlockOnRegistration<'a> {
    shared: &'a crate::handle::Shared,
    id: u64,
}

impl<'a> BlockOnRegistration<'a> {
    fn new(handle: &'a Handle, waker: Waker) -> Self {
        let shared = &*handle.shared;
        BlockOnRegistration {
            id: shared.register_block_on(waker),
            shared,
        }
    }
}

impl Drop for BlockOnRegistration<'_> {
    fn drop(&mut self) {
        self.shared.unregister_block_on(self.id);
    }
}

/// Yields once to the scheduler: the task goes to the back of its slot's
/// queue and the others run first.
///
/// ```
/// let rt = handoff_executor::Runtime::new().unwrap();
/// rt.block_on(async { handoff_executor::yield_now().await });
/// ```
pub async fn yield_now() {
    struct YieldNow(bool);
    impl Future for YieldNow {
        type Output = ();
        fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                return Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
    YieldNow(false).await
}
