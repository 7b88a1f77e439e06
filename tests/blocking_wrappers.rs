//! Issue 4, behaviour 12: `handoff::fs` and `handoff::net::lookup_host`, on
//! real files in a fresh temp dir, run on worker threads (each call is
//! counted as a bridge exit, so none of them ran anywhere else).
mod blocking_common;

use std::io::SeekFrom;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use blocking_common::{watchdog, TempDir};
use futures::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use handoff::fs::{self, File};
use handoff::Runtime;

fn exits(m: &handoff::Metrics) -> u64 {
    m.blocking_fast_exits + m.blocking_idle_slot_exits + m.blocking_slow_exits
}

#[test]
fn fs_functions_and_file_work_through_the_bridge() {
    watchdog(60, "fs", || {
        let dir = TempDir::new("fs");
        let root = dir.0.clone();
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        let before = rt.metrics();
        rt.block_on(rt.spawn(async move {
            let sub = root.join("a/b");
            fs::create_dir_all(&sub).await?;
            assert!(fs::metadata(&sub).await?.is_dir());

            let p = sub.join("one.txt");
            fs::write(&p, "hello, handoff").await?;
            assert_eq!(fs::read(&p).await?, b"hello, handoff");
            assert_eq!(fs::read_to_string(&p).await?, "hello, handoff");
            assert_eq!(fs::metadata(&p).await?.len(), 14);
            let q = sub.join("two.txt");
            fs::rename(&p, &q).await?;
            assert_eq!(
                fs::read(&p).await.unwrap_err().kind(),
                std::io::ErrorKind::NotFound
            );

            // File: every inherent operation.
            let mut f = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(root.join("file.bin"))
                .await?;
            assert_eq!(f.write(b"0123").await?, 4);
            f.write_all(b"456789").await?;
            f.sync_data().await?;
            f.sync_all().await?;
            assert_eq!(f.metadata().await?.len(), 10);
            assert_eq!(f.seek(SeekFrom::Start(2)).await?, 2);
            let mut buf = [0u8; 3];
            assert_eq!(f.read(&mut buf).await?, 3);
            assert_eq!(&buf, b"234");
            assert_eq!(f.write_at(b"XY", 8).await?, 2);
            assert_eq!(f.read_at(&mut buf, 7).await?, 3);
            assert_eq!(&buf, b"7XY");
            assert_eq!(f.pread(&mut buf, 0).await?, 3);
            assert_eq!(&buf, b"012");
            f.set_len(4).await?;
            assert_eq!(f.metadata().await?.len(), 4);
            drop(f);

            // The futures::io traits.
            let mut f = File::create(root.join("io.txt")).await?;
            AsyncWriteExt::write_all(&mut f, b"line one\nline two\n").await?;
            f.close().await?;
            let mut f = File::open(root.join("io.txt")).await?;
            AsyncSeekExt::seek(&mut f, SeekFrom::Start(5)).await?;
            let mut text = String::new();
            AsyncReadExt::read_to_string(&mut f, &mut text).await?;
            assert_eq!(text, "one\nline two\n");

            let mut f = File::open(q.clone()).await?;
            let mut all = Vec::new();
            f.read_to_end(&mut all).await?;
            assert_eq!(all, b"hello, handoff");
            fs::remove_file(&q).await?;
            assert!(fs::metadata(&q).await.is_err());

            // The rest of the tokio::fs-like surface.
            assert_eq!(
                fs::copy(root.join("io.txt"), root.join("copy.txt")).await?,
                18
            );
            fs::hard_link(root.join("copy.txt"), root.join("link.txt")).await?;
            assert!(fs::try_exists(root.join("link.txt")).await?);
            fs::create_dir(root.join("empty")).await?;
            let mut names = Vec::new();
            let mut dir = fs::read_dir(&root).await?;
            while let Some(entry) = dir.next_entry().await? {
                names.push(entry.file_name().into_string().unwrap());
            }
            names.sort();
            assert_eq!(
                names,
                ["a", "copy.txt", "empty", "file.bin", "io.txt", "link.txt"]
            );
            fs::remove_dir(root.join("empty")).await?;
            assert_eq!(
                fs::canonicalize(root.join("a/b/..")).await?,
                fs::canonicalize(root.join("a")).await?
            );
            assert!(fs::symlink_metadata(&root).await?.is_dir());
            fs::remove_dir_all(root.join("a")).await?;
            assert!(!fs::try_exists(root.join("a")).await?);
            std::io::Result::Ok(())
        }))
        .unwrap()
        .unwrap();
        let after = rt.metrics();
        assert!(
            exits(&after) - exits(&before) >= 30,
            "the fs calls ran through the bridge: {} exits",
            exits(&after) - exits(&before)
        );
    });
}

