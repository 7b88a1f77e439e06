//! TCP ping-pong through handoff's reactor alone (`handoff_reactor::block_on`
//! driving one future per socket) versus the same loop hand-written on
//! `mio::Poll`, in one process run.
//!
//! 50 connections, 64-byte messages; each connection does `RTTS` round trips
//! (client writes 64 bytes, server echoes them, client reads them). Both
//! sides of every connection live in the same single-threaded event loop,
//! so the numbers are the cost of the loop itself: epoll, readiness, wakers
//! and the syscalls. Both loops make the same syscalls per round trip (a
//! read that returns data, a read that returns EAGAIN, a write, on each
//! side), as edge-triggered code must.
//!
//! Rounds alternate ours/mio to spread machine noise over both; we print the
//! median and the spread of round trips per second, the mean time per round
//! trip of one connection, and the ratio mio/ours (target: ours no more
//! than 10% slower, i.e. ratio <= 1.10).
use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures::stream::{FuturesUnordered, StreamExt};
use handoff_reactor::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use std::future::Future;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::time::{Duration, Instant};

/// Connections, as the issue asks.
const CONNS: usize = 50;
/// Message size, as the issue asks.
const MSG: usize = 64;
/// Round trips per connection per round: 50k per round, about a second on
/// either loop, so the whole run stays under a minute.
const RTTS: usize = 1000;
/// Rounds per system (odd, for a clean median). The machine is shared and
/// noisy (the profile shows >95% of the time in the kernel's TCP path, the
/// same for both loops), so many short alternating rounds beat a few long.
const ROUNDS: usize = 11;

fn ours_round() -> Duration {
    handoff_reactor::block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let mut pairs = Vec::new();
        for _ in 0..CONNS {
            let c = TcpStream::connect(addr).await.unwrap();
            let (s, _) = l.accept().await.unwrap();
            c.set_nodelay(true).unwrap();
            s.set_nodelay(true).unwrap();
            pairs.push((c, s));
        }
        let start = Instant::now();
        let mut futs: FuturesUnordered<Pin<Box<dyn Future<Output = bool>>>> =
            FuturesUnordered::new();
        for (mut c, mut s) in pairs {
            futs.push(Box::pin(async move {
                let mut buf = [0u8; MSG];
                loop {
                    match s.read_exact(&mut buf).await {
                        Ok(()) => s.write_all(&buf).await.unwrap(),
                        Err(_) => return false, // client gone
                    }
                }
            }));
            futs.push(Box::pin(async move {
                let msg = [7u8; MSG];
                let mut buf = [0u8; MSG];
                for _ in 0..RTTS {
                    c.write_all(&msg).await.unwrap();
                    c.read_exact(&mut buf).await.unwrap();
                }
                true
            }));
        }
        let mut done = 0;
        while let Some(client) = futs.next().await {
            if client {
                done += 1;
                if done == CONNS {
                    break;
                }
            }
        }
        start.elapsed()
    })
}

