//! Faults: bugs in the user's code that the runtime must survive.
//!
//! - a waker whose `wake` panics, handed to a handoff future (a join handle,
//!   a socket read, a timer) by a manual poll, so the runtime's own thread
//!   (a worker completing a task, the reactor firing an event or a timer)
//!   is the one that calls it;
//! - a task future whose `Drop` panics: after it completes, when it is
//!   aborted, and at runtime shutdown;
//! - a value returned by a `blocking` / `spawn_blocking` closure whose `Drop`
//!   panics: dropped by the task, by a dropped join handle, by an abort
//!   while the call runs.
//!
//! After each, the runtime must keep working: [`assert_runtime_works`]
//! runs tasks, blocking calls, timers and a TCP echo on it.
mod stress_common;

use futures::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use handoff::net::{TcpListener, TcpStream};
use handoff::Runtime;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;
use stress_common::{wait_until, watchdog};

/// A waker that panics when woken (and counts the attempts).
struct PanickingWaker(AtomicUsize);

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("fault_panics: this waker panics on purpose");
    }
}

fn panicking_waker() -> (Arc<PanickingWaker>, Waker) {
    let w = Arc::new(PanickingWaker(AtomicUsize::new(0)));
    (w.clone(), Waker::from(w))
}

/// A value whose `Drop` panics (and counts the drops).
struct PanicOnDrop(Arc<AtomicUsize>);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        if !std::thread::panicking() {
            panic!("fault_panics: this Drop panics on purpose");
        }
    }
}

/// A future that is ready at once but keeps a `PanicOnDrop` in itself, so
/// the panic happens when the runtime drops the future after completion.
struct ReadyButPanicsOnDrop {
    _p: PanicOnDrop,
}

impl Future for ReadyButPanicsOnDrop {
    type Output = u32;
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u32> {
        Poll::Ready(7)
    }
}

/// A future that never completes and panics when dropped.
struct PendingPanicsOnDrop {
    _p: PanicOnDrop,
}

impl Future for PendingPanicsOnDrop {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

fn rt() -> Runtime {
    Runtime::builder()
        .worker_threads(2)
        .max_threads(32)
        .build()
        .unwrap()
}

/// Runs a mix of work on `rt` and checks every piece of it.
fn assert_runtime_works(rt: &Runtime) {
    let out = rt.block_on(async {
        let hs: Vec<_> = (0..100u64)
            .map(|i| {
                handoff::spawn(async move {
                    handoff::yield_now().await;
                    if i % 10 < 1 {
                        handoff::blocking(move || i).await
                    } else if i % 10 == 1 {
                        handoff::time::sleep(Duration::from_micros(300)).await;
                        i
                    } else {
                        i
                    }
                })
            })
            .collect();
        let mut sum = 0;
        for h in hs {
            sum += h.await.unwrap();
        }
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = handoff::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut b = [0u8; 5];
            s.read_exact(&mut b).await.unwrap();
            s.write_all(&b).await.unwrap();
        });
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"hello").await.unwrap();
        let mut b = [0u8; 5];
        c.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"hello");
        server.await.unwrap();
        let sb = handoff::spawn_blocking(|| 5u64).await.unwrap();
        sum + sb
    });
    assert_eq!(
        out,
        (0..100).sum::<u64>() + 5,
        "the runtime still runs everything"
    );
}

#[test]
fn fault_panicking_waker_on_join_handle() {
    watchdog(30, "panicking waker on a join handle", || {
        let rt = rt();
        let _w = stress_common::watch(rt.handle());
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        let mut h = rt.spawn(async move {
            rx.await.unwrap();
            11
        });
        let (count, waker) = panicking_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut h).poll(&mut cx).is_pending());
        // The task completes on a worker, which wakes the join waker.
        tx.send(()).unwrap();
        wait_until(30, "the join waker was called", || {
            count.0.load(Ordering::SeqCst) > 0
        });
        assert_runtime_works(&rt);
        // The output is still there for the handle.
        assert_eq!(rt.block_on(h).unwrap(), 11);
        assert_runtime_works(&rt);
    });
}