#[test]
fn a_file_read_that_exits_slowly_is_served_by_the_next_poll() {
    watchdog(60, "slow poll_read", || {
        let mut fds = [0; 2];
        // SAFETY: fds is a writable array of two ints.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: pipe2 just returned these two descriptors; we own them.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let mut reader = File::from_std(std::fs::File::from(r));
        let writer = std::fs::File::from(w);

        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let before = rt.metrics();
        let (n, buf, b_saw_exit) = rt
            .block_on(rt.spawn(async move {
                // B writes into the pipe once A's read has its slot retaken,
                // then keeps the only slot busy until A's exit was counted.
                let b = handoff::spawn(async move {
                    use std::io::Write;
                    (&writer).write_all(b"hello").unwrap();
                    let start = Instant::now();
                    while handoff::Handle::current().metrics().blocking_slow_exits
                        == before.blocking_slow_exits
                    {
                        if start.elapsed() > Duration::from_secs(10) {
                            return false;
                        }
                        std::hint::spin_loop();
                    }
                    true
                });
                let mut buf = [0u8; 16];
                let n = AsyncReadExt::read(&mut reader, &mut buf).await.unwrap();
                (n, buf, b.await.unwrap())
            }))
            .unwrap();
        assert!(b_saw_exit, "the read's slow exit was never counted");
        assert_eq!(&buf[..n], b"hello", "the bytes of the slow read were kept");
    });
}

#[test]
fn lookup_host_resolves_through_the_bridge() {
    watchdog(60, "lookup_host", || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        let (tx, rx) = mpsc::channel();
        rt.block_on(rt.spawn(async move {
            let a: Vec<SocketAddr> = handoff::net::lookup_host("localhost:80").await?.collect();
            let b: Vec<SocketAddr> = handoff::net::lookup_host(("localhost", 80))
                .await?
                .collect();
            let c: Vec<SocketAddr> = handoff::net::lookup_host("127.0.0.1:8080").await?.collect();
            let bad = handoff::net::lookup_host("localhost-without-a-port").await;
            tx.send((a, b, c, bad.is_err())).unwrap();
            std::io::Result::Ok(())
        }))
        .unwrap()
        .unwrap();
        let (a, b, c, bad) = rx.recv().unwrap();
        assert!(!a.is_empty(), "localhost resolves");
        assert!(
            a.iter().all(|s| s.port() == 80 && s.ip().is_loopback()),
            "{a:?}"
        );
        assert!(
            b.iter().all(|s| s.port() == 80 && s.ip().is_loopback()),
            "{b:?}"
        );
        assert_eq!(c, ["127.0.0.1:8080".parse::<SocketAddr>().unwrap()]);
        assert!(bad, "a host without a port is an error");
    });
}

#[test]
fn a_file_write_that_exits_slowly_is_reported_once_and_not_repeated() {
    watchdog(60, "slow poll_write", || {
        let mut fds = [0; 2];
        // SAFETY: fds is a writable array of two ints.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: pipe2 just returned these two descriptors; we own them.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let (mut reader, writer) = (std::fs::File::from(r), std::fs::File::from(w));
        // Fill the pipe, so that the next write blocks until it is drained.
        let set_nonblocking = |on: bool| {
            // SAFETY: fcntl on a descriptor we own.
            let flags = unsafe { libc::fcntl(fds[1], libc::F_GETFL) };
            let flags = if on {
                flags | libc::O_NONBLOCK
            } else {
                flags & !libc::O_NONBLOCK
            };
            // SAFETY: as above.
            assert_eq!(unsafe { libc::fcntl(fds[1], libc::F_SETFL, flags) }, 0);
        };
        set_nonblocking(true);
        let mut filled = 0;
        loop {
            use std::io::Write;
            match (&writer).write(&[b'.'; 4096]) {
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("filling the pipe: {e}"),
            }
        }
        set_nonblocking(false);
        let mut writer = File::from_std(writer);

        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let before = rt.metrics();
        let (writer, mut reader, b_saw_exit) = rt
            .block_on(rt.spawn(async move {
                // B drains the pipe once A's write has its slot retaken, then
                // keeps the only slot busy until A's exit was counted.
                let b = handoff::spawn(async move {
                    use std::io::Read;
                    let mut sink = vec![0u8; filled];
                    reader.read_exact(&mut sink).unwrap();
                    assert!(sink.iter().all(|&b| b == b'.'));
                    let start = Instant::now();
                    while handoff::Handle::current().metrics().blocking_slow_exits
                        == before.blocking_slow_exits
                    {
                        if start.elapsed() > Duration::from_secs(10) {
                            return (reader, false);
                        }
                        std::hint::spin_loop();
                    }
                    (reader, true)
                });
                AsyncWriteExt::write_all(&mut writer, b"0123456789")
                    .await
                    .unwrap();
                let (reader, saw) = b.await.unwrap();
                (writer, reader, saw)
            }))
            .unwrap();
        assert!(b_saw_exit, "the write's slow exit was never counted");
        drop(writer);
        let mut rest = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut rest).unwrap();
        assert_eq!(
            rest, b"0123456789",
            "the slow write happened once, reported once"
        );
    });
}
