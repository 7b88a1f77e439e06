//! loom models of the task state word and its users: every interleaving of
//! a wake, an abort, a join or a reference drop against a poll or a
//! completion on another thread. Run with
//! `RUSTFLAGS="--cfg loom" cargo test --release -p handoff-executor --lib loom`.
//!
//! Each model has one task, so "at most one `Notified` exists" is checked
//! on every `schedule`/`yield_now`: the queue must be empty when a task is
//! pushed. Leaks and double frees show up as loom `Arc` errors: every task
//! holds a loom `Arc` of the scheduler.
use super::*;
use crate::loom::{thread, Arc, AtomicBool, AtomicUsize, Mutex, Ordering};
use futures::task::ArcWake;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Runs a model exhaustively (no preemption bound: the whole set takes about
/// 2 s in release mode; `LOOM_MAX_PREEMPTIONS` can still bound it).
fn model(f: impl Fn() + Sync + Send + 'static) {
    loom::model::Builder::new().check(f);
}

/// Preemptions explored by the three-thread model: exhaustive takes ~10 s;
/// 3 keeps it to ~1 s and still reorders each waker against each step of
/// the poll (each waker's wake is one CAS).
const THREE_THREAD_PREEMPTIONS: usize = 3;

fn model_bounded(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(THREE_THREAD_PREEMPTIONS);
    b.check(f);
}

struct Inner {
    /// (task, came through yield_now)
    queue: Mutex<VecDeque<(Notified<Sched>, bool)>>,
    released: AtomicUsize,
    owned: OwnedTasks<Sched>,
}

#[derive(Clone)]
struct Sched(Arc<Inner>);

impl Sched {
    fn new() -> Sched {
        Sched(Arc::new(Inner {
            queue: Mutex::new(VecDeque::new()),
            released: AtomicUsize::new(0),
            // One shard under loom whatever is asked (see `LOOM_SHARDS`).
            owned: OwnedTasks::new(),
        }))
    }

    fn push(&self, task: Notified<Sched>, yielded: bool) {
        let mut q = self.0.queue.lock().unwrap();
        assert!(
            q.is_empty(),
            "a task was scheduled while its Notified was queued"
        );
        q.push_back((task, yielded));
    }

    fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (join, notified) = self.0.owned.bind(future, self.clone(), Id::next());
        self.push(notified.unwrap(), false);
        join
    }

    fn pop(&self) -> Option<(Notified<Sched>, bool)> {
        self.0.queue.lock().unwrap().pop_front()
    }

    fn run_one(&self) -> bool {
        match self.pop() {
            Some((n, _)) => {
                n.run();
                true
            }
            None => false,
        }
    }

    /// Runs queued tasks until `done`, yielding to loom while nothing is queued.
    fn run_until(&self, done: impl Fn() -> bool) {
        while !done() {
            if !self.run_one() {
                thread::yield_now();
            }
        }
    }

    fn shutdown(&self) {
        self.0.queue.lock().unwrap().clear();
        self.0.owned.close_and_shutdown_all();
    }
}

impl Schedule for Sched {
    fn schedule(&self, task: Notified<Self>) {
        self.push(task, false);
    }

    fn yield_now(&self, task: Notified<Self>) {
        self.push(task, true);
    }

    fn release(&self, task: &Task<Self>) -> Option<Task<Self>> {
        self.0.released.fetch_add(1, Ordering::Relaxed);
        self.0.owned.remove(task)
    }
}

/// Counts drops (a loom atomic, so loom checks the count's visibility).
struct DropTrack(Arc<AtomicUsize>);

impl Drop for DropTrack {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}

/// A future: first poll stores its waker in `slot`; later polls are Ready
/// once `go` is set.
struct Gate {
    go: Arc<AtomicBool>,
    slot: Arc<Mutex<Option<Waker>>>,
    _track: DropTrack,
    polls: usize,
}

impl Future for Gate {
    type Output = usize;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        self.polls += 1;
        if self.polls == 1 {
            *self.slot.lock().unwrap() = Some(cx.waker().clone());
            return Poll::Pending;
        }
        if self.go.load(Ordering::Acquire) {
            Poll::Ready(self.polls)
        } else {
            Poll::Pending
        }
    }
}

struct Setup {
    s: Sched,
    join: JoinHandle<usize>,
    waker: Waker,
    go: Arc<AtomicBool>,
    drops: Arc<AtomicUsize>,
}