/// Bug pinned: the reactor's turn called wakers bare, so a panicking waker
/// unwound the thread driving the reactor (a worker, with its slot: the
/// runtime hung; or `block_on`'s caller) and dropped the turn's other wakers
/// unwoken.
#[test]
fn bug_reactor_turn_unwinds_on_a_panicking_waker_socket() {
    watchdog(30, "panicking waker on a socket read", || {
        let rt = rt();
        let _w = stress_common::watch(rt.handle());
        let (mut server_side, mut client) = rt.block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
            let (s, _) = l.accept().await.unwrap();
            (s, c)
        });
        let (count, waker) = panicking_waker();
        let mut cx = Context::from_waker(&waker);
        let mut buf = [0u8; 4];
        {
            let _enter = rt.handle().enter();
            assert!(Pin::new(&mut client)
                .poll_read(&mut cx, &mut buf)
                .is_pending());
        }
        // The reactor, on whichever runtime thread polls it, fires the waker.
        rt.block_on(async { server_side.write_all(b"ping").await.unwrap() });
        wait_until(30, "the read waker was called", || {
            count.0.load(Ordering::SeqCst) > 0
        });
        assert_runtime_works(&rt);
        // The socket still works.
        rt.block_on(async {
            client.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"ping");
        });
    });
}

/// Same bug, through a timer the reactor fires.
#[test]
fn bug_reactor_turn_unwinds_on_a_panicking_waker_timer() {
    watchdog(30, "panicking waker on a timer", || {
        let rt = rt();
        let _w = stress_common::watch(rt.handle());
        let (count, waker) = panicking_waker();
        let mut cx = Context::from_waker(&waker);
        let mut sleep = {
            let _enter = rt.handle().enter();
            let mut s = Box::pin(handoff::time::sleep(Duration::from_millis(100)));
            assert!(s.as_mut().poll(&mut cx).is_pending());
            s
        };
        // Keep the runtime's threads turning the reactor until it fires.
        rt.block_on(async {
            for _ in 0..2000 {
                if count.0.load(Ordering::SeqCst) > 0 {
                    break;
                }
                handoff::time::sleep(Duration::from_millis(1)).await;
            }
        });
        assert!(
            count.0.load(Ordering::SeqCst) > 0,
            "the timer fired its waker"
        );
        assert_runtime_works(&rt);
        let noop = futures::task::noop_waker();
        assert!(sleep
            .as_mut()
            .poll(&mut Context::from_waker(&noop))
            .is_ready());
    });
}

#[test]
fn fault_drop_panics_after_completion() {
    watchdog(
        30,
        "a task future whose Drop panics after completion",
        || {
            let rt = rt();
            let _w = stress_common::watch(rt.handle());
            let drops = Arc::new(AtomicUsize::new(0));
            // The panic happens when the runtime drops the completed future.
            let h = rt.spawn(ReadyButPanicsOnDrop {
                _p: PanicOnDrop(drops.clone()),
            });
            match rt.block_on(h) {
                Ok(v) => assert_eq!(v, 7),
                Err(e) => assert!(e.is_panic(), "{e:?}"),
            }
            // And when an async block drops a local at its end (inside poll).
            let d2 = drops.clone();
            let h = rt.spawn(async move {
                let _p = PanicOnDrop(d2);
                handoff::yield_now().await;
                3
            });
            assert!(rt.block_on(h).unwrap_err().is_panic());
            assert_eq!(drops.load(Ordering::SeqCst), 2, "each dropped once");
            assert_runtime_works(&rt);
        },
    );
}

