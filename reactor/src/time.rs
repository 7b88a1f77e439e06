//! Timers driven by the reactor: [`sleep`], [`sleep_until`], [`timeout`],
//! [`interval`].
//!
//! A timer is registered with the reactor current on the thread where it is
//! first polled (any thread that entered the reactor: the executor's
//! workers, [`crate::block_on`]), and cancelled when dropped. Deadlines are
//! kept in the reactor's heap (see `timer.rs`); the poller sleeps until the
//! earliest one. A timer never fires early: it fires only when
//! `Instant::now() >= deadline` after the wait, and `epoll_pwait2` takes a
//! nanosecond timeout (`epoll_pwait`'s milliseconds are rounded up on old
//! kernels). It may fire late by the scheduling delay of the machine.
//!
//! If the reactor is dropped while a timer is pending, the timer never fires
//! (its waker is dropped so the task is freed).
use crate::driver::{lock, Handle, Inner};
use crate::timer::TimerShared;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::task::{ready, Context, Poll};

pub use std::time::{Duration, Instant};

/// A far-future instant for `now + huge` (about 30 years, like tokio).
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365 * 30)
}

/// Waits until `duration` has elapsed.
///
/// ```
/// use std::time::{Duration, Instant};
/// handoff_reactor::block_on(async {
///     let start = Instant::now();
///     handoff_reactor::time::sleep(Duration::from_millis(10)).await;
///     assert!(start.elapsed() >= Duration::from_millis(10));
/// });
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(
        Instant::now()
            .checked_add(duration)
            .unwrap_or_else(far_future),
    )
}

/// Waits until `deadline`.
///
/// ```
/// use std::time::{Duration, Instant};
/// handoff_reactor::block_on(async {
///     let at = Instant::now() + Duration::from_millis(5);
///     handoff_reactor::time::sleep_until(at).await;
///     assert!(Instant::now() >= at);
/// });
/// ```
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        reg: None,
    }
}

struct Registered {
    shared: Arc<TimerShared>,
    driver: Weak<Inner>,
}

/// The future of [`sleep`] and [`sleep_until`]. Cancelled when dropped.
///
/// `Sleep` is `Unpin`: it can be polled through `&mut` without pinning.
///
/// # Panics
/// Polling a `Sleep` whose deadline is in the future on a thread with no
/// reactor panics (there is nothing to fire it).
///
/// ```
/// use std::time::{Duration, Instant};
/// handoff_reactor::block_on(async {
///     let mut s = handoff_reactor::time::sleep(Duration::from_secs(3600));
///     s.reset(Instant::now());
///     (&mut s).await;
/// });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    deadline: Instant,
    reg: Option<Registered>,
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl Sleep {
    /// The instant this sleep completes at.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let at = Instant::now() + Duration::from_secs(1);
    /// assert_eq!(handoff_reactor::time::sleep_until(at).deadline(), at);
    /// ```
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has been reached (as seen by the reactor).
    ///
    /// ```
    /// let s = handoff_reactor::time::sleep(std::time::Duration::ZERO);
    /// assert!(s.is_elapsed());
    /// ```
    pub fn is_elapsed(&self) -> bool {
        match &self.reg {
            Some(r) => r.shared.fired.load(Ordering::Acquire),
            None => Instant::now() >= self.deadline,
        }
    }

    /// Moves the deadline (earlier or later), also after the sleep completed:
    /// the sleep is then pending again until the new deadline.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let mut s = handoff_reactor::time::sleep(Duration::from_secs(1));
    /// let at = Instant::now() + Duration::from_secs(5);
    /// s.reset(at);
    /// assert_eq!(s.deadline(), at);
    /// ```
    pub fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        if let Some(r) = &self.reg {
            match r.driver.upgrade() {
                Some(inner) => {
                    let wake = lock(&inner.timers).insert(&r.shared, deadline);
                    if wake {
                        inner.wake();
                    }
                }
                None => {
                    // The reactor is gone: the new deadline can never fire.
                    // Without this an `Interval` would keep its old `fired`
                    // and tick in a busy loop. Release: pairs with the
                    // Acquire loads in `poll_elapsed`.
                    r.shared.fired.store(false, Ordering::Release);
                    r.shared.shutdown.store(true, Ordering::Release);
                }
            }
        }
    }

    /// Polls for the deadline without spending cooperative budget.
    fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let r = match &self.reg {
            Some(r) => r,
            None => {
                if Instant::now() >= self.deadline {
                    return Poll::Ready(());
                }
                let handle = Handle::try_current().expect(
                    "a handoff timer was polled on a thread with no reactor: await it inside \
                     Runtime::block_on, a task, or handoff_reactor::block_on",
                );
                let shared = Arc::new(TimerShared::default());
                shared.waker.register(cx.waker());
                let wake = lock(&handle.inner.timers).insert(&shared, self.deadline);
                if wake {
                    handle.wake();
                }
                self.reg = Some(Registered {
                    shared,
                    driver: handle.downgrade(),
                });
                return Poll::Pending;
            }
        };
        // Acquire: pairs with the Release in `Timers::fire_expired`.
        if r.shared.fired.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        r.shared.waker.register(cx.waker());
        if r.shared.fired.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        // Shut down (the reactor is gone): never fires; the waker is dropped.
        // Acquire: pairs with the Release in `Timers::shutdown`.
        if r.shared.shutdown.load(Ordering::Acquire) {
            let _ = r.shared.waker.take();
        }
        Poll::Pending
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        ready!(crate::coop::poll_proceed(cx));
        this.poll_elapsed(cx)
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(r) = &self.reg {
            if let Some(inner) = r.driver.upgrade() {
                lock(&inner.timers).cancel(&r.shared);
            }
            // Drop the waker now (outside the lock: dropping it may drop a
            // task that owns other timers), not when the stale heap entry
            // is finally popped.
            drop(r.shared.waker.take());
        }
    }
}