/// A spawned `Gate` task, polled once: idle, its waker in hand.
fn idle_gate() -> Setup {
    let s = Sched::new();
    let go = Arc::new(AtomicBool::new(false));
    let drops = Arc::new(AtomicUsize::new(0));
    let slot = Arc::new(Mutex::new(None));
    let join = s.spawn(Gate {
        go: go.clone(),
        slot: slot.clone(),
        _track: DropTrack(drops.clone()),
        polls: 0,
    });
    assert!(s.run_one());
    let waker = slot.lock().unwrap().take().unwrap();
    Setup {
        s,
        join,
        waker,
        go,
        drops,
    }
}

/// Polls a JoinHandle once with a waker that only sets a flag.
struct Flag(AtomicBool);

impl ArcWake for Flag {
    fn wake_by_ref(arc_self: &std::sync::Arc<Self>) {
        arc_self.0.store(true, Ordering::Release);
    }
}

fn poll_join<T>(join: &mut JoinHandle<T>, waker: &Waker) -> Poll<Result<T, JoinError>> {
    Pin::new(join).poll(&mut Context::from_waker(waker))
}

#[test]
fn loom_wake_while_running() {
    model(|| {
        let Setup {
            s,
            join,
            waker,
            go,
            drops,
        } = idle_gate();
        // Queue the task so the main thread polls it while the waker runs.
        waker.wake_by_ref();
        let th = thread::spawn(move || {
            go.store(true, Ordering::Release);
            waker.wake();
        });
        s.run_until(|| join.is_finished());
        th.join().unwrap();
        assert!(
            s.pop().is_none(),
            "a wake after completion scheduled the task"
        );
        assert_eq!(drops.load(Ordering::Acquire), 1);
        let mut join = join;
        let noop = futures::task::noop_waker();
        assert!(matches!(poll_join(&mut join, &noop), Poll::Ready(Ok(_))));
        assert_eq!(s.0.released.load(Ordering::Relaxed), 1);
    });
}

#[test]
fn loom_abort_while_running() {
    model(|| {
        let Setup {
            s,
            join,
            waker,
            drops,
            ..
        } = idle_gate();
        waker.wake();
        let abort = join.abort_handle();
        let th = thread::spawn(move || abort.abort());
        s.run_until(|| join.is_finished());
        th.join().unwrap();
        assert!(s.pop().is_none());
        assert_eq!(
            drops.load(Ordering::Acquire),
            1,
            "the future is dropped exactly once"
        );
        let mut join = join;
        let noop = futures::task::noop_waker();
        match poll_join(&mut join, &noop) {
            Poll::Ready(Err(e)) => assert!(e.is_cancelled()),
            other => panic!("expected cancelled, got {other:?}"),
        }
        assert_eq!(s.0.released.load(Ordering::Relaxed), 1);
    });
}

#[test]
fn loom_join_after_complete() {
    model(|| {
        let s = Sched::new();
        let mut join = s.spawn(async { 7usize });
        let runner = s.clone();
        let th = thread::spawn(move || assert!(runner.run_one()));
        let flag = std::sync::Arc::new(Flag(AtomicBool::new(false)));
        let waker = futures::task::waker(flag.clone());
        let out = match poll_join(&mut join, &waker) {
            Poll::Ready(out) => out,
            Poll::Pending => {
                // No lost wake-up: completion must wake the registered waker.
                while !flag.0.load(Ordering::Acquire) {
                    thread::yield_now();
                }
                match poll_join(&mut join, &waker) {
                    Poll::Ready(out) => out,
                    Poll::Pending => panic!("woken, but the output is not readable"),
                }
            }
        };
        assert_eq!(out.unwrap(), 7);
        th.join().unwrap();
    });
}

#[test]
fn loom_join_handle_drop_vs_complete() {
    model(|| {
        let s = Sched::new();
        let drops = Arc::new(AtomicUsize::new(0));
        let out = DropTrack(drops.clone());
        let mut join = s.spawn(async move { out });
        // Register a waker first so the completer also takes the JOIN_WAKER path.
        let noop = futures::task::noop_waker();
        assert!(poll_join(&mut join, &noop).is_pending());
        let runner = s.clone();
        let th = thread::spawn(move || assert!(runner.run_one()));
        drop(join);
        th.join().unwrap();
        assert_eq!(
            drops.load(Ordering::Acquire),
            1,
            "the output is dropped exactly once"
        );
    });
}

