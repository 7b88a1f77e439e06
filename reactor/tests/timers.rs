//! Timers: never early, in deadline order, cancelled on drop, many at once.
mod common;

use common::{counting_waker, watchdog};
use futures::stream::{FuturesUnordered, StreamExt};
use handoff_reactor::time::{interval, sleep, sleep_until, timeout, Elapsed};
use handoff_reactor::{block_on, Handle};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::task::Context;
use std::time::{Duration, Instant};

/// Wakes record (index, instant) in a shared log.
struct Logger {
    i: usize,
    log: Arc<Mutex<Vec<(usize, Instant)>>>,
}
impl std::task::Wake for Logger {
    fn wake(self: Arc<Self>) {
        self.log.lock().unwrap().push((self.i, Instant::now()));
    }
}

#[test]
fn timers_never_fire_early_and_fire_in_deadline_order() {
    let _w = watchdog("timers_order", 60);
    let h = Handle::new().unwrap();
    let _g = h.enter();
    // Far enough ahead that every timer is registered before the first is due.
    let base = Instant::now() + Duration::from_millis(200);
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut sleeps = Vec::new();
    for i in 0..200usize {
        // Interleaved deadlines (not creation order), some equal, over 30 ms.
        let deadline = base + Duration::from_micros(((i as u64 * 7919) % 30_000) / 100 * 100);
        let mut s = sleep_until(deadline);
        let waker = std::task::Waker::from(Arc::new(Logger {
            i,
            log: log.clone(),
        }));
        assert!(std::pin::Pin::new(&mut s)
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        sleeps.push(s);
    }
    assert!(
        Instant::now() < base,
        "setup took longer than 200 ms; the order check needs all timers registered"
    );
    let mut p = h.try_lock_poller().unwrap();
    while log.lock().unwrap().len() < sleeps.len() {
        p.turn(None).unwrap();
    }
    let log = log.lock().unwrap();
    for &(i, at) in log.iter() {
        assert!(
            at >= sleeps[i].deadline(),
            "timer {i} fired {:?} early",
            sleeps[i].deadline() - at
        );
    }
    let keys: Vec<_> = log
        .iter()
        .map(|&(i, _)| (sleeps[i].deadline(), i))
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] <= w[1]),
        "timers fired out of (deadline, creation) order"
    );
}

#[test]
fn sleep_duration_is_never_short() {
    let _w = watchdog("sleep_never_short", 60);
    block_on(async {
        for us in [1u64, 50, 300, 999, 1000, 1001, 2500] {
            let d = Duration::from_micros(us);
            let t = Instant::now();
            sleep(d).await;
            assert!(
                t.elapsed() >= d,
                "sleep({d:?}) returned after {:?}",
                t.elapsed()
            );
        }
    });
}

#[test]
fn one_hundred_thousand_outstanding_sleeps() {
    let _w = watchdog("100k_sleeps", 120);
    block_on(async {
        let start = Instant::now();
        let mut futs = FuturesUnordered::new();
        for i in 0..100_000u64 {
            let deadline = start + Duration::from_micros(20_000 + (i * 31) % 50_000);
            futs.push(async move {
                sleep_until(deadline).await;
                assert!(Instant::now() >= deadline, "early timer");
            });
        }
        let mut n = 0;
        while futs.next().await.is_some() {
            n += 1;
        }
        assert_eq!(n, 100_000);
    });
}

#[test]
fn dropped_sleep_is_cancelled_and_drops_its_waker() {
    let _w = watchdog("sleep_cancel", 30);
    let h = Handle::new().unwrap();
    let _g = h.enter();
    let (waker, c, dropped) = counting_waker();
    let mut s = sleep(Duration::from_millis(20));
    assert!(std::pin::Pin::new(&mut s)
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    drop(waker);
    let weak = Arc::downgrade(&c);
    drop(c);
    assert_eq!(dropped.load(Ordering::SeqCst), 0);
    drop(s);
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "cancelled sleep kept its waker"
    );
    // And it never fires: turning past the deadline wakes nobody.
    let mut p = h.try_lock_poller().unwrap();
    let until = Instant::now() + Duration::from_millis(40);
    while Instant::now() < until {
        assert_eq!(
            p.turn(Some(Duration::from_millis(10))).unwrap(),
            0,
            "a cancelled timer fired"
        );
    }
    assert!(weak.upgrade().is_none());
}

