//! Sockets through the reactor alone (`block_on`, no executor).
mod common;

use common::{raise_nofile, watchdog};
use futures::future::{join, join_all, try_join};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use handoff_reactor::block_on;
use handoff_reactor::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use std::io;
use std::net::Shutdown;
use std::os::fd::AsRawFd;

/// Concurrent connections in the echo tests (the issue asks for 1 000).
const CONNS: usize = 1000;
/// Round trips per connection: several, so readiness is cleared and re-armed.
const ROUNDS: usize = 3;

async fn echo<S: futures::io::AsyncRead + futures::io::AsyncWrite + Unpin>(
    mut s: S,
) -> io::Result<()> {
    let mut buf = [0u8; 64];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        s.write_all(&buf[..n]).await?;
    }
}

async fn client_rounds<S: futures::io::AsyncRead + futures::io::AsyncWrite + Unpin>(
    mut c: S,
    i: usize,
) -> io::Result<()> {
    for r in 0..ROUNDS {
        let msg = format!("conn {i:04} round {r}");
        c.write_all(msg.as_bytes()).await?;
        let mut back = vec![0u8; msg.len()];
        c.read_exact(&mut back).await?;
        assert_eq!(back, msg.as_bytes(), "echo mismatch on connection {i}");
    }
    c.close().await
}

#[test]
fn tcp_echo_1000_concurrent_connections() {
    let _w = watchdog("tcp_echo_1000_concurrent_connections", 60);
    raise_nofile(4 * CONNS as u64);
    block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        let server = async {
            let mut conns = Vec::new();
            for _ in 0..CONNS {
                let (s, _) = l.accept().await?;
                conns.push(echo(s));
            }
            join_all(conns)
                .await
                .into_iter()
                .collect::<io::Result<Vec<_>>>()
        };
        let clients = join_all((0..CONNS).map(|i| async move {
            let c = TcpStream::connect(addr).await?;
            c.set_nodelay(true)?;
            client_rounds(c, i).await
        }));
        let (srv, cl) = join(server, clients).await;
        srv?;
        cl.into_iter().collect::<io::Result<Vec<_>>>()?;
        Ok::<(), io::Error>(())
    })
    .unwrap();
}

#[test]
fn unix_echo_1000_concurrent_connections() {
    let _w = watchdog("unix_echo_1000_concurrent_connections", 60);
    raise_nofile(4 * CONNS as u64);
    let path = std::env::temp_dir().join(format!("handoff-unix-echo-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    block_on(async {
        let l = UnixListener::bind(&path)?;
        let server = async {
            let mut conns = Vec::new();
            for _ in 0..CONNS {
                let (s, _) = l.accept().await?;
                conns.push(echo(s));
            }
            join_all(conns)
                .await
                .into_iter()
                .collect::<io::Result<Vec<_>>>()
        };
        let clients = join_all((0..CONNS).map(|i| {
            let path = path.clone();
            async move { client_rounds(UnixStream::connect(&path).await?, i).await }
        }));
        let (srv, cl) = join(server, clients).await;
        srv?;
        cl.into_iter().collect::<io::Result<Vec<_>>>()?;
        Ok::<(), io::Error>(())
    })
    .unwrap();
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn tcp_half_close_delivers_eof_and_still_allows_reply() {
    let _w = watchdog("tcp_half_close", 30);
    block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let mut c = TcpStream::connect(l.local_addr()?).await?;
        let (mut s, _) = l.accept().await?;
        c.write_all(b"request body").await?;
        c.shutdown(Shutdown::Write)?;
        let mut req = Vec::new();
        s.read_to_end(&mut req).await?; // EOF thanks to the half-close
        assert_eq!(req, b"request body");
        s.write_all(b"reply after peer's FIN").await?;
        s.close().await?;
        let mut reply = Vec::new();
        c.read_to_end(&mut reply).await?;
        assert_eq!(reply, b"reply after peer's FIN");
        Ok::<(), io::Error>(())
    })
    .unwrap();
}

