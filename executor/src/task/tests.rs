//! Unit tests of the task module with a hand-drained test scheduler: every
//! scheduling decision is visible as a `Notified` in one of two queues
//! (`schedule` and `yield_now`), and every future and output counts its
//! drops.
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

#[test]
fn spawn_run_complete_join() {
    let s = Sched::new();
    let mut join = mock(s.spawn(async { 7 }));
    assert_eq!(s.0.owned.len(), 1);
    assert!(join.poll().is_pending());
    assert_eq!(s.run_all(), 1);
    assert!(join.is_woken());
    assert_eq!(s.released(), 1);
    assert!(s.0.owned.is_empty());
    match join.poll() {
        Poll::Ready(Ok(7)) => {}
        other => panic!("expected Ready(Ok(7)), got {other:?}"),
    }
}

#[test]
fn join_after_complete() {
    let s = Sched::new();
    let join = s.spawn(async { String::from("done") });
    s.run_all();
    assert!(join.is_finished());
    assert_eq!(futures::executor::block_on(join).unwrap(), "done");
}

#[test]
fn join_waker_replaced_only_latest_is_woken() {
    let s = Sched::new();
    let drops = Counter::default();
    let (fut, tx) = gated(&drops);
    let join = s.spawn(fut);
    s.run_all();
    let mut a = mock(join);
    assert!(a.poll().is_pending());
    // Re-poll from another task: the registered waker must be replaced.
    let mut join = a.into_inner();
    let mut b_join = mock(async move { (&mut join).await });
    assert!(b_join.poll().is_pending());
    // Same waker again: no churn, still pending.
    assert!(b_join.poll().is_pending());
    tx.send(5).unwrap();
    s.run_all();
    assert!(b_join.is_woken());
    assert!(matches!(b_join.poll(), Poll::Ready(Ok(5))));
    assert_eq!(drops.get(), 1);
}

#[test]
fn wake_while_running_goes_to_yield_now() {
    let s = Sched::new();
    let join = s.spawn(poll_fn(|n, cx| {
        if n < 3 {
            if n % 2 == 0 {
                cx.waker().wake_by_ref();
            } else {
                cx.waker().clone().wake();
            }
            Poll::Pending
        } else {
            Poll::Ready(n)
        }
    }));
    for _ in 0..3 {
        s.pop().or_else(|| s.pop_yielded()).unwrap().run();
        assert_eq!(
            s.queued(),
            0,
            "a task woken while running must not go to schedule"
        );
        assert_eq!(
            s.yielded(),
            1,
            "a task woken while running goes to yield_now"
        );
    }
    s.pop_yielded().unwrap().run();
    assert_eq!(futures::executor::block_on(join).unwrap(), 3);
}

#[test]
fn wake_of_idle_task_schedules_once() {
    let s = Sched::new();
    let slot: Arc<Mutex<Option<Waker>>> = Arc::default();
    let slot2 = slot.clone();
    let join = s.spawn(poll_fn(move |n, cx| {
        if n == 0 {
            *slot2.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        } else {
            Poll::Ready(n)
        }
    }));
    s.run_all();
    let waker = slot.lock().unwrap().take().unwrap();
    waker.wake_by_ref();
    waker.wake_by_ref();
    waker.clone().wake();
    assert_eq!(
        s.queued(),
        1,
        "several wakes of an idle task schedule it once"
    );
    drop(waker);
    s.run_all();
    assert_eq!(futures::executor::block_on(join).unwrap(), 1);
}

#[test]
fn wake_after_complete_is_ignored() {
    let s = Sched::new();
    let slot: Arc<Mutex<Option<Waker>>> = Arc::default();
    let slot2 = slot.clone();
    let join = s.spawn(poll_fn(move |_, cx| {
        *slot2.lock().unwrap() = Some(cx.waker().clone());
        Poll::Ready(())
    }));
    s.run_all();
    let waker = slot.lock().unwrap().take().unwrap();
    waker.wake_by_ref();
    waker.clone().wake();
    assert_eq!(s.queued() + s.yielded(), 0);
    futures::executor::block_on(join).unwrap();
    waker.wake();
    assert_eq!(s.queued(), 0);
}

