//! One task's life: spawn, run, wake, join, abort, panic, ids, budget,
//! blocking tasks, layout.
use super::*;

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

/// A `!Unpin` future that checks Pin's drop guarantee: the address it was
/// polled at is the address its Drop runs at (what an intrusive future
/// that unlinks itself on drop relies on).
struct AddressCheck {
    polled_at: Option<usize>,
    ready: bool,
    wrong_drops: Counter,
    _pin: std::marker::PhantomPinned,
}

impl Future for AddressCheck {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: only plain fields are written; the future is not moved.
        let this = unsafe { self.get_unchecked_mut() };
        this.polled_at = Some(this as *const AddressCheck as usize);
        if this.ready {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for AddressCheck {
    fn drop(&mut self) {
        if let Some(at) = self.polled_at {
            if at != self as *const AddressCheck as usize {
                self.wrong_drops.0.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

#[test]
fn future_is_dropped_in_place_not_moved() {
    // Regression: the stage used to be swapped out with `mem::replace` and
    // dropped elsewhere, moving a pinned future before its Drop.
    let s = Sched::new();
    let wrong = Counter::default();
    let mk = |ready| AddressCheck {
        polled_at: None,
        ready,
        wrong_drops: wrong.clone(),
        _pin: std::marker::PhantomPinned,
    };
    let done = s.spawn(mk(true)); // dropped after Ready
    let aborted = s.spawn(mk(false)); // dropped by cancel
    let shut = s.spawn(mk(false)); // dropped by close_and_shutdown_all
    s.run_all();
    aborted.abort();
    s.run_all();
    s.0.owned.close_and_shutdown_all();
    drop((done, aborted, shut));
    assert_eq!(
        wrong.get(),
        0,
        "a pinned future was moved before its Drop ran"
    );
}