/// A short read clears the read readiness (the socket is drained); when
/// the data and the peer's FIN arrive in one edge, the end of file must
/// still be seen: no further edge comes for it.
#[test]
fn short_read_with_fin_in_the_same_edge_still_sees_eof() {
    let _w = watchdog("short_read_with_fin_in_the_same_edge_still_sees_eof", 30);
    block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        // A plain blocking client: data and FIN are both queued before the
        // server's socket is even registered, so its first edge has both.
        let mut c = std::net::TcpStream::connect(l.local_addr()?)?;
        std::io::Write::write_all(&mut c, b"hello")?;
        c.shutdown(Shutdown::Write)?;
        let (mut s, _) = l.accept().await?;
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        loop {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"hello");
        Ok::<(), io::Error>(())
    })
    .unwrap();
    let _w = watchdog(
        "short_read_with_fin_in_the_same_edge_still_sees_eof (unix)",
        30,
    );
    block_on(async {
        let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
        std::io::Write::write_all(&mut b, b"hi")?;
        b.shutdown(Shutdown::Write)?;
        let mut a = UnixStream::from_std(a)?;
        let mut got = Vec::new();
        a.read_to_end(&mut got).await?;
        assert_eq!(got, b"hi");
        Ok::<(), io::Error>(())
    })
    .unwrap();
}

/// After a short read has cleared the readiness, data that arrives later
/// wakes the reader (a new edge), in both orders of the race.
#[test]
fn short_read_then_later_data_wakes_the_reader() {
    let _w = watchdog("short_read_then_later_data_wakes_the_reader", 30);
    block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let mut c = TcpStream::connect(l.local_addr()?).await?;
        let (mut s, _) = l.accept().await?;
        let mut buf = [0u8; 64];
        for i in 0..100u8 {
            c.write_all(&[i]).await?;
            let n = s.read(&mut buf).await?; // short: 1 of 64
            assert_eq!(&buf[..n], &[i]);
            // The next read starts with the readiness cleared; the write
            // comes after it is pending (join polls the read first).
            let (r, w) = join(s.read(&mut buf), c.write_all(&[i, i])).await;
            w?;
            let n = r?;
            assert!(n >= 1 && buf[..n].iter().all(|&b| b == i));
            if n == 1 {
                assert_eq!(s.read(&mut buf).await?, 1);
            }
        }
        Ok::<(), io::Error>(())
    })
    .unwrap();
}

#[test]
fn split_halves_work_from_two_tasks_at_once() {
    let _w = watchdog("split_halves", 30);
    block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let c = TcpStream::connect(l.local_addr()?).await?;
        let (s, _) = l.accept().await?;
        let (mut r, mut w) = c.into_split();
        // The reader waits first (registers the reader waker), then the
        // writer, on another future, sends enough to need several edges.
        let data: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
        let reader = async {
            let mut got = vec![0u8; data.len()];
            r.read_exact(&mut got).await?;
            Ok::<_, io::Error>(got)
        };
        let writer = async {
            w.write_all(&data).await?;
            w.close().await
        };
        let server = echo(s);
        let ((got, ()), ()) = try_join(try_join(reader, writer), server).await?;
        assert!(got == data, "split-half echo corrupted the stream");
        Ok::<(), io::Error>(())
    })
    .unwrap();
}

#[test]
fn udp_round_trip() {
    let _w = watchdog("udp_round_trip", 30);
    block_on(async {
        let a = UdpSocket::bind("127.0.0.1:0").await?;
        let b = UdpSocket::bind("127.0.0.1:0").await?;
        for i in 0..100u32 {
            a.send_to(&i.to_le_bytes(), b.local_addr()?).await?;
            let mut buf = [0u8; 8];
            let (n, from) = b.recv_from(&mut buf).await?;
            assert_eq!((n, from), (4, a.local_addr()?));
            b.send_to(&buf[..n], from).await?;
            let (n, _) = a.recv_from(&mut buf).await?;
            assert_eq!(u32::from_le_bytes(buf[..n].try_into().unwrap()), i);
        }
        a.connect(b.local_addr()?).await?;
        a.send(b"connected").await?;
        let mut buf = [0u8; 16];
        let (n, _) = b.recv_from(&mut buf).await?;
        assert_eq!(&buf[..n], b"connected");
        Ok::<(), io::Error>(())
    })
    .unwrap();
}

#[test]
fn peer_reset_is_an_error_not_a_panic() {
    let _w = watchdog("peer_reset", 30);
    block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let mut c = TcpStream::connect(l.local_addr()?).await?;
        let (s, _) = l.accept().await?;
        // SO_LINGER with a zero timeout: close sends RST instead of FIN.
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: a valid linger struct of the size we pass.
        let rc = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
        drop(s);
        let mut buf = [0u8; 16];
        let err = c
            .read(&mut buf)
            .await
            .expect_err("a read after RST must fail");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        // Writing to the dead connection is an error too (EPIPE), not a signal.
        let mut failed = false;
        for _ in 0..10 {
            if c.write_all(b"into the void").await.is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed, "writes to a reset connection kept succeeding");
        Ok::<(), io::Error>(())
    })
    .unwrap();
}