#[test]
fn abort_while_queued() {
    let s = Sched::new();
    let drops = Counter::default();
    let (fut, _tx) = gated(&drops);
    let join = s.spawn(fut);
    join.abort();
    assert_eq!(s.queued(), 1, "a queued task is not scheduled twice");
    s.run_all();
    assert_eq!(drops.get(), 1);
    assert!(futures::executor::block_on(join)
        .unwrap_err()
        .is_cancelled());
    assert_eq!(s.released(), 1);
}

#[test]
fn abort_while_idle() {
    let s = Sched::new();
    let drops = Counter::default();
    let (fut, _tx) = gated(&drops);
    let join = s.spawn(fut);
    s.run_all();
    assert_eq!(drops.get(), 0);
    let abort = join.abort_handle();
    abort.abort();
    abort.abort();
    assert_eq!(
        s.queued(),
        1,
        "abort of an idle task schedules it once so a runtime thread drops it"
    );
    assert!(!abort.is_finished());
    s.run_all();
    assert_eq!(drops.get(), 1);
    assert!(abort.is_finished());
    let err = futures::executor::block_on(join).unwrap_err();
    assert!(err.is_cancelled());
    assert_eq!(err.id(), abort.id());
}

#[test]
fn abort_while_running() {
    let s = Sched::new();
    let drops = Counter::default();
    let me: Arc<Mutex<Option<AbortHandle>>> = Arc::default();
    let me2 = me.clone();
    let track = DropTrack(drops.clone());
    let join = s.spawn(poll_fn(move |_, _cx| {
        let _ = &track;
        me2.lock().unwrap().as_ref().unwrap().abort();
        Poll::<()>::Pending
    }));
    *me.lock().unwrap() = Some(join.abort_handle());
    s.pop().unwrap().run();
    assert_eq!(drops.get(), 1, "the runner cancels after the poll");
    assert_eq!(s.queued() + s.yielded(), 0);
    assert!(futures::executor::block_on(join)
        .unwrap_err()
        .is_cancelled());
    assert_eq!(s.released(), 1);
}

#[test]
fn abort_after_complete_keeps_output() {
    let s = Sched::new();
    let join = s.spawn(async { 3 });
    s.run_all();
    join.abort();
    assert_eq!(s.queued(), 0);
    assert_eq!(futures::executor::block_on(join).unwrap(), 3);
}

#[test]
fn panic_becomes_join_error_with_payload() {
    let s = Sched::new();
    let join = s.spawn(async {
        if true {
            panic!("boom");
        }
    });
    s.run_all();
    assert_eq!(s.released(), 1);
    let err = futures::executor::block_on(join).unwrap_err();
    assert!(err.is_panic());
    assert!(err.to_string().contains("boom"));
    assert_eq!(*err.into_panic().downcast::<&str>().unwrap(), "boom");
}

struct PanicOnDrop;
impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("drop panicked");
    }
}

#[test]
fn panicking_drop_on_cancel_is_caught() {
    let s = Sched::new();
    let guard = PanicOnDrop;
    let join = s.spawn(async move {
        let _guard = guard;
        std::future::pending::<()>().await
    });
    s.run_all();
    join.abort();
    s.run_all();
    let err = futures::executor::block_on(join).unwrap_err();
    assert!(
        err.is_panic(),
        "a panicking Drop during cancel is reported as a panic"
    );
    assert_eq!(s.released(), 1);
}

#[test]
fn panicking_drop_after_ready_keeps_output() {
    let s = Sched::new();
    let guard = PanicOnDrop;
    let join = s.spawn(poll_fn(move |_, _| {
        let _ = &guard;
        Poll::Ready(9)
    }));
    s.run_all();
    assert_eq!(futures::executor::block_on(join).unwrap(), 9);
}

#[test]
fn panicking_output_drop_is_caught() {
    let s = Sched::new();
    // Detached: the runner drops the output.
    drop(s.spawn(async { PanicOnDrop }));
    s.run_all();
    // Dropped after completion: the dropping thread drops it.
    let join = s.spawn(async { PanicOnDrop });
    s.run_all();
    drop(join);
    assert_eq!(s.released(), 2);
    assert!(s.0.owned.is_empty());
}

