//! Faults: descriptors run out, peers reset connections.
//!
//! - `fault_accept_emfile_recovers`: in a child process (the limit is
//!   process-wide), `RLIMIT_NOFILE` is lowered so `accept` fails with
//!   `EMFILE` while connections wait in the backlog; the server frees the
//!   descriptors it holds and accepts the rest: every client is served.
//!   Then with no descriptor left, `bind`, `connect` and `fs::read` fail
//!   with `EMFILE` (errors, not panics) while tasks, blocking calls and
//!   timers keep working.
//! - `fault_peer_reset_mid_write`: peers that close with `SO_LINGER 0` (an
//!   RST) while the server writes or reads: the server's call returns an
//!   `io::Error` (never a panic) and the runtime keeps serving.
mod stress_common;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use handoff::net::{TcpListener, TcpStream};
use handoff::Runtime;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use stress_common::{isolated, watch, watchdog};

/// The smallest descriptor limit that leaves exactly `free` numbers unused
/// below it (an inherited descriptor may sit far above the others, so "the
/// highest open one plus a few" can leave many holes).
fn limit_leaving(free: usize) -> u64 {
    let open: std::collections::HashSet<i32> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .collect();
    let (mut n, mut left) = (0i32, free);
    while left > 0 {
        if !open.contains(&n) {
            left -= 1;
        }
        n += 1;
    }
    n as u64
}

fn set_nofile(soft: u64) -> libc::rlimit {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `old` is a valid rlimit to write into.
    let r = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) };
    assert_eq!(r, 0, "getrlimit: {}", std::io::Error::last_os_error());
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: old.rlim_max,
    };
    // SAFETY: `new` is a valid rlimit; lowering the soft limit needs no privilege.
    let r = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) };
    assert_eq!(r, 0, "setrlimit: {}", std::io::Error::last_os_error());
    old
}

/// Runs a mix of work on `rt` and checks it.
fn assert_runtime_works(rt: &Runtime) {
    let sum = rt.block_on(async {
        let hs: Vec<_> = (0..50u64)
            .map(|i| handoff::spawn(async move { handoff::blocking(move || i).await }))
            .collect();
        let mut s = 0;
        for h in hs {
            s += h.await.unwrap();
        }
        handoff::time::sleep(Duration::from_millis(1)).await;
        s
    });
    assert_eq!(sum, (0..50).sum::<u64>());
}

const CLIENTS: usize = 40;
/// Descriptor numbers left free for the server under the lowered limit.
const HEADROOM: usize = 4;

fn emfile_scenario() {
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    let _w = watch(rt.handle());
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    // The clients connect (the kernel completes them into the backlog) and
    // send one byte each, all before the limit is lowered.
    let mut clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            c.write_all(&[i as u8]).unwrap();
            c
        })
        .collect();
    let old = set_nofile(limit_leaving(HEADROOM));

    let emfiles = Arc::new(AtomicUsize::new(0));
    let e2 = emfiles.clone();
    let served = rt.block_on(async move {
        handoff::spawn(async move {
            let mut held: Vec<TcpStream> = Vec::new();
            let mut served = 0;
            // Serves (echoes one byte) and closes what the server holds.
            async fn serve(held: &mut Vec<TcpStream>) -> usize {
                let n = held.len();
                for mut s in held.drain(..) {
                    let mut b = [0u8; 1];
                    s.read_exact(&mut b).await.unwrap();
                    s.write_all(&b).await.unwrap();
                }
                n
            }
            while served + held.len() < CLIENTS {
                match listener.accept().await {
                    Ok((s, _)) => held.push(s),
                    Err(e) if e.raw_os_error() == Some(libc::EMFILE) => {
                        e2.fetch_add(1, Ordering::Relaxed);
                        assert!(!held.is_empty(), "EMFILE with nothing held to free");
                        served += serve(&mut held).await;
                    }
                    Err(e) => panic!("accept: unexpected error {e}"),
                }
            }
            served + serve(&mut held).await
        })
        .await
        .unwrap()
    });
    assert_eq!(served, CLIENTS);
    for (i, c) in clients.iter_mut().enumerate() {
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        assert_eq!(b[0], i as u8, "client {i} got its byte back");
    }
    let emfiles = emfiles.load(Ordering::Relaxed);
    assert!(
        emfiles > 0,
        "accept never failed with EMFILE: the limit was not reached"
    );
    drop(clients);
    // No descriptor left at all: every call that needs one fails with
    // EMFILE (an error, not a panic) and the rest of the runtime works.
    set_nofile(limit_leaving(0));
    let emfile = |r: std::io::Result<()>, what: &str| {
        let e = r.expect_err(what);
        assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{what}: {e}");
    };
    rt.block_on(async {
        emfile(TcpListener::bind("127.0.0.1:0").await.map(drop), "bind");
        emfile(TcpStream::connect(addr).await.map(drop), "connect");
        emfile(
            handoff::fs::read("/proc/self/stat").await.map(drop),
            "fs::read",
        );
    });
    assert_runtime_works(&rt);
    set_nofile(old.rlim_cur);
    assert_runtime_works(&rt);
    println!(
        "fault_accept_emfile_recovers: {CLIENTS} clients served through {emfiles} EMFILE errors"
    );
}