/// The error of [`timeout`]: the deadline passed before the future completed.
///
/// ```
/// let e: std::io::Error = handoff_reactor::time::Elapsed::new().into();
/// assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl Elapsed {
    /// An `Elapsed` value (for tests and adapters).
    ///
    /// ```
    /// assert_eq!(handoff_reactor::time::Elapsed::new().to_string(), "deadline has elapsed");
    /// ```
    pub fn new() -> Elapsed {
        Elapsed(())
    }
}

impl Default for Elapsed {
    fn default() -> Self {
        Elapsed::new()
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(e: Elapsed) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, e)
    }
}

/// Runs `fut` with a time limit: `Err(Elapsed)` if `duration` passes first
/// (the future is then dropped).
///
/// ```
/// use std::time::Duration;
/// use handoff_reactor::time::{sleep, timeout};
/// handoff_reactor::block_on(async {
///     assert_eq!(timeout(Duration::from_secs(5), async { 3 }).await, Ok(3));
///     assert!(timeout(Duration::from_millis(1), sleep(Duration::from_secs(5))).await.is_err());
/// });
/// ```
pub fn timeout<F: Future>(duration: Duration, fut: F) -> Timeout<F> {
    Timeout {
        fut,
        sleep: sleep(duration),
    }
}

/// Like [`timeout`] with a deadline.
///
/// ```
/// use std::time::{Duration, Instant};
/// handoff_reactor::block_on(async {
///     let r = handoff_reactor::time::timeout_at(Instant::now(), std::future::pending::<()>()).await;
///     assert!(r.is_err());
/// });
/// ```
pub fn timeout_at<F: Future>(deadline: Instant, fut: F) -> Timeout<F> {
    Timeout {
        fut,
        sleep: sleep_until(deadline),
    }
}