#[test]
fn reset_moves_the_deadline_both_ways() {
    let _w = watchdog("sleep_reset", 30);
    block_on(async {
        let mut s = sleep(Duration::from_secs(3600));
        let t = Instant::now();
        let soon = t + Duration::from_millis(5);
        s.reset(soon);
        assert_eq!(s.deadline(), soon);
        (&mut s).await;
        assert!(Instant::now() >= soon);
        // After completion, a reset makes it pending again.
        let later = Instant::now() + Duration::from_millis(5);
        s.reset(later);
        assert!(!s.is_elapsed());
        (&mut s).await;
        assert!(Instant::now() >= later);
    });
}

#[test]
fn timeout_elapses_and_passes_values_through() {
    let _w = watchdog("timeout", 30);
    block_on(async {
        assert_eq!(timeout(Duration::from_secs(10), async { 5 }).await, Ok(5));
        let t = Instant::now();
        let r = timeout(Duration::from_millis(10), std::future::pending::<()>()).await;
        assert_eq!(r, Err(Elapsed::new()));
        assert!(t.elapsed() >= Duration::from_millis(10));
        assert_eq!(Elapsed::new().to_string(), "deadline has elapsed");
    });
}

#[test]
fn interval_first_tick_immediate_then_periodic() {
    let _w = watchdog("interval", 30);
    block_on(async {
        let period = Duration::from_millis(3);
        let t = Instant::now();
        let mut iv = interval(period);
        let first = iv.tick().await;
        assert!(first <= Instant::now());
        let mut prev = first;
        for _ in 0..5 {
            let tick = iv.tick().await;
            assert_eq!(tick - prev, period, "ticks are scheduled one period apart");
            assert!(Instant::now() >= tick, "tick delivered early");
            prev = tick;
        }
        assert!(t.elapsed() >= 5 * period);
    });
}

/// A timer set from another thread with an earlier deadline than the one
/// the blocked poller waits for must wake the poller (else it would sleep
/// through the deadline).
#[test]
fn earlier_timer_from_another_thread_wakes_the_blocked_poller() {
    let _w = watchdog("timer_wakes_poller", 30);
    let h = Handle::new().unwrap();
    let (fired_tx, fired_rx) = mpsc::channel::<Instant>();
    let (blocked_tx, blocked_rx) = mpsc::channel::<()>();
    let h2 = h.clone();
    let poller = std::thread::spawn(move || {
        let mut p = h2.try_lock_poller().unwrap();
        blocked_tx.send(()).unwrap();
        // Would block forever (no timers, no I/O) without the timer's wake.
        let mut fired = 0;
        while fired == 0 {
            fired += p.turn(None).unwrap();
        }
    });
    blocked_rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(5)); // let it block (either order is correct)
    let _g = h.enter();
    let deadline = Instant::now() + Duration::from_millis(10);
    let mut s = sleep_until(deadline);
    struct W(Mutex<Option<mpsc::Sender<Instant>>>);
    impl std::task::Wake for W {
        fn wake(self: Arc<Self>) {
            if let Some(tx) = self.0.lock().unwrap().take() {
                let _ = tx.send(Instant::now());
            }
        }
    }
    let waker = std::task::Waker::from(Arc::new(W(Mutex::new(Some(fired_tx)))));
    assert!(std::pin::Pin::new(&mut s)
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    let at = fired_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the blocked poller never fired the timer");
    assert!(at >= deadline, "fired early");
    poller.join().unwrap();
}

use std::future::Future;

/// After the reactor is gone, an interval must not tick in a busy loop (its
/// next deadline can never fire): it stays pending and drops its waker.
#[test]
fn interval_after_reactor_shutdown_stays_pending() {
    let _w = watchdog("interval_after_shutdown", 30);
    let h = Handle::new().unwrap();
    let g = h.enter();
    // 200 ms, not 1: the polls below must all happen before the next tick is
    // due, even on a loaded machine or under valgrind.
    let mut iv = interval(Duration::from_millis(200));
    let noop = futures::task::noop_waker();
    let mut cx = Context::from_waker(&noop);
    assert!(iv.poll_tick(&mut cx).is_ready()); // first tick: immediate
    assert!(iv.poll_tick(&mut cx).is_pending()); // registered for the second
    let mut p = h.try_lock_poller().unwrap();
    while p.turn(None).unwrap() == 0 {}
    drop(p);
    drop(g);
    drop(h);
    assert!(
        iv.poll_tick(&mut cx).is_ready(),
        "the tick that fired before shutdown"
    );
    for _ in 0..3 {
        assert!(
            iv.poll_tick(&mut cx).is_pending(),
            "ticking without a reactor"
        );
    }
}