#[test]
fn connect_refused_is_an_error() {
    let _w = watchdog("connect_refused", 30);
    block_on(async {
        // Bind then drop to get a port with (almost surely) no listener.
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let err = TcpStream::connect(addr)
            .await
            .expect_err("nobody listens there");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    });
}

/// Several threads run `block_on` on one shared reactor (as executor workers
/// would): only one holds the poller lock at a time, the others park and are
/// woken across threads by the poller that sees their events.
#[test]
fn four_threads_share_one_reactor() {
    let _w = watchdog("four_threads_share_one_reactor", 60);
    let h = handoff_reactor::Handle::new().unwrap();
    let addr = {
        let _g = h.enter();
        let l = block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = l.local_addr().unwrap();
        let h2 = h.clone();
        std::thread::spawn(move || {
            let _g = h2.enter();
            block_on(async {
                let mut conns = Vec::new();
                for _ in 0..4 * 25 {
                    let (s, _) = l.accept().await.unwrap();
                    conns.push(echo(s));
                }
                join_all(conns).await;
            })
        });
        addr
    };
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let h = h.clone();
            std::thread::spawn(move || {
                let _g = h.enter();
                block_on(async {
                    let clients = (0..25).map(|i| async move {
                        let c = TcpStream::connect(addr).await?;
                        client_rounds(c, t * 100 + i).await
                    });
                    join_all(clients)
                        .await
                        .into_iter()
                        .collect::<io::Result<Vec<_>>>()
                })
                .unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// A read on an always-ready socket spends the cooperative budget: inside
/// `coop::budget`, the 129th ready read in one poll returns `Pending` (after
/// waking the task) so other tasks get the thread.
#[test]
fn always_ready_socket_yields_after_the_budget() {
    use futures::io::AsyncRead;
    use std::pin::Pin;
    use std::task::Poll;
    let _w = watchdog("coop_budget", 30);
    block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let mut c = TcpStream::connect(l.local_addr()?).await?;
        let (mut s, _) = l.accept().await?;
        c.write_all(&[1u8; 1000]).await?;
        // One 1000-byte send on loopback is one segment: once its first byte
        // is here, all of it is.
        let mut first = [0u8; 1];
        s.read_exact(&mut first).await?;
        let mut reads = 0usize;
        let pending_after = std::future::poll_fn(|cx| {
            handoff_reactor::coop::budget(|| {
                let mut n = 0;
                loop {
                    let mut b = [0u8; 1];
                    match Pin::new(&mut s).poll_read(cx, &mut b) {
                        Poll::Ready(Ok(1)) => n += 1,
                        Poll::Ready(other) => panic!("unexpected {other:?}"),
                        Poll::Pending => return Poll::Ready(n),
                    }
                }
            })
        })
        .await;
        reads += pending_after;
        assert_eq!(
            reads,
            handoff_reactor::coop::BUDGET as usize,
            "budget not enforced"
        );
        Ok::<(), io::Error>(())
    })
    .unwrap();
}

#[test]
fn unix_half_close_and_async_into_inner() {
    let _w = watchdog("unix_half_close", 30);
    block_on(async {
        let (mut a, mut b) = UnixStream::pair()?;
        a.write_all(b"question").await?;
        a.shutdown(Shutdown::Write)?;
        let mut q = Vec::new();
        b.read_to_end(&mut q).await?;
        assert_eq!(q, b"question");
        b.write_all(b"answer").await?;
        drop(b);
        let mut ans = Vec::new();
        a.read_to_end(&mut ans).await?;
        assert_eq!(ans, b"answer");

        // into_inner deregisters and hands the descriptor back, still usable.
        let (x, y) = std::os::unix::net::UnixStream::pair()?;
        let x = handoff_reactor::net::Async::new(x)?;
        let mut x = x.into_inner()?;
        std::io::Write::write_all(&mut x, b"raw")?;
        let mut y = handoff_reactor::net::Async::new(y)?;
        let mut buf = [0u8; 3];
        y.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"raw");
        Ok::<(), io::Error>(())
    })
    .unwrap();
}
