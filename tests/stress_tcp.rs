//! Stress: TCP connections opened and closed in churn over loopback, 2 000
//! by default, 10 000 with `STRESS=long`. 64 client tasks connect, send 8
//! bytes, read the echo and close (or close at once without a word, 1 in 8);
//! the server spawns a task per connection that echoes and reads to EOF.
//!
//! Ends with: every connection accepted and served exactly once, every
//! server and client task's future dropped exactly once, the accept loop
//! cancelled, and the reactor's registrations all gone (fd count back).
mod stress_common;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use handoff::net::{TcpListener, TcpStream};
use handoff::Runtime;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use stress_common::{isolated, scale, seed, under_valgrind, watch, Ledger, XorShift};

/// Client tasks connecting at once (keeps the fd count and the accept
/// backlog bounded: the default backlog is 128 or more).
const CLIENTS: usize = 64;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn scenario() {
    let n = if under_valgrind() {
        200
    } else {
        scale(2_000, 10_000)
    };
    let seed = seed("stress_tcp");
    let rt = Runtime::builder().worker_threads(4).build().unwrap();
    let _w = watch(rt.handle());
    let fds_before = open_fds();
    let servers = Ledger::new(n);
    let clients = Ledger::new(CLIENTS);
    let echoed = Arc::new(AtomicUsize::new(0));

    let (served_tx, served_rx) = mpsc::channel();
    let (servers2, echoed2) = (servers.clone(), echoed.clone());
    let (addr, acceptor) = rt.block_on(async move {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let acceptor = handoff::spawn(async move {
            let mut i = 0;
            loop {
                let (mut s, _) = match l.accept().await {
                    Ok(c) => c,
                    Err(e) => panic!("accept failed: {e}"),
                };
                assert!(i < n, "more connections accepted than clients made");
                let g = servers2.guard(i);
                let echoed = echoed2.clone();
                let h = handoff::spawn(async move {
                    let g = g;
                    let mut buf = [0u8; 8];
                    if s.read_exact(&mut buf).await.is_ok() {
                        s.write_all(&buf).await.unwrap();
                        echoed.fetch_add(1, Ordering::Relaxed);
                        // Wait for the client's close.
                        let mut rest = [0u8; 16];
                        while s.read(&mut rest).await.is_ok_and(|k| k > 0) {}
                    }
                    g.done();
                });
                served_tx.send((i, h)).unwrap();
                i += 1;
            }
        });
        (addr, acceptor)
    });

    let next = Arc::new(AtomicUsize::new(0));
    let silent = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let g = clients.guard(c);
            let (next, silent) = (next.clone(), silent.clone());
            rt.spawn(async move {
                let g = g;
                let mut rng = XorShift::new(seed ^ ((c as u64 + 1) * 0x9E37_79B9));
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= n {
                        break;
                    }
                    let mut s = TcpStream::connect(addr).await.unwrap();
                    if rng.below(8) == 0 {
                        silent.fetch_add(1, Ordering::Relaxed);
                        continue; // close without a word
                    }
                    let msg = (k as u64).to_le_bytes();
                    s.write_all(&msg).await.unwrap();
                    let mut back = [0u8; 8];
                    s.read_exact(&mut back).await.unwrap();
                    assert_eq!(back, msg);
                }
                g.done();
            })
        })
        .collect();
    let clients2 = clients.clone();
    rt.block_on(async move {
        for (c, h) in handles.into_iter().enumerate() {
            let r = h.await;
            clients2.joined(c, &r);
        }
    });
    // Every connection made was accepted and its server task ends (the
    // client closed it).
    let served: Vec<_> = (0..n)
        .map(|_| {
            served_rx
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("a connection was never accepted")
        })
        .collect();
    let servers2 = servers.clone();
    rt.block_on(async move {
        for (i, h) in served {
            let r = h.await;
            servers2.joined(i, &r);
        }
        acceptor.abort();
        assert!(acceptor.await.unwrap_err().is_cancelled());
    });
    let m = rt.metrics();
    let (sc, _) = servers.check(n, true);
    let (cc, _) = clients.check(CLIENTS, true);
    assert_eq!(sc, n, "every server task completed");
    assert_eq!(cc, CLIENTS, "every client task completed");
    let silent = silent.load(Ordering::Relaxed);
    assert_eq!(echoed.load(Ordering::Relaxed) + silent, n);
    // The listener and every stream were closed (deregistered): the only
    // fds left are those that existed before (give stragglers a moment).
    stress_common::wait_until(10, "fds closed after churn", || open_fds() <= fds_before);
    drop(rt);
    println!(
        "stress_tcp: {n} connections ({silent} closed silently), polls={} steals={}",
        m.polls, m.steals
    );
}

#[test]
fn stress_tcp_connection_churn() {
    isolated("stress_tcp_connection_churn", 120, &[], scenario);
}