#[test]
fn join_handle_dropped_before_completion_drops_output_once() {
    let s = Sched::new();
    let out = Counter::default();
    let fut_drops = Counter::default();
    let out2 = out.clone();
    let (fut, tx) = gated(&fut_drops);
    let join = s.spawn(async move {
        fut.await;
        DropTrack(out2)
    });
    s.run_all();
    drop(join);
    tx.send(1).unwrap();
    s.run_all();
    assert_eq!(out.get(), 1);
    assert_eq!(fut_drops.get(), 1);
}

#[test]
fn join_handle_dropped_after_completion_drops_output_once() {
    let s = Sched::new();
    let out = Counter::default();
    let out2 = out.clone();
    let mut join = mock(s.spawn(async move { DropTrack(out2) }));
    assert!(join.poll().is_pending()); // registers a join waker
    s.run_all();
    assert_eq!(out.get(), 0);
    let join = join.into_inner();
    let t = std::thread::spawn(move || drop(join));
    t.join().unwrap();
    assert_eq!(out.get(), 1);
}

#[test]
fn close_and_shutdown_all_drops_1000_pending_futures_once() {
    let s = Sched::new();
    let drops = Counter::default();
    let mut joins = Vec::new();
    let mut senders = Vec::new();
    for _ in 0..1000 {
        let (fut, tx) = gated(&drops);
        joins.push(s.spawn(fut));
        senders.push(tx);
    }
    // Half have been polled once (idle), half are still queued.
    for _ in 0..500 {
        s.pop().unwrap().run();
    }
    assert_eq!(s.0.owned.len(), 1000);
    s.0.owned.close_and_shutdown_all();
    assert!(s.0.owned.is_closed());
    assert_eq!(drops.get(), 1000);
    assert!(s.0.owned.is_empty());
    // The queued Notifieds now find the tasks complete.
    assert_eq!(s.run_all(), 500);
    assert_eq!(drops.get(), 1000);
    for j in joins {
        assert!(futures::executor::block_on(j).unwrap_err().is_cancelled());
    }
    assert_eq!(s.released(), 1000);
}

#[test]
fn dropped_queues_then_shutdown_drop_every_future_once() {
    let s = Sched::new();
    let drops = Counter::default();
    let mut senders = Vec::new();
    for i in 0..200 {
        let (fut, tx) = gated(&drops);
        let j = s.spawn(fut);
        if i % 2 == 0 {
            drop(j); // detached
        } else {
            j.abort(); // aborted while queued
        }
        senders.push(tx);
    }
    // A run queue dropped at shutdown: only references go.
    s.0.queue.lock().unwrap().clear();
    assert_eq!(drops.get(), 0);
    s.0.owned.close_and_shutdown_all();
    assert_eq!(drops.get(), 200);
}

#[test]
fn bind_after_close_cancels_at_once() {
    let s = Sched::new();
    s.0.owned.close_and_shutdown_all();
    let drops = Counter::default();
    let (fut, _tx) = gated(&drops);
    let (join, notified) = s.0.owned.bind(fut, s.clone(), Id::next());
    assert!(notified.is_none());
    assert_eq!(drops.get(), 1);
    assert!(join.is_finished());
    assert!(futures::executor::block_on(join)
        .unwrap_err()
        .is_cancelled());
    assert!(s.0.owned.is_empty());
}

#[test]
fn notified_shutdown_cancels_instead_of_running() {
    let s = Sched::new();
    let drops = Counter::default();
    let (fut, _tx) = gated(&drops);
    let join = s.spawn(fut);
    s.pop().unwrap().shutdown();
    assert_eq!(drops.get(), 1);
    assert!(futures::executor::block_on(join)
        .unwrap_err()
        .is_cancelled());
    assert!(s.0.owned.is_empty());
}

