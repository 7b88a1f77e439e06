//! Blocking tasks for the `spawn_blocking` pool: a task whose "future" runs
//! a closure once, so the pool gets the same `JoinHandle`, `JoinError`,
//! abort and panic capture as spawned futures, from the same one allocation.
//!
//! A blocking task belongs to no `OwnedTasks` list (the pool tracks its own
//! queue) and has no run queue: its `Runnable` is its only `Notified`, it is
//! created `NOTIFIED` and its closure never sees a waker, so it is never
//! woken. Abort before it runs marks it `CANCELLED` (the `Runnable` then
//! cancels instead of running); abort while it runs has no effect (a closure
//! cannot be interrupted).
use super::raw::RawTask;
use super::state::INITIAL_BLOCKING;
use super::{harness::Cell, Id, JoinHandle, Notified, Schedule, Task};
use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The scheduler of a blocking task: there is nothing to schedule.
pub(super) struct BlockingSchedule;

impl Schedule for BlockingSchedule {
    fn schedule(&self, _task: Notified<Self>) {
        // A blocking task is NOTIFIED from creation until its Runnable runs
        // it, and its closure never sees the waker: no wake or abort can find
        // it idle and un-notified.
        unreachable!(
            "a blocking task was scheduled; blocking tasks are only run by their Runnable"
        );
    }

    fn release(&self, _task: &Task<Self>) -> Option<Task<Self>> {
        None
    }
}

/// A closure as a future that is ready on its first poll.
struct BlockingFuture<F>(Option<F>);

// The closure is never pinned: it is moved out and called.
impl<F> Unpin for BlockingFuture<F> {}

impl<F: FnOnce() -> R, R> Future for BlockingFuture<F> {
    type Output = R;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<R> {
        let f = self.0.take().expect("a blocking task ran twice");
        Poll::Ready(f())
    }
}

/// A blocking task ready to run (for the `spawn_blocking` pool). Running it
/// calls the closure on the current thread; dropping it without running
/// cancels it.
pub struct Runnable {
    task: ManuallyDrop<Notified<BlockingSchedule>>,
}

/// Creates a blocking task: the `Runnable` that runs `f` once and the
/// `JoinHandle` of its result. For `handoff-blocking`'s pool.
///
/// ```
/// use handoff_executor::{task::blocking_task, Id};
///
/// let (runnable, handle) = blocking_task(|| 6 * 7, Id::next());
/// std::thread::spawn(move || runnable.run()).join().unwrap();
/// assert_eq!(futures::executor::block_on(handle).unwrap(), 42);
///
/// let (runnable, handle) = blocking_task(|| unreachable!(), Id::next());
/// runnable.cancel();
/// assert!(futures::executor::block_on(handle).unwrap_err().is_cancelled());
/// ```
pub fn blocking_task<F, R>(f: F, id: Id) -> (Runnable, JoinHandle<R>)
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let ptr = Cell::<BlockingFuture<F>, BlockingSchedule>::allocate(
        BlockingFuture(Some(f)),
        BlockingSchedule,
        id,
        0,
        INITIAL_BLOCKING,
    );
    // SAFETY: a fresh task with two references: the Runnable's (its
    // Notified, as NOTIFIED is set) and the JoinHandle's.
    let (notified, join) = unsafe {
        (
            Notified::from_raw_ref(ptr),
            JoinHandle::new(RawTask::from_raw(ptr)),
        )
    };
    (
        Runnable {
            task: ManuallyDrop::new(notified),
        },
        join,
    )
}

impl Runnable {
    /// Runs the closure on this thread. A panic is caught and reported to
    /// the `JoinHandle` as [`JoinError::is_panic`](crate::JoinError::is_panic);
    /// if the task was aborted first, the closure is dropped instead.
    ///
    /// ```
    /// let (runnable, handle) = handoff_executor::task::blocking_task(|| panic!("boom"), handoff_executor::Id::next());
    /// runnable.run();
    /// assert!(futures::executor::block_on(handle).unwrap_err().is_panic());
    /// ```
    pub fn run(self) {
        self.into_notified().run();
    }

    /// Drops the closure without running it; the `JoinHandle` reports
    /// [`JoinError::is_cancelled`](crate::JoinError::is_cancelled).
    ///
    /// ```
    /// let (runnable, handle) = handoff_executor::task::blocking_task(|| 1, handoff_executor::Id::next());
    /// runnable.cancel();
    /// assert!(futures::executor::block_on(handle).unwrap_err().is_cancelled());
    /// ```
    pub fn cancel(self) {
        self.into_notified().shutdown();
    }

    /// The task's id.
    ///
    /// ```
    /// let id = handoff_executor::Id::next();
    /// let (runnable, _handle) = handoff_executor::task::blocking_task(|| (), id);
    /// assert_eq!(runnable.id(), id);
    /// ```
    pub fn id(&self) -> Id {
        self.task.id()
    }

    fn into_notified(self) -> Notified<BlockingSchedule> {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again.
        unsafe { ManuallyDrop::take(&mut this.task) }
    }
}

impl Drop for Runnable {
    fn drop(&mut self) {
        // SAFETY: `self.task` is not used after this.
        unsafe { ManuallyDrop::take(&mut self.task) }.shutdown();
    }
}

impl fmt::Debug for Runnable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runnable").field("id", &self.id()).finish()
    }
}