fn mio_round() -> Duration {
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(1024);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let mut clients = Vec::new();
    let mut servers = Vec::new();
    for i in 0..CONNS {
        let c = std::net::TcpStream::connect(addr).unwrap();
        let (s, _) = l.accept().unwrap();
        for x in [&c, &s] {
            x.set_nodelay(true).unwrap();
            x.set_nonblocking(true).unwrap();
        }
        let mut c = mio::net::TcpStream::from_std(c);
        let mut s = mio::net::TcpStream::from_std(s);
        let both = Interest::READABLE | Interest::WRITABLE;
        poll.registry()
            .register(&mut c, Token(2 * i), both)
            .unwrap();
        poll.registry()
            .register(&mut s, Token(2 * i + 1), both)
            .unwrap();
        clients.push(c);
        servers.push(s);
    }
    let msg = [7u8; MSG];
    let mut got = vec![0usize; CONNS];
    let mut rtts = vec![0usize; CONNS];
    let mut remaining = CONNS;
    let start = Instant::now();
    for c in &mut clients {
        c.write_all(&msg).unwrap();
    }
    let mut buf = [0u8; MSG];
    while remaining > 0 {
        poll.poll(&mut events, None).unwrap();
        for ev in events.iter() {
            if !ev.is_readable() {
                continue;
            }
            let i = ev.token().0 / 2;
            if ev.token().0 % 2 == 1 {
                let s = &mut servers[i];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => s.write_all(&buf[..n]).unwrap(),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("{e}"),
                    }
                }
            } else {
                let c = &mut clients[i];
                loop {
                    match c.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            got[i] += n;
                            while got[i] >= MSG {
                                got[i] -= MSG;
                                rtts[i] += 1;
                                if rtts[i] == RTTS {
                                    remaining -= 1;
                                } else {
                                    c.write_all(&msg).unwrap();
                                }
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        }
    }
    start.elapsed()
}

/// Wakes per measurement of the wake cost.
const WAKES: u32 = 200_000;

/// ns per `Handle::wake` while no thread is blocked in the reactor (the
/// executor's hot path: work submitted while the poller is busy).
fn ours_wake_ns() -> f64 {
    let h = handoff_reactor::Handle::new().unwrap();
    let t = Instant::now();
    for _ in 0..WAKES {
        std::hint::black_box(&h).wake();
    }
    let ns = t.elapsed().as_nanos() as f64 / WAKES as f64;
    // Consume the pending wake so the handle is left as found.
    let _ = h.try_lock_poller().unwrap().turn(None);
    ns
}

/// ns per `mio::Waker::wake` (always an eventfd write).
fn mio_wake_ns() -> f64 {
    let poll = Poll::new().unwrap();
    let waker = mio::Waker::new(poll.registry(), Token(0)).unwrap();
    let t = Instant::now();
    for _ in 0..WAKES {
        std::hint::black_box(&waker).wake().unwrap();
    }
    t.elapsed().as_nanos() as f64 / WAKES as f64
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx]
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let total = (CONNS * RTTS) as f64;
    // Warm-up (page faults, socket buffers, CPU frequency).
    let _ = ours_round();
    let _ = mio_round();
    let mut ours = Vec::new();
    let mut mio = Vec::new();
    let mut paired = Vec::new();
    for r in 0..ROUNDS {
        // Alternate which loop goes first so slow drift favours neither.
        let (o, m) = if r % 2 == 0 {
            let o = total / ours_round().as_secs_f64();
            (o, total / mio_round().as_secs_f64())
        } else {
            let m = total / mio_round().as_secs_f64();
            (total / ours_round().as_secs_f64(), m)
        };
        ours.push(o);
        mio.push(m);
        paired.push(m / o);
    }
    paired.sort_by(|a, b| a.partial_cmp(b).unwrap());
    ours.sort_by(|a, b| a.partial_cmp(b).unwrap());
    mio.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("reactor ping-pong: {CONNS} connections, {MSG}-byte messages, {RTTS} round trips each, {ROUNDS} rounds");
    println!("| loop | median RTT/s | p10 RTT/s | p90 RTT/s | mean µs per RTT (one connection) |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (name, v) in [("handoff reactor", &ours), ("mio::Poll", &mio)] {
        let med = percentile(v, 0.5);
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {:.2} |",
            med,
            percentile(v, 0.1),
            percentile(v, 0.9),
            CONNS as f64 / med * 1e6
        );
    }
    let ratio = percentile(&mio, 0.5) / percentile(&ours, 0.5);
    let pr = percentile(&paired, 0.5);
    println!("ratio mio/ours of median throughputs = {ratio:.3}");
    println!(
        "ratio mio/ours, median of back-to-back pairs = {pr:.3} (p10 {:.3}, p90 {:.3})  (target <= 1.10: {})",
        percentile(&paired, 0.1),
        percentile(&paired, 0.9),
        if pr <= 1.10 { "met" } else { "MISSED" }
    );

    let mut ow = Vec::new();
    let mut mw = Vec::new();
    for _ in 0..ROUNDS {
        ow.push(ours_wake_ns());
        mw.push(mio_wake_ns());
    }
    ow.sort_by(|a, b| a.partial_cmp(b).unwrap());
    mw.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!();
    println!(
        "cross-thread wake while no thread is blocked in epoll ({WAKES} wakes, {ROUNDS} rounds)"
    );
    println!("| wake | median ns | p10 ns | p90 ns |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, v) in [("Handle::wake", &ow), ("mio::Waker::wake", &mw)] {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} |",
            percentile(v, 0.5),
            percentile(v, 0.1),
            percentile(v, 0.9)
        );
    }
    println!(
        "ratio mio/ours = {:.1}",
        percentile(&mw, 0.5) / percentile(&ow, 0.5)
    );
}
