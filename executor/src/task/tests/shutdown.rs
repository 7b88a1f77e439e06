//! Many tasks: the owned list, shutdown, dropped queues, wakers that
//! outlive the scheduler, threads racing a close.
use super::*;

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
fn dropping_a_list_with_live_tasks_cancels_them() {
    // A scheduler that does not own the list (no Arc cycle): dropping the
    // list must not leak its tasks.
    struct Detached;
    impl Schedule for Detached {
        fn schedule(&self, task: Notified<Self>) {
            drop(task);
        }
        fn release(&self, _task: &Task<Self>) -> Option<Task<Self>> {
            None
        }
    }
    let drops = Counter::default();
    let list: OwnedTasks<Detached> = OwnedTasks::with_shards(2);
    let mut joins = Vec::new();
    let mut senders = Vec::new();
    for _ in 0..10 {
        let (fut, tx) = gated(&drops);
        let (join, notified) = list.bind(fut, Detached, Id::next());
        notified.unwrap().run();
        joins.push(join);
        senders.push(tx);
    }
    assert_eq!(list.len(), 10);
    drop(list);
    assert_eq!(drops.get(), 10);
    for j in joins {
        assert!(futures::executor::block_on(j).unwrap_err().is_cancelled());
    }
}