#[test]
fn fault_drop_panics_on_abort() {
    watchdog(30, "a task future whose Drop panics on abort", || {
        let rt = rt();
        let _w = stress_common::watch(rt.handle());
        let drops = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..8)
            .map(|_| {
                rt.spawn(PendingPanicsOnDrop {
                    _p: PanicOnDrop(drops.clone()),
                })
            })
            .collect();
        // Abort from outside the runtime and from inside a task.
        for (i, h) in hs.iter().enumerate() {
            if i & 1 == 0 {
                h.abort();
            }
        }
        let aborts: Vec<_> = hs.iter().map(|h| h.abort_handle()).collect();
        rt.block_on(async move {
            handoff::spawn(async move { aborts.iter().for_each(|a| a.abort()) })
                .await
                .unwrap()
        });
        for h in hs {
            let e = rt.block_on(h).unwrap_err();
            assert!(e.is_cancelled() || e.is_panic(), "{e:?}");
        }
        assert_eq!(drops.load(Ordering::SeqCst), 8, "each dropped once");
        assert_runtime_works(&rt);
    });
}

#[test]
fn fault_drop_panics_at_shutdown() {
    watchdog(30, "task futures whose Drop panics at shutdown", || {
        let drops = Arc::new(AtomicUsize::new(0));
        for round in 0..4 {
            let rt = rt();
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    rt.spawn(PendingPanicsOnDrop {
                        _p: PanicOnDrop(drops.clone()),
                    })
                })
                .collect();
            // Let them all be polled once.
            rt.block_on(async {
                for _ in 0..10 {
                    handoff::yield_now().await;
                }
            });
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                if round & 1 == 0 {
                    drop(rt);
                } else {
                    rt.shutdown_timeout(Duration::from_secs(5));
                }
            }));
            assert!(
                r.is_ok(),
                "a task's Drop panic escaped the runtime's shutdown"
            );
            for h in hs {
                let e = futures::executor::block_on(h).unwrap_err();
                assert!(e.is_cancelled() || e.is_panic(), "{e:?}");
            }
        }
        assert_eq!(drops.load(Ordering::SeqCst), 32, "each dropped once");
        // A fresh runtime in the same process works.
        assert_runtime_works(&rt());
    });
}

#[test]
fn fault_blocking_result_drop_panics() {
    watchdog(30, "a blocking closure's result whose Drop panics", || {
        let rt = rt();
        let _w = stress_common::watch(rt.handle());
        let drops = Arc::new(AtomicUsize::new(0));

        // 1. The task drops the result: the task panics, nothing else.
        let d = drops.clone();
        let h = rt.spawn(async move {
            let v = handoff::blocking(move || PanicOnDrop(d)).await;
            drop(v);
        });
        assert!(rt.block_on(h).unwrap_err().is_panic());

        // 2. spawn_blocking's output, its handle dropped after completion
        // (the handle drops the output) ...
        let d = drops.clone();
        let (tx, rx) = mpsc::channel();
        let h = rt.spawn_blocking(move || {
            let p = PanicOnDrop(d);
            tx.send(()).unwrap();
            p
        });
        rx.recv_timeout(Duration::from_secs(30)).unwrap();
        wait_until(30, "the job finished", || h.is_finished());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(h)));
        if r.is_err() {
            println!("fault_panics: dropping a JoinHandle re-raised its output's Drop panic");
        }
        // ... and before completion (the pool thread drops it).
        let d = drops.clone();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let h = rt.spawn_blocking(move || {
            go_rx.recv().unwrap();
            PanicOnDrop(d)
        });
        drop(h);
        go_tx.send(()).unwrap();
        wait_until(30, "the pool dropped the output", || {
            drops.load(Ordering::SeqCst) == 3
        });

        // 3. Abort while the blocking call runs: the output is dropped with
        // the task (its future, or its stored output).
        let d = drops.clone();
        let (in_tx, in_rx) = mpsc::channel::<()>();
        let (out_tx, out_rx) = mpsc::channel::<()>();
        let h = rt.spawn(async move {
            let v = handoff::blocking(move || {
                in_tx.send(()).unwrap();
                out_rx.recv().unwrap();
                PanicOnDrop(d)
            })
            .await;
            handoff::yield_now().await;
            drop(v);
        });
        in_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        h.abort();
        out_tx.send(()).unwrap();
        let e = rt.block_on(h).unwrap_err();
        assert!(e.is_cancelled() || e.is_panic(), "{e:?}");
        assert_eq!(drops.load(Ordering::SeqCst), 4, "each result dropped once");
        assert_runtime_works(&rt);
    });
}