#[test]
fn waker_outlives_the_scheduler() {
    let s = Sched::new();
    let weak: Weak<Inner> = Arc::downgrade(&s.0);
    let drops = Counter::default();
    let slot: Arc<Mutex<Option<Waker>>> = Arc::default();
    let slot2 = slot.clone();
    let track = DropTrack(drops.clone());
    let join = s.spawn(poll_fn(move |_, cx| {
        let _ = &track;
        *slot2.lock().unwrap() = Some(cx.waker().clone());
        Poll::<()>::Pending
    }));
    s.run_all();
    let waker = slot.lock().unwrap().take().unwrap();
    s.shutdown();
    drop(join);
    drop(s);
    assert_eq!(drops.get(), 1);
    // The waker's reference keeps the task, and the scheduler in it, alive.
    assert!(weak.upgrade().is_some());
    waker.wake_by_ref();
    waker.clone().wake();
    drop(waker);
    assert!(
        weak.upgrade().is_none(),
        "the last waker frees the task and its scheduler"
    );
}

#[test]
fn is_finished_ids_and_debug() {
    let s = Sched::new();
    let a = s.spawn(async {});
    let b = s.spawn(async {});
    assert_ne!(a.id(), b.id());
    assert_eq!(a.abort_handle().id(), a.id());
    assert!(format!("{a:?}").contains(&format!("{:?}", a.id())));
    assert!(!a.is_finished());
    s.run_all();
    assert!(a.is_finished() && b.is_finished());
}

#[test]
fn join_handle_polled_after_ready_panics_with_advice() {
    let s = Sched::new();
    let mut join = mock(s.spawn(async { 1 }));
    s.run_all();
    assert!(join.poll().is_ready());
    let err = panic::catch_unwind(AssertUnwindSafe(|| join.poll())).unwrap_err();
    let msg = err.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(msg.contains("polled after it returned Ready"), "{msg}");
}

#[test]
fn join_handle_respects_the_coop_budget() {
    let s = Sched::new();
    let join = s.spawn(async { 1 });
    s.run_all();
    let mut join = mock(join);
    handoff_reactor::coop::budget(|| {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        while handoff_reactor::coop::poll_proceed(&mut cx).is_ready() {}
        assert!(
            join.poll().is_pending(),
            "an exhausted budget makes a ready JoinHandle yield"
        );
        assert!(join.is_woken());
    });
    assert!(join.poll().is_ready());
}

#[test]
fn task_polls_inside_a_budget() {
    let s = Sched::new();
    let join = s.spawn(async { handoff_reactor::coop::remaining() });
    s.run_all();
    assert_eq!(
        futures::executor::block_on(join).unwrap(),
        Some(handoff_reactor::coop::BUDGET)
    );
}

#[test]
fn blocking_task_run_cancel_panic() {
    let (r, h) = blocking_task(|| 40 + 2, Id::next());
    r.run();
    assert_eq!(futures::executor::block_on(h).unwrap(), 42);

    let drops = Counter::default();
    let track = DropTrack(drops.clone());
    let (r, h) = blocking_task(move || drop(track), Id::next());
    r.cancel();
    assert_eq!(drops.get(), 1);
    assert!(futures::executor::block_on(h).unwrap_err().is_cancelled());

    let (r, h) = blocking_task(|| panic!("blocking boom"), Id::next());
    std::thread::spawn(move || r.run()).join().unwrap();
    let err = futures::executor::block_on(h).unwrap_err();
    assert!(err.is_panic());
    assert_eq!(
        *err.into_panic().downcast::<&str>().unwrap(),
        "blocking boom"
    );
}

#[test]
fn blocking_task_aborted_before_run_is_cancelled_and_dropped_runnable_cancels() {
    let ran = Counter::default();
    let ran2 = ran.clone();
    let (r, h) = blocking_task(move || ran2.0.fetch_add(1, Ordering::SeqCst), Id::next());
    h.abort();
    r.run();
    assert_eq!(ran.get(), 0);
    assert!(futures::executor::block_on(h).unwrap_err().is_cancelled());

    let drops = Counter::default();
    let track = DropTrack(drops.clone());
    let (r, h) = blocking_task(move || drop(track), Id::next());
    let mut h = mock(h);
    assert!(h.poll().is_pending());
    drop(r);
    assert_eq!(drops.get(), 1);
    assert!(h.is_woken());
    assert!(matches!(h.poll(), Poll::Ready(Err(e)) if e.is_cancelled()));

    // A detached blocking task still runs, and frees itself.
    let (r, h) = blocking_task(move || ran.0.fetch_add(1, Ordering::SeqCst), Id::next());
    drop(h);
    r.run();
}