#[test]
fn loom_drop_last_reference_from_two_threads() {
    model(|| {
        let Setup {
            s,
            join,
            waker,
            go,
            drops,
        } = idle_gate();
        go.store(true, Ordering::Release);
        waker.wake_by_ref();
        assert!(s.run_one());
        assert!(join.is_finished());
        // Complete; the last two references (a waker, the JoinHandle) race.
        let th = thread::spawn(move || drop(waker));
        drop(join);
        th.join().unwrap();
        assert_eq!(drops.load(Ordering::Acquire), 1);
        // The Arc leak check at the end of the iteration proves the task
        // (which holds a scheduler Arc) was freed, and freed once.
    });
}

#[test]
fn loom_shutdown_vs_wake_and_waker_drop() {
    model(|| {
        let Setup {
            s,
            join,
            waker,
            drops,
            ..
        } = idle_gate();
        drop(join);
        let th = thread::spawn(move || {
            waker.wake_by_ref();
            drop(waker);
        });
        s.0.owned.close_and_shutdown_all();
        th.join().unwrap();
        // A wake that got in first left a Notified in the queue; running it
        // finds the task complete.
        while s.run_one() {}
        assert_eq!(
            drops.load(Ordering::Acquire),
            1,
            "the future is dropped exactly once"
        );
        assert!(s.0.owned.is_empty());
    });
}

#[test]
fn loom_concurrent_wake_schedules_once() {
    model(|| {
        let Setup {
            s,
            join,
            waker,
            go,
            drops,
        } = idle_gate();
        go.store(true, Ordering::Release);
        let w2 = waker.clone();
        let th = thread::spawn(move || w2.wake());
        waker.wake_by_ref();
        th.join().unwrap();
        // `push` asserts the queue was empty: exactly one Notified exists.
        assert!(s.run_one());
        assert!(s.pop().is_none());
        assert!(join.is_finished());
        drop(waker);
        assert_eq!(drops.load(Ordering::Acquire), 1);
        s.shutdown();
    });
}

#[test]
fn loom_shutdown_while_running() {
    model(|| {
        let Setup {
            s,
            join,
            waker,
            drops,
            ..
        } = idle_gate();
        waker.wake();
        let closer = s.clone();
        let th = thread::spawn(move || closer.0.owned.close_and_shutdown_all());
        // Runs the queued Notified: before the close (the runner cancels
        // after its poll), or after it (the Notified finds the task complete).
        assert!(s.run_one());
        th.join().unwrap();
        assert!(s.pop().is_none());
        assert_eq!(
            drops.load(Ordering::Acquire),
            1,
            "the future is dropped exactly once"
        );
        assert!(join.is_finished());
        assert!(s.0.owned.is_empty());
        assert_eq!(s.0.released.load(Ordering::Relaxed), 1);
    });
}

#[test]
fn loom_bind_vs_close() {
    model(|| {
        let s = Sched::new();
        let drops = Arc::new(AtomicUsize::new(0));
        let closer = s.clone();
        let th = thread::spawn(move || closer.0.owned.close_and_shutdown_all());
        let track = DropTrack(drops.clone());
        let (join, notified) = s.0.owned.bind(
            async move {
                let _track = track;
                std::future::pending::<()>().await
            },
            s.clone(),
            Id::next(),
        );
        th.join().unwrap();
        // Bound before the close: the close cancelled it. After: bind did.
        assert_eq!(
            drops.load(Ordering::Acquire),
            1,
            "no task escapes close_and_shutdown_all"
        );
        assert!(join.is_finished());
        assert!(s.0.owned.is_empty());
        // A Notified from a bind that won the race finds the task complete.
        if let Some(n) = notified {
            n.run();
        }
    });
}

#[test]
fn loom_abort_vs_complete() {
    model(|| {
        let Setup {
            s,
            join,
            waker,
            go,
            drops,
        } = idle_gate();
        go.store(true, Ordering::Release);
        waker.wake();
        let abort = join.abort_handle();
        let th = thread::spawn(move || abort.abort());
        s.run_until(|| join.is_finished());
        th.join().unwrap();
        assert!(s.pop().is_none());
        assert_eq!(drops.load(Ordering::Acquire), 1);
        let mut join = join;
        let noop = futures::task::noop_waker();
        // Either the poll finished first (output kept) or the abort did.
        match poll_join(&mut join, &noop) {
            Poll::Ready(Ok(polls)) => assert_eq!(polls, 2),
            Poll::Ready(Err(e)) => assert!(e.is_cancelled()),
            Poll::Pending => panic!("a finished task's JoinHandle was pending"),
        }
    });
}

