//! Stress: the blocking bridge under load.
//!
//! - `stress_blocking_storm`: `blocking` / `blocking_long` calls of random
//!   length on 4 slots with `max_threads(128)`, mixed with timers and TCP
//!   ping-pong (2 000 calls of 0–1 ms by default; 10 000 calls of 0–5 ms
//!   with `STRESS=long`, issue 6's size). The thread count never passes the
//!   cap, timers and sockets keep working, every task ends exactly once.
//! - `stress_spawn_and_wake_inside_blocking`: closures that spawn tasks,
//!   wake other tasks and abort tasks from inside the call (the thread has
//!   released its slot, so all of it must go through the global queue).
mod stress_common;

use futures::channel::oneshot;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use handoff::net::{TcpListener, TcpStream};
use handoff::Runtime;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use stress_common::{isolated, long, scale, seed, under_valgrind, watch, Ledger, XorShift};

const MAX_THREADS: usize = 128;

fn storm() {
    let calls = if under_valgrind() {
        200
    } else {
        scale(2_000, 10_000)
    };
    // Microseconds: 0–1 ms short (keeps the debug run to a second or two),
    // 0–5 ms long.
    let max_us = if long() { 5_000 } else { 1_000 };
    let mut rng = XorShift::new(seed("stress_blocking_storm"));
    let rt = Runtime::builder()
        .worker_threads(4)
        .max_threads(MAX_THREADS)
        .build()
        .unwrap();
    let _w = watch(rt.handle());

    // Sample the thread gauge while the storm runs.
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (h, stop, peak) = (rt.handle().clone(), stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(h.metrics().threads_alive, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(500));
            }
        })
    };

    let ledger = Ledger::new(calls + 64 + 8);
    let mut next = 0;
    let mut handles = Vec::new();
    // The storm.
    for _ in 0..calls {
        let us = rng.below(max_us + 1);
        let is_long = rng.below(4) == 0;
        let g = ledger.guard(next);
        handles.push((
            next,
            rt.spawn(async move {
                let g = g;
                let d = Duration::from_micros(us);
                let got = if is_long {
                    handoff::blocking_long(move || {
                        std::thread::sleep(d);
                        us
                    })
                    .await
                } else {
                    handoff::blocking(move || {
                        std::thread::sleep(d);
                        us
                    })
                    .await
                };
                assert_eq!(got, us);
                g.done();
            }),
        ));
        next += 1;
    }
    // Timers: 64 tasks sleeping in steps.
    for k in 0..64u64 {
        let g = ledger.guard(next);
        handles.push((
            next,
            rt.spawn(async move {
                let g = g;
                for _ in 0..5 {
                    handoff::time::sleep(Duration::from_micros(200 + 37 * k)).await;
                }
                g.done();
            }),
        ));
        next += 1;
    }
    // TCP: 4 echo pairs doing round trips.
    let rounds = scale(200, 1_000);
    let addr = rt.block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        rt_spawn_echo_server(l);
        addr
    });
    for _ in 0..8 {
        let g = ledger.guard(next);
        handles.push((
            next,
            rt.spawn(async move {
                let g = g;
                let mut s = TcpStream::connect(addr).await.unwrap();
                for r in 0..rounds as u32 {
                    s.write_all(&r.to_le_bytes()).await.unwrap();
                    let mut b = [0u8; 4];
                    s.read_exact(&mut b).await.unwrap();
                    assert_eq!(u32::from_le_bytes(b), r);
                }
                g.done();
            }),
        ));
        next += 1;
    }
    let l2 = ledger.clone();
    rt.block_on(async move {
        for (i, h) in handles {
            let r = h.await;
            l2.joined(i, &r);
        }
    });
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let m = rt.metrics();
    drop(rt);
    let (done, _) = ledger.check(next, true);
    assert_eq!(done, next, "no task was aborted: all complete");
    let peak = peak.load(Ordering::Relaxed);
    assert!(
        peak <= MAX_THREADS as u64,
        "threads_alive peaked at {peak} > max_threads {MAX_THREADS}"
    );
    assert!(
        m.threads_spawned > 4,
        "the storm needed more threads than slots"
    );
    println!(
        "stress_blocking_storm: {calls} calls (0-{max_us} us): peak threads {peak}, spawned {}, \
         retakes {}, handoffs {}, exits fast/idle/slow {}/{}/{}, long {}",
        m.threads_spawned,
        m.retakes,
        m.handoffs,
        m.blocking_fast_exits,
        m.blocking_idle_slot_exits,
        m.blocking_slow_exits,
        m.long_handoffs
    );
}