#[test]
fn fault_accept_emfile_recovers() {
    if stress_common::under_valgrind() {
        return; // changes a process-wide limit: needs its own process
    }
    isolated("fault_accept_emfile_recovers", 60, &[], emfile_scenario);
}

/// Closes `s` with an RST: `SO_LINGER` on with a zero timeout.
fn reset(s: std::net::TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a valid `linger` of the right size.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(
        r,
        0,
        "setsockopt(SO_LINGER): {}",
        std::io::Error::last_os_error()
    );
    drop(s);
}

#[test]
fn fault_peer_reset_mid_write() {
    watchdog(60, "peers reset mid-write", || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        let _w = watch(rt.handle());
        const PEERS: usize = 16;
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = rt.spawn(async move {
            let mut tasks = Vec::new();
            for i in 0..PEERS {
                let (mut s, _) = listener.accept().await.unwrap();
                tasks.push(handoff::spawn(async move {
                    if i % 4 == 3 {
                        // A reader whose peer resets: an error or EOF.
                        let mut b = [0u8; 1024];
                        loop {
                            match s.read(&mut b).await {
                                Ok(0) => return Ok(0usize),
                                Ok(_) => {}
                                Err(e) => return Err(e),
                            }
                        }
                    }
                    // A writer: writes until the reset surfaces as an error.
                    let chunk = vec![0xabu8; 64 * 1024];
                    let mut total = 0usize;
                    loop {
                        match s.write(&chunk).await {
                            Ok(n) => total += n,
                            Err(e) => {
                                assert!(total > 0, "the peer read something first");
                                return Err(e);
                            }
                        }
                    }
                }));
            }
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        });
        for i in 0..PEERS {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            if i % 4 == 3 {
                c.write_all(b"some data").unwrap();
            } else {
                // Read part of the stream, then reset with data in flight.
                let mut b = vec![0u8; 1 + i * 1000];
                c.read_exact(&mut b).unwrap();
            }
            reset(c);
        }
        let results = rt.block_on(server).unwrap();
        let mut kinds = Vec::new();
        for (i, r) in results.iter().enumerate() {
            match r {
                Err(e) => kinds.push(e.kind()),
                Ok(0) if i % 4 == 3 => kinds.push(std::io::ErrorKind::UnexpectedEof),
                Ok(n) => panic!("peer {i}: a writer ended without an error after {n}"),
            }
        }
        for (i, k) in kinds.iter().enumerate() {
            if i % 4 != 3 {
                assert!(
                    matches!(
                        k,
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                    ),
                    "writer {i}: {k:?}"
                );
            }
        }
        assert_runtime_works(&rt);
        // The server still accepts and serves.
        rt.block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let a = l.local_addr().unwrap();
            let srv = handoff::spawn(async move {
                let (mut s, _) = l.accept().await.unwrap();
                s.write_all(b"ok").await.unwrap();
            });
            let mut c = TcpStream::connect(a).await.unwrap();
            let mut b = [0u8; 2];
            c.read_exact(&mut b).await.unwrap();
            assert_eq!(&b, b"ok");
            srv.await.unwrap();
        });
        println!("fault_peer_reset_mid_write: {kinds:?}");
    });
}
