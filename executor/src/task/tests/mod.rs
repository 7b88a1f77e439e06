//! Unit tests of the task module with a hand-drained test scheduler: every
//! scheduling decision is visible as a `Notified` in one of two queues
//! (`schedule` and `yield_now`), and every future and output counts its
//! drops. `lifecycle` covers one task's life (run, wake, join, abort,
//! panic); `shutdown` covers many tasks, the owned list and teardown.
// `waker.clone().wake()` is deliberate: it exercises wake-by-value; the
// async block around `&mut join` makes the join poll from a second task.
#![allow(clippy::waker_clone_wake, clippy::redundant_async_block)]
use super::*;
use crate::task;
use futures::channel::oneshot;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use tokio_test::task::spawn as mock;

struct Inner {
    queue: Mutex<VecDeque<Notified<Sched>>>,
    yielded: Mutex<VecDeque<Notified<Sched>>>,
    released: AtomicUsize,
    owned: OwnedTasks<Sched>,
}

#[derive(Clone)]
struct Sched(Arc<Inner>);

impl Schedule for Sched {
    fn schedule(&self, task: Notified<Self>) {
        self.0.queue.lock().unwrap().push_back(task);
    }

    fn yield_now(&self, task: Notified<Self>) {
        self.0.yielded.lock().unwrap().push_back(task);
    }

    fn release(&self, task: &Task<Self>) -> Option<Task<Self>> {
        self.0.released.fetch_add(1, Ordering::Relaxed);
        self.0.owned.remove(task)
    }
}

impl Sched {
    fn new() -> Sched {
        Sched(Arc::new(Inner {
            queue: Mutex::new(VecDeque::new()),
            yielded: Mutex::new(VecDeque::new()),
            released: AtomicUsize::new(0),
            owned: OwnedTasks::with_shards(4),
        }))
    }

    fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (join, notified) = self.0.owned.bind(future, self.clone(), Id::next());
        if let Some(n) = notified {
            self.schedule(n);
        }
        join
    }

    fn pop(&self) -> Option<Notified<Sched>> {
        self.0.queue.lock().unwrap().pop_front()
    }

    fn pop_yielded(&self) -> Option<Notified<Sched>> {
        self.0.yielded.lock().unwrap().pop_front()
    }

    fn queued(&self) -> usize {
        self.0.queue.lock().unwrap().len()
    }

    fn yielded(&self) -> usize {
        self.0.yielded.lock().unwrap().len()
    }

    /// Runs queued and yielded tasks until both queues are empty.
    fn run_all(&self) -> usize {
        let mut runs = 0;
        while let Some(n) = self.pop().or_else(|| self.pop_yielded()) {
            n.run();
            runs += 1;
        }
        runs
    }

    fn released(&self) -> usize {
        self.0.released.load(Ordering::Relaxed)
    }

    /// Drops the queues and shuts the list down (breaks the Arc cycle).
    fn shutdown(&self) {
        self.0.queue.lock().unwrap().clear();
        self.0.yielded.lock().unwrap().clear();
        self.0.owned.close_and_shutdown_all();
    }
}

/// Counts drops of whatever holds it.
#[derive(Clone, Default)]
struct Counter(Arc<AtomicUsize>);

impl Counter {
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

struct DropTrack(Counter);

impl Drop for DropTrack {
    fn drop(&mut self) {
        (self.0).0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A future that is pending until `ready` is called; counts its drops.
fn gated(
    drops: &Counter,
) -> (
    impl Future<Output = u32> + Send + 'static,
    oneshot::Sender<u32>,
) {
    let (tx, rx) = oneshot::channel::<u32>();
    let track = DropTrack(drops.clone());
    let fut = async move {
        let _track = track;
        rx.await.unwrap_or(0)
    };
    (fut, tx)
}

/// A future whose poll calls `on_poll(n, cx)` (n = 0, 1, ...) until it returns Ready.
struct PollFn<F> {
    n: usize,
    f: F,
}

impl<F: FnMut(usize, &mut Context<'_>) -> Poll<T> + Unpin, T> Future for PollFn<F> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let n = self.n;
        self.n += 1;
        (self.f)(n, cx)
    }
}

fn poll_fn<T, F: FnMut(usize, &mut Context<'_>) -> Poll<T> + Unpin>(f: F) -> PollFn<F> {
    PollFn { n: 0, f }
}

/// A value whose Drop panics (user code the runtime must survive).
struct PanicOnDrop;
impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("drop panicked");
    }
}

mod lifecycle;
mod shutdown;
