//! PLACEHOLDER DRIVER (to be replaced by the epoll reactor; same signatures).
//! A condvar stands in for epoll_pwait so the executor can be built against the contract.
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

struct Inner {
    woken: Mutex<bool>,
    cv: Condvar,
    poller: AtomicBool,
}

/// A handle to a reactor. Cheap to clone.
///
/// ```
/// let h = handoff_reactor::Handle::new().unwrap();
/// let _g = h.enter();
/// assert!(handoff_reactor::Handle::try_current().is_some());
/// ```
#[derive(Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

thread_local! {
    static CURRENT: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// Keeps a reactor current on this thread; restores the previous one on drop.
pub struct EnterGuard {
    prev: Option<Handle>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        CURRENT.with(|c| *c.borrow_mut() = prev);
    }
}

/// The right to block in the reactor; only one thread holds it at a time.
pub struct PollerGuard {
    inner: Arc<Inner>,
}

impl Drop for PollerGuard {
    fn drop(&mut self) {
        self.inner.poller.store(false, Ordering::Release);
    }
}

impl PollerGuard {
    /// Waits for events, timers or a `wake`, at most `timeout`. Returns the number of wakers fired.
    ///
    /// # Errors
    /// An error from `epoll_pwait` other than `EINTR`.
    pub fn turn(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let mut woken: MutexGuard<'_, bool> = self.inner.woken.lock().unwrap();
        if !*woken {
            match timeout {
                Some(d) if d.is_zero() => {}
                Some(d) => woken = self.inner.cv.wait_timeout(woken, d).unwrap().0,
                None => woken = self.inner.cv.wait(woken).unwrap(),
            }
        }
        *woken = false;
        Ok(0)
    }
}

impl Handle {
    /// Creates a reactor.
    ///
    /// # Errors
    /// When the kernel refuses an epoll or eventfd descriptor.
    pub fn new() -> io::Result<Handle> {
        Ok(Handle {
            inner: Arc::new(Inner {
                woken: Mutex::new(false),
                cv: Condvar::new(),
                poller: AtomicBool::new(false),
            }),
        })
    }

    /// The reactor current on this thread.
    ///
    /// # Panics
    /// Outside a runtime.
    pub fn current() -> Handle {
        Self::try_current().expect(
            "there is no handoff reactor on this thread: call this inside Runtime::block_on, \
             a task spawned on a handoff runtime, or handoff_reactor::block_on",
        )
    }

    /// The reactor current on this thread, if any.
    pub fn try_current() -> Option<Handle> {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// Makes this reactor current on this thread until the guard drops.
    pub fn enter(&self) -> EnterGuard {
        let prev = CURRENT.with(|c| c.borrow_mut().replace(self.clone()));
        EnterGuard { prev }
    }

    /// The right to block in `turn`; `None` while another thread holds it.
    pub fn try_lock_poller(&self) -> Option<PollerGuard> {
        self.inner
            .poller
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| PollerGuard {
                inner: self.inner.clone(),
            })
    }

    /// Interrupts a thread blocked in `turn`.
    pub fn wake(&self) {
        *self.inner.woken.lock().unwrap() = true;
        self.inner.cv.notify_one();
    }
}

/// Runs a future to completion on this thread, turning the reactor while it is pending.
///
/// ```
/// assert_eq!(handoff_reactor::block_on(async { 7 }), 7);
/// ```
pub fn block_on<F: Future>(fut: F) -> F::Output {
    struct W(Handle);
    impl Wake for W {
        fn wake(self: Arc<Self>) {
            self.0.wake();
        }
    }
    let handle = Handle::try_current().unwrap_or_else(|| Handle::new().expect("reactor"));
    let _enter = handle.enter();
    let waker = Waker::from(Arc::new(W(handle.clone())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        match handle.try_lock_poller() {
            Some(mut p) => {
                let _ = p.turn(None);
            }
            None => std::thread::yield_now(),
        }
    }
}