#[test]
fn one_allocation_layout_is_small() {
    // Header: state, vtable, two links, queue link, owner id, task id.
    assert!(std::mem::size_of::<Header>() <= 8 * 8);
    assert_eq!(
        std::mem::size_of::<Notified<Sched>>(),
        std::mem::size_of::<usize>()
    );
    assert_eq!(
        std::mem::size_of::<Option<Notified<Sched>>>(),
        std::mem::size_of::<usize>()
    );
    assert_eq!(
        std::mem::size_of::<JoinHandle<()>>(),
        std::mem::size_of::<usize>()
    );
}

#[test]
fn send_sync_bounds() {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    fn unpin<T: Unpin>() {}
    send::<Notified<Sched>>();
    send::<JoinHandle<u8>>();
    sync::<JoinHandle<u8>>();
    unpin::<JoinHandle<std::marker::PhantomPinned>>();
    send::<AbortHandle>();
    sync::<AbortHandle>();
    send::<Runnable>();
}

#[test]
fn tasks_run_and_woken_across_threads() {
    // A small multi-threaded soak: two runner threads, wakes from a third,
    // every future dropped exactly once.
    let s = Sched::new();
    let drops = Counter::default();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let mut wakers = Vec::new();
    let mut joins = Vec::new();
    const TASKS: usize = if cfg!(miri) { 20 } else { 200 };
    for _ in 0..TASKS {
        let slot: Arc<Mutex<Option<Waker>>> = Arc::default();
        let slot2 = slot.clone();
        let track = DropTrack(drops.clone());
        joins.push(s.spawn(poll_fn(move |n, cx| {
            let _ = &track;
            if n < 3 {
                *slot2.lock().unwrap() = Some(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(n)
            }
        })));
        wakers.push(slot);
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let runners: Vec<_> = (0..2)
        .map(|_| {
            let s = s.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if s.run_all() == 0 {
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    let waker_thread = std::thread::spawn(move || {
        while !wakers.is_empty() {
            wakers.retain(|slot| {
                if let Some(w) = slot.lock().unwrap().take() {
                    w.wake();
                }
                Arc::strong_count(slot) > 1
            });
            std::thread::yield_now();
        }
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("watchdog: tasks did not all complete within 60 s");
    waker_thread.join().unwrap();
    stop.store(true, Ordering::SeqCst);
    for r in runners {
        r.join().unwrap();
    }
    for j in joins {
        assert_eq!(futures::executor::block_on(j).unwrap(), 3);
    }
    assert_eq!(drops.get(), TASKS);
    assert_eq!(s.released(), TASKS);
    s.shutdown();
}

#[test]
fn intrusive_queue_links_through_the_header() {
    // How a scheduler's global queue can link Notifieds without allocating.
    let s = Sched::new();
    let default_sized: OwnedTasks<Sched> = OwnedTasks::new();
    assert!(default_sized.is_empty());
    let joins: Vec<_> = (0..3).map(|i| s.spawn(async move { i })).collect();
    let mut head: Option<NonNull<Header>> = None;
    let mut tail: Option<NonNull<Header>> = None;
    while let Some(n) = s.pop() {
        let id = n.id();
        let ptr = n.into_raw();
        // SAFETY: we hold the Notified (as `ptr`), so the links are ours.
        unsafe {
            assert_eq!(ptr.as_ref().id(), id);
            ptr.as_ref().set_queue_next(None);
            match tail {
                Some(t) => t.as_ref().set_queue_next(Some(ptr)),
                None => head = Some(ptr),
            }
        }
        tail = Some(ptr);
    }
    while let Some(ptr) = head {
        // SAFETY: as above; each pointer came from `into_raw` once.
        unsafe {
            head = ptr.as_ref().queue_next();
            Notified::<Sched>::from_raw(ptr).run();
        }
    }
    for (i, j) in joins.into_iter().enumerate() {
        assert_eq!(futures::executor::block_on(j).unwrap(), i);
    }
}

/// A waker whose wake panics (a buggy foreign executor joining our task).
fn panicking_waker() -> Waker {
    struct Boom;
    impl futures::task::ArcWake for Boom {
        fn wake_by_ref(_: &Arc<Self>) {
            panic!("waker panicked");
        }
    }
    futures::task::waker(Arc::new(Boom))
}

#[test]
fn panicking_join_waker_does_not_break_completion() {
    let s = Sched::new();
    let mut join = s.spawn(async { 5 });
    let waker = panicking_waker();
    assert!(Pin::new(&mut join)
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    s.run_all();
    assert_eq!(s.released(), 1);
    assert!(s.0.owned.is_empty());
    assert_eq!(futures::executor::block_on(join).unwrap(), 5);
}

#[test]
fn shutdown_continues_past_a_panicking_drop() {
    let s = Sched::new();
    let drops = Counter::default();
    let mut joins = Vec::new();
    let mut senders = Vec::new();
    for i in 0..10 {
        if i == 5 {
            let guard = PanicOnDrop;
            joins.push(s.spawn(async move {
                let _guard = guard;
                std::future::pending::<u32>().await
            }));
        } else {
            let (fut, tx) = gated(&drops);
            joins.push(s.spawn(fut));
            senders.push(tx);
        }
    }
    s.run_all();
    s.0.owned.close_and_shutdown_all();
    assert_eq!(drops.get(), 9);
    let errs: Vec<_> = joins
        .into_iter()
        .map(|j| futures::executor::block_on(j).unwrap_err())
        .collect();
    assert_eq!(errs.iter().filter(|e| e.is_panic()).count(), 1);
    assert_eq!(errs.iter().filter(|e| e.is_cancelled()).count(), 9);
}

#[test]
fn shutdown_from_inside_a_running_task_is_finished_by_its_runner() {
    let s = Sched::new();
    let drops = Counter::default();
    let (other, _tx) = gated(&drops);
    let other = s.spawn(other);
    let s2 = s.clone();
    let track = DropTrack(drops.clone());
    let me = s.spawn(poll_fn(move |_, _| {
        let _ = &track;
        // Re-entrant: the list is drained while this task is RUNNING.
        s2.0.owned.close_and_shutdown_all();
        Poll::<()>::Pending
    }));
    // Run `me` first; `other` is still queued behind it.
    let first = s.pop().unwrap();
    let second = s.pop().unwrap();
    second.run();
    first.run();
    assert_eq!(
        drops.get(),
        2,
        "both futures dropped: the idle one by close, the running one by its runner"
    );
    assert!(s.0.owned.is_empty());
    assert!(futures::executor::block_on(me).unwrap_err().is_cancelled());
    assert!(futures::executor::block_on(other)
        .unwrap_err()
        .is_cancelled());
}

#[test]
fn drop_during_shutdown_may_spawn_and_abort() {
    // A future whose Drop spawns a task (after close: dropped at once) and
    // aborts another (already drained or not: either way dropped once).
    struct OnDrop(Option<Box<dyn FnOnce() + Send>>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            (self.0.take().unwrap())();
        }
    }
    let s = Sched::new();
    let drops = Counter::default();
    let (victim, _tx) = gated(&drops);
    let victim = s.spawn(victim);
    let abort = victim.abort_handle();
    let s2 = s.clone();
    let late = Counter::default();
    let late2 = late.clone();
    let guard = OnDrop(Some(Box::new(move || {
        abort.abort();
        let (fut, _tx) = gated(&late2);
        let j = s2.spawn(fut);
        assert!(j.is_finished(), "a spawn after close is cancelled at once");
    })));
    let j = s.spawn(async move {
        let _guard = guard;
        std::future::pending::<()>().await
    });
    s.run_all();
    s.0.owned.close_and_shutdown_all();
    s.run_all();
    assert_eq!(drops.get(), 1);
    assert_eq!(late.get(), 1);
    assert!(futures::executor::block_on(victim)
        .unwrap_err()
        .is_cancelled());
    assert!(futures::executor::block_on(j).unwrap_err().is_cancelled());
    assert!(s.0.owned.is_empty());
}

#[test]
fn task_drops_its_own_join_handle_while_running() {
    let s = Sched::new();
    let out = Counter::default();
    let out2 = out.clone();
    let slot: Arc<Mutex<Option<JoinHandle<DropTrack>>>> = Arc::default();
    let slot2 = slot.clone();
    let join = s.spawn(poll_fn(move |_, _| {
        drop(slot2.lock().unwrap().take());
        Poll::Ready(DropTrack(out2.clone()))
    }));
    *slot.lock().unwrap() = Some(join);
    s.run_all();
    assert_eq!(out.get(), 1, "the detached output is dropped by the runner");
    assert!(s.0.owned.is_empty());
}

#[test]
fn concurrent_spawn_complete_and_close_drop_every_future_once() {
    // Threads bind, run and abort tasks on the sharded list while the main
    // thread closes it midway: every future is dropped exactly once, no task
    // is left registered, and spawns after the close are cancelled at once.
    const THREADS: usize = 4;
    let per_thread: usize = if cfg!(miri) { 25 } else { 500 };
    let s = Sched::new();
    let drops = Counter::default();
    let spawned = Arc::new(AtomicUsize::new(0));
    let halfway = Arc::new(std::sync::Barrier::new(THREADS + 1));
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (s, drops, spawned, halfway, done_tx) = (
                s.clone(),
                drops.clone(),
                spawned.clone(),
                halfway.clone(),
                done_tx.clone(),
            );
            std::thread::spawn(move || {
                let mut senders = Vec::new();
                for i in 0..per_thread {
                    if i == per_thread / 2 {
                        halfway.wait();
                    }
                    let (fut, tx) = gated(&drops);
                    let (join, notified) = s.0.owned.bind(fut, s.clone(), Id::next());
                    spawned.fetch_add(1, Ordering::SeqCst);
                    if let Some(n) = notified {
                        n.run();
                    }
                    match (i + t) % 3 {
                        0 => join.abort(),
                        1 => drop(tx.send(1)),
                        _ => senders.push(tx),
                    }
                    drop(join);
                    while let Some(n) = s.pop() {
                        n.run();
                    }
                }
                drop(senders);
                done_tx.send(()).unwrap();
            })
        })
        .collect();
    halfway.wait();
    s.0.owned.close_and_shutdown_all();
    for _ in 0..THREADS {
        done_rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("watchdog: spawning threads did not finish within 60 s");
    }
    for t in threads {
        t.join().unwrap();
    }
    s.run_all();
    // Tasks woken (by a sender) after the close ran to completion or were
    // already cancelled; the rest were cancelled by the close or at bind.
    s.0.owned.close_and_shutdown_all();
    assert!(s.0.owned.is_empty());
    assert_eq!(spawned.load(Ordering::SeqCst), THREADS * per_thread);
    assert_eq!(
        drops.get(),
        THREADS * per_thread,
        "every future dropped exactly once"
    );
    assert_eq!(s.released(), THREADS * per_thread);
}

#[test]
fn task_id_is_set_while_polling_and_dropping() {
    struct SeesId(Arc<Mutex<Vec<Option<Id>>>>);
    impl Drop for SeesId {
        fn drop(&mut self) {
            self.0.lock().unwrap().push(task::try_id());
        }
    }
    let s = Sched::new();
    let seen: Arc<Mutex<Vec<Option<Id>>>> = Arc::default();
    let guard = SeesId(seen.clone());
    let seen2 = seen.clone();
    let join = s.spawn(poll_fn(move |_, _| {
        let _ = &guard;
        seen2.lock().unwrap().push(Some(task::id()));
        Poll::<()>::Pending
    }));
    let id = join.id();
    assert_eq!(task::try_id(), None);
    s.run_all();
    assert_eq!(task::try_id(), None, "the id is restored after the poll");
    join.abort();
    s.run_all();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![Some(id), Some(id)],
        "poll and cancel-drop both see the id"
    );
}

#[test]
#[should_panic(expected = "called outside a task")]
fn task_id_outside_a_task_says_what_to_do() {
    let _ = task::id();
}