pin_project_lite::pin_project! {
    /// The future of [`timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    /// handoff_reactor::block_on(async {
    ///     let t: handoff_reactor::time::Timeout<_> =
    ///         handoff_reactor::time::timeout(Duration::from_secs(1), async { 1 });
    ///     assert_eq!(t.await, Ok(1));
    /// });
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct Timeout<F> {
        #[pin]
        fut: F,
        sleep: Sleep,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.fut.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        // The deadline is checked without spending budget, so a future that
        // always exhausts its budget still times out.
        this.sleep.poll_elapsed(cx).map(|()| Err(Elapsed(())))
    }
}

/// A stream of ticks every `period`; the first tick completes at once.
///
/// Missed ticks (the task was busy for several periods) are delivered in a
/// burst, each scheduled `period` after the previous one, until the interval
/// has caught up (tokio's `MissedTickBehavior::Burst`).
///
/// ```
/// use std::time::{Duration, Instant};
/// handoff_reactor::block_on(async {
///     let start = Instant::now();
///     let mut iv = handoff_reactor::time::interval(Duration::from_millis(2));
///     iv.tick().await; // immediate
///     iv.tick().await;
///     iv.tick().await;
///     assert!(start.elapsed() >= Duration::from_millis(4));
/// });
/// ```
///
/// # Panics
/// When `period` is zero.
pub fn interval(period: Duration) -> Interval {
    interval_at(Instant::now(), period)
}

/// Like [`interval`], with the first tick at `start`.
///
/// ```
/// use std::time::{Duration, Instant};
/// let iv = handoff_reactor::time::interval_at(Instant::now(), Duration::from_secs(1));
/// assert_eq!(iv.period(), Duration::from_secs(1));
/// ```
///
/// # Panics
/// When `period` is zero.
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    assert!(
        !period.is_zero(),
        "interval period must be non-zero; use yield_now for a busy loop"
    );
    Interval {
        sleep: sleep_until(start),
        period,
    }
}

/// The stream of [`interval`].
///
/// ```
/// use std::time::Duration;
/// handoff_reactor::block_on(async {
///     let mut iv = handoff_reactor::time::interval(Duration::from_millis(1));
///     let first = iv.tick().await;
///     let second = iv.tick().await;
///     assert_eq!(second - first, Duration::from_millis(1));
/// });
/// ```
#[derive(Debug)]
pub struct Interval {
    sleep: Sleep,
    period: Duration,
}

impl Interval {
    /// Waits for the next tick; returns the instant it was scheduled for.
    ///
    /// ```
    /// use std::time::Duration;
    /// handoff_reactor::block_on(async {
    ///     let mut iv = handoff_reactor::time::interval(Duration::from_millis(1));
    ///     iv.tick().await;
    /// });
    /// ```
    pub async fn tick(&mut self) -> Instant {
        std::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick.
    ///
    /// ```
    /// use std::task::Context;
    /// let h = handoff_reactor::Handle::new().unwrap();
    /// let _g = h.enter();
    /// let mut iv = handoff_reactor::time::interval(std::time::Duration::from_secs(1));
    /// let w = futures::task::noop_waker();
    /// assert!(iv.poll_tick(&mut Context::from_waker(&w)).is_ready());
    /// ```
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        ready!(Pin::new(&mut self.sleep).poll(cx));
        let tick = self.sleep.deadline();
        let next = tick.checked_add(self.period).unwrap_or_else(far_future);
        self.sleep.reset(next);
        Poll::Ready(tick)
    }

    /// The period.
    ///
    /// ```
    /// let iv = handoff_reactor::time::interval(std::time::Duration::from_secs(2));
    /// assert_eq!(iv.period(), std::time::Duration::from_secs(2));
    /// ```
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Restarts the interval: the next tick is one period from now.
    ///
    /// ```
    /// let mut iv = handoff_reactor::time::interval(std::time::Duration::from_secs(2));
    /// iv.reset();
    /// ```
    pub fn reset(&mut self) {
        let next = Instant::now()
            .checked_add(self.period)
            .unwrap_or_else(far_future);
        self.sleep.reset(next);
    }
}

impl futures::Stream for Interval {
    type Item = Instant;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        self.get_mut().poll_tick(cx).map(Some)
    }
}