/// An echo server whose connection tasks end at EOF.
fn rt_spawn_echo_server(l: TcpListener) {
    handoff::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            handoff::spawn(async move {
                let mut b = [0u8; 64];
                while let Ok(k) = s.read(&mut b).await {
                    if k == 0 || s.write_all(&b[..k]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
}

#[test]
fn stress_blocking_storm() {
    isolated("stress_blocking_storm", 120, &[], storm);
}

fn inside() {
    let n = if under_valgrind() {
        300
    } else {
        scale(3_000, 30_000)
    };
    let mut rng = XorShift::new(seed("stress_spawn_and_wake_inside_blocking"));
    let rt = Runtime::builder()
        .worker_threads(2)
        .max_threads(64)
        .build()
        .unwrap();
    let _w = watch(rt.handle());
    // Per unit: a parent (calls blocking), a child (spawned inside the
    // closure), a waiter (woken from inside the closure) and a victim
    // (aborted from inside the closure).
    let parents = Ledger::new(n);
    let children = Ledger::new(n);
    let waiters = Ledger::new(n);
    let victims = Ledger::new(n);
    let mut handles = Vec::new();
    for i in 0..n {
        let (tx, rx) = oneshot::channel::<u64>();
        let wg = waiters.guard(i);
        let waiter = rt.spawn(async move {
            let wg = wg;
            let v = rx.await.expect("the parent's closure sends");
            assert_eq!(v, i as u64);
            wg.done();
        });
        let vg = victims.guard(i);
        let victim = rt.spawn(async move {
            let vg = vg;
            std::future::pending::<()>().await;
            vg.done();
        });
        let cg = children.guard(i);
        let pg = parents.guard(i);
        // Some closures last long enough to be retaken (their spawns and
        // wakes then come from a thread with no slot at all).
        let sleep_us = if rng.below(4) == 0 { rng.below(300) } else { 0 };
        let victim_abort = victim.abort_handle();
        let parent = rt.spawn(async move {
            let pg = pg;
            let child = handoff::blocking(move || {
                let child = handoff::spawn(async move {
                    let cg = cg;
                    handoff::yield_now().await;
                    cg.done();
                    i
                });
                tx.send(i as u64).unwrap();
                if sleep_us > 0 {
                    std::thread::sleep(Duration::from_micros(sleep_us));
                }
                victim_abort.abort();
                child
            })
            .await;
            assert_eq!(child.await.unwrap(), i);
            pg.done();
        });
        handles.push((i, parent, waiter, victim));
    }
    let (p2, w2, v2) = (parents.clone(), waiters.clone(), victims.clone());
    rt.block_on(async move {
        for (i, p, w, v) in handles {
            let r = p.await;
            p2.joined(i, &r);
            let r = w.await;
            w2.joined(i, &r);
            let r = v.await;
            assert!(r.as_ref().unwrap_err().is_cancelled());
            v2.joined(i, &r);
        }
    });
    let m = rt.metrics();
    drop(rt);
    assert_eq!(parents.check(n, true).0, n);
    assert_eq!(waiters.check(n, true).0, n);
    assert_eq!(victims.check(n, true).1, n, "every victim cancelled");
    // Children were awaited by their parents (not recorded as joined).
    assert_eq!(children.check(n, false).0, n);
    println!(
        "stress_spawn_and_wake_inside_blocking: {n} units; exits fast/idle/slow {}/{}/{}, retakes {}",
        m.blocking_fast_exits, m.blocking_idle_slot_exits, m.blocking_slow_exits, m.retakes
    );
}

#[test]
fn stress_spawn_and_wake_inside_blocking() {
    isolated("stress_spawn_and_wake_inside_blocking", 120, &[], inside);
}

fn panics_and_aborts() {
    let n = if under_valgrind() {
        300
    } else {
        scale(2_000, 20_000)
    };
    let mut rng = XorShift::new(seed("stress_blocking_panics_and_aborts"));
    let rt = Runtime::builder()
        .worker_threads(2)
        .max_threads(32)
        .build()
        .unwrap();
    let _w = watch(rt.handle());
    let ledger = Ledger::new(n);
    let mut handles = Vec::new();
    let mut will_panic = vec![false; n];
    for (i, panics) in will_panic.iter_mut().enumerate() {
        // Calls long enough to be retaken (slow exits) and short ones; a
        // third panic inside the closure (after the slot may be gone).
        let us = if rng.below(2) == 0 { rng.below(400) } else { 0 };
        *panics = rng.below(3) == 0;
        let (p, is_long) = (*panics, rng.below(4) == 0);
        let g = ledger.guard(i);
        let h = rt.spawn(async move {
            let g = g;
            let f = move || {
                if us > 0 {
                    std::thread::sleep(Duration::from_micros(us));
                }
                if p {
                    panic!("on purpose: a blocking closure panics");
                }
                us
            };
            let got = if is_long {
                handoff::blocking_long(f).await
            } else {
                handoff::blocking(f).await
            };
            assert_eq!(got, us);
            g.done();
        });
        if rng.below(8) == 0 {
            h.abort();
        }
        handles.push(h);
    }
    let l2 = ledger.clone();
    let (panicked, cancelled) = rt.block_on(async move {
        let (mut panicked, mut cancelled) = (0, 0);
        for (i, h) in handles.into_iter().enumerate() {
            match h.await {
                Err(e) if e.is_panic() => {
                    assert!(
                        will_panic[i],
                        "task {i} panicked without a panicking closure"
                    );
                    panicked += 1;
                }
                r => {
                    if r.as_ref().is_err_and(|e| e.is_cancelled()) {
                        cancelled += 1;
                    }
                    l2.joined(i, &r);
                }
            }
        }
        (panicked, cancelled)
    });
    // Every slot comes back to the idle list: no slot is lost by a panic on
    // any exit path.
    let slots = rt.metrics().slots;
    stress_common::wait_until(30, "every slot back on the idle list", || {
        rt.metrics().slots_idle == slots
    });
    let m = rt.metrics();
    // And the runtime still uses both slots.
    let sum = rt.block_on(async {
        let hs: Vec<_> = (0..200u64)
            .map(|i| handoff::spawn(async move { handoff::blocking(move || i).await }))
            .collect();
        let mut s = 0;
        for h in hs {
            s += h.await.unwrap();
        }
        s
    });
    assert_eq!(sum, (0..200).sum::<u64>());
    drop(rt);
    ledger.wait_all_dropped(30);
    assert_eq!(ledger.created(), n);
    assert_eq!(ledger.dropped(), n, "every future dropped once");
    assert!(panicked > 0);
    println!(
        "stress_blocking_panics_and_aborts: {n} calls, {panicked} panicked, {cancelled} cancelled; \
         exits fast/idle/slow {}/{}/{}, retakes {}",
        m.blocking_fast_exits, m.blocking_idle_slot_exits, m.blocking_slow_exits, m.retakes
    );
}

#[test]
fn stress_blocking_panics_and_aborts() {
    isolated(
        "stress_blocking_panics_and_aborts",
        120,
        &[],
        panics_and_aborts,
    );
}