#[test]
fn loom_join_waker_replaced_vs_complete() {
    model(|| {
        let s = Sched::new();
        let mut join = s.spawn(async { 3usize });
        let first = std::sync::Arc::new(Flag(AtomicBool::new(false)));
        let first_waker = futures::task::waker(first.clone());
        assert!(poll_join(&mut join, &first_waker).is_pending());
        let runner = s.clone();
        let th = thread::spawn(move || assert!(runner.run_one()));
        // Re-register with a different waker while the task completes.
        let second = std::sync::Arc::new(Flag(AtomicBool::new(false)));
        let second_waker = futures::task::waker(second.clone());
        let out = match poll_join(&mut join, &second_waker) {
            Poll::Ready(out) => out,
            Poll::Pending => {
                // The replacement must be the one woken: no lost wake-up.
                while !second.0.load(Ordering::Acquire) {
                    thread::yield_now();
                }
                match poll_join(&mut join, &second_waker) {
                    Poll::Ready(out) => out,
                    Poll::Pending => panic!("woken, but the output is not readable"),
                }
            }
        };
        assert_eq!(out.unwrap(), 3);
        th.join().unwrap();
    });
}

#[test]
fn loom_two_wakes_while_running_reschedule_once() {
    model_bounded(|| {
        let Setup {
            s,
            join,
            waker,
            drops,
            ..
        } = idle_gate();
        waker.wake_by_ref();
        let w2 = waker.clone();
        let a = thread::spawn(move || w2.wake_by_ref());
        let b = thread::spawn(move || waker.wake());
        // The wakes race this poll; `push` asserts at most one Notified.
        assert!(s.run_one());
        a.join().unwrap();
        b.join().unwrap();
        // Wakes that landed while it was queued were absorbed by that run;
        // a wake during or after it queued it once more (never twice).
        s.run_one();
        assert!(s.pop().is_none());
        assert!(!join.is_finished());
        drop(join);
        s.shutdown();
        assert_eq!(drops.load(Ordering::Acquire), 1);
    });
}

#[test]
fn loom_detached_join_handle_vs_complete() {
    // The fast detach (one CAS, no waker registered) racing completion: the
    // output is dropped exactly once, by the completer or by the handle.
    model(|| {
        let s = Sched::new();
        let drops = Arc::new(AtomicUsize::new(0));
        let out = DropTrack(drops.clone());
        let join = s.spawn(async move { out });
        // Keeps the task allocated, so a missed output drop cannot hide in
        // the final dealloc.
        let keep = join.abort_handle();
        let runner = s.clone();
        let th = thread::spawn(move || assert!(runner.run_one()));
        drop(join);
        th.join().unwrap();
        assert_eq!(
            drops.load(Ordering::Acquire),
            1,
            "the output is dropped exactly once, before the task is freed"
        );
        drop(keep);
    });
}

#[test]
fn loom_blocking_task_run_vs_abort() {
    // The pool runs a blocking task while its JoinHandle aborts it: the
    // closure runs or is dropped unrun, exactly once, and nothing is ever
    // handed to the (absent) scheduler.
    model(|| {
        let ran = Arc::new(AtomicUsize::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let track = DropTrack(drops.clone());
        let ran2 = ran.clone();
        let (runnable, mut join) = blocking_task(
            move || {
                let _track = track;
                ran2.fetch_add(1, Ordering::Relaxed);
            },
            Id::next(),
        );
        let abort = join.abort_handle();
        let th = thread::spawn(move || abort.abort());
        runnable.run();
        th.join().unwrap();
        assert_eq!(
            drops.load(Ordering::Acquire),
            1,
            "the closure is dropped exactly once"
        );
        let noop = futures::task::noop_waker();
        match poll_join(&mut join, &noop) {
            Poll::Ready(Ok(())) => assert_eq!(ran.load(Ordering::Relaxed), 1),
            Poll::Ready(Err(e)) => {
                assert!(e.is_cancelled());
                assert_eq!(ran.load(Ordering::Relaxed), 0);
            }
            Poll::Pending => panic!("a run blocking task's JoinHandle was pending"),
        }
    });
}
