//! Call-site learning through the wrappers: two call sites of one `fs`
//! function (or `File` method) learn apart, because the site is the user's
//! line, not the line inside the wrapper.
//!
//! Each test runs one task on a runtime of one slot. Its slow site makes a
//! call that cannot return before the slot has left it: a helper thread
//! waits for the runtime to count a retake (or a hand-off at entry) and only
//! then feeds the FIFO or pipe the call reads. Its fast site reads something
//! that is always ready. The slow site's first two calls are retaken, which
//! promotes it (`learn.rs`: two retakes in a row); from its third call on it
//! hands its slot off at entry (`long_handoffs` grows by one per call). The
//! fast site's calls, interleaved with those, must keep taking the fast exit
//! and never hand off: before the wrappers were `#[track_caller]`, both
//! sites were the one line inside `fs::read`, and the fast calls were handed
//! off too as soon as the slow ones had promoted it.
mod blocking_common;

use std::future::Future;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use blocking_common::{watchdog, TempDir};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use handoff::fs::{self, File};
use handoff::{Handle, Metrics, Runtime};

/// Rounds of one slow call then [`fast_calls`] fast ones. The slow site is
/// promoted after round 1; the rounds after check that it stays promoted.
/// Below `PROBE_EVERY` (8) promoted calls, so none of them is a probe.
const ROUNDS: usize = 4;

/// Fast calls after the slow call of round `i`: none after the first, so
/// that the first two slow calls are retaken back to back (with one site
/// for both, that alone promotes the fast calls too), then five.
fn fast_calls(i: usize) -> u64 {
    if i == 0 {
        0
    } else {
        5
    }
}

/// Long enough that a fast call (a read of /dev/zero or of a cached file)
/// is not retaken even when the shared machine stalls its thread for a
/// while; a slow call is retaken about this long after it entered.
const RETAKE_AFTER: Duration = Duration::from_millis(100);

/// A test's two call sites, each ONE line of source.
trait Sites: Send + 'static {
    /// One call at the slow site; it returns once the job from
    /// [`Sites::feed`] ran.
    fn slow(&mut self) -> impl Future<Output = ()> + Send + '_;
    /// What lets one slow call return.
    fn feed(&self) -> Box<dyn FnOnce() + Send>;
    /// One call at the fast site.
    fn fast(&mut self) -> impl Future<Output = ()> + Send + '_;
}

/// How the counters moved across one round.
#[derive(Debug, Default)]
struct Round {
    slow_retakes: u64,
    slow_long_handoffs: u64,
    fast_exits: u64,
    fast_fast_exits: u64,
    fast_long_handoffs: u64,
}

fn exits(m: &Metrics) -> u64 {
    m.blocking_fast_exits + m.blocking_idle_slot_exits + m.blocking_slow_exits
}

/// Times the slot left a call: retaken by the monitor, or handed off at entry.
fn slot_left(m: &Metrics) -> u64 {
    m.retakes + m.long_handoffs
}

/// Runs `job` on a helper thread once the runtime has counted a slot leaving
/// a call after `base`. Returns whether it saw that; after 20 s it runs the
/// job anyway (so the call returns and the test fails with a message
/// instead of hanging).
fn feed_after_slot_left(
    handle: Handle,
    base: u64,
    job: Box<dyn FnOnce() + Send>,
) -> JoinHandle<bool> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        // A metric: nothing can announce it, so look every millisecond.
        while slot_left(&handle.metrics()) == base && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let seen = slot_left(&handle.metrics()) > base;
        job();
        seen
    })
}

/// Runs [`ROUNDS`] rounds of `sites` in a task on a one-slot runtime and
/// checks that the slow site was promoted on its own.
fn learn_apart<S: Sites>(what: &'static str, sites: S) {
    watchdog(60, what, move || {
        handoff::set_call_site_learning(true);
        let rt = Runtime::builder()
            .worker_threads(1)
            .retake_after(RETAKE_AFTER)
            .build()
            .unwrap();
        let handle = rt.handle().clone();
        let (rounds, feeders) = rt
            .block_on(rt.spawn(async move {
                let mut sites = sites;
                let (mut rounds, mut feeders) = (Vec::new(), Vec::new());
                for i in 0..ROUNDS {
                    let mut round = Round::default();
                    let before = handle.metrics();
                    let job = sites.feed();
                    feeders.push(feed_after_slot_left(
                        handle.clone(),
                        slot_left(&before),
                        job,
                    ));
                    sites.slow().await;
                    let after = handle.metrics();
                    round.slow_retakes = after.retakes - before.retakes;
                    round.slow_long_handoffs = after.long_handoffs - before.long_handoffs;

                    let before = handle.metrics();
                    for _ in 0..fast_calls(i) {
                        sites.fast().await;
                    }
                    let after = handle.metrics();
                    round.fast_exits = exits(&after) - exits(&before);
                    round.fast_fast_exits = after.blocking_fast_exits - before.blocking_fast_exits;
                    round.fast_long_handoffs = after.long_handoffs - before.long_handoffs;
                    rounds.push(round);
                }
                (rounds, feeders)
            }))
            .unwrap();
        for feeder in feeders {
            assert!(
                feeder.join().unwrap(),
                "{what}: a slow call's slot never left it: {rounds:?}"
            );
        }
        for (i, round) in rounds.iter().enumerate() {
            if i < 2 {
                assert!(
                    round.slow_long_handoffs == 0 && round.slow_retakes >= 1,
                    "{what}: slow call {i} should run with its slot and be retaken: {rounds:?}"
                );
            } else {
                assert_eq!(
                    round.slow_long_handoffs, 1,
                    "{what}: after two retakes the slow site hands off at entry: {rounds:?}"
                );
            }
            assert_eq!(
                round.fast_long_handoffs, 0,
                "{what}: the fast site was handed off: it learnt from the slow site's calls \
                 (one learning site for both): {rounds:?}"
            );
            assert_eq!(
                round.fast_exits,
                fast_calls(i),
                "{what}: every fast call went through the bridge: {rounds:?}"
            );
            // One call in a round may be stalled past RETAKE_AFTER by the
            // shared machine and retaken; that teaches the site +2, and the
            // other calls' fast exits take it back down.
            assert!(
                round.fast_fast_exits >= fast_calls(i).saturating_sub(1),
                "{what}: the fast site's calls kept their slot: {rounds:?}"
            );
        }
    });
}

/// Makes a FIFO at `path`.
fn mkfifo(path: &std::path::Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo: {}", std::io::Error::last_os_error());
}

/// A pipe as (read end, write end).
fn pipe() -> (std::fs::File, std::fs::File) {
    let mut fds = [0; 2];
    // SAFETY: fds is a writable array of two ints.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 just returned these two descriptors; we own them.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    (std::fs::File::from(r), std::fs::File::from(w))
}

/// `fs::read` of a FIFO (open blocks until a writer opens it) and of a
/// small cached file.
struct FsRead {
    _dir: TempDir,
    fifo: PathBuf,
    hot: PathBuf,
}

impl Sites for FsRead {
    async fn slow(&mut self) {
        assert_eq!(fs::read(&self.fifo).await.unwrap(), b"cold")
    }

    fn feed(&self) -> Box<dyn FnOnce() + Send> {
        let fifo = self.fifo.clone();
        Box::new(move || {
            // Opening the write end lets the reader's open return; closing it
            // is the end of file for its read.
            let mut w = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
            w.write_all(b"cold").unwrap();
        })
    }

    async fn fast(&mut self) {
        assert_eq!(fs::read(&self.hot).await.unwrap(), b"hot")
    }
}

#[test]
fn two_call_sites_of_fs_read_learn_apart() {
    let dir = TempDir::new("sites");
    let fifo = dir.0.join("fifo");
    mkfifo(&fifo);
    let hot = dir.0.join("hot");
    std::fs::write(&hot, b"hot").unwrap();
    learn_apart(
        "fs::read",
        FsRead {
            fifo,
            hot,
            _dir: dir,
        },
    );
}

/// `File::read` of an empty pipe and of /dev/zero.
struct FileRead {
    pipe: File,
    writer: Arc<std::fs::File>,
    zero: File,
}

impl Sites for FileRead {
    async fn slow(&mut self) {
        let mut buf = [0u8; 8];
        assert_eq!(self.pipe.read(&mut buf).await.unwrap(), 1);
    }

    fn feed(&self) -> Box<dyn FnOnce() + Send> {
        let writer = self.writer.clone();
        Box::new(move || (&*writer).write_all(b"x").unwrap())
    }

    async fn fast(&mut self) {
        let mut buf = [1u8; 8];
        assert_eq!(self.zero.read(&mut buf).await.unwrap(), 8);
        assert_eq!(buf, [0; 8]);
    }
}

#[test]
fn two_call_sites_of_file_read_learn_apart() {
    let (r, w) = pipe();
    let zero = File::from_std(std::fs::File::open("/dev/zero").unwrap());
    learn_apart(
        "File::read",
        FileRead {
            pipe: File::from_std(r),
            writer: Arc::new(w),
            zero,
        },
    );
}

/// The `futures::io` traits cannot see their caller: `poll_read` is one site
/// and `poll_write` another, so blocking reads do not teach writes.
struct PollReadWrite {
    pipe: File,
    writer: Arc<std::fs::File>,
    null: File,
}

impl Sites for PollReadWrite {
    async fn slow(&mut self) {
        let mut buf = [0u8; 8];
        let n = AsyncReadExt::read(&mut self.pipe, &mut buf).await.unwrap();
        assert_eq!(n, 1);
    }

    fn feed(&self) -> Box<dyn FnOnce() + Send> {
        let writer = self.writer.clone();
        Box::new(move || (&*writer).write_all(b"x").unwrap())
    }

    async fn fast(&mut self) {
        let n = AsyncWriteExt::write(&mut self.null, b"fast").await.unwrap();
        assert_eq!(n, 4);
    }
}

#[test]
fn poll_read_and_poll_write_learn_apart() {
    let (r, w) = pipe();
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap();
    learn_apart(
        "futures::io",
        PollReadWrite {
            pipe: File::from_std(r),
            writer: Arc::new(w),
            null: File::from_std(null),
        },
    );
}

/// The futures of the wrappers are `Send` whenever the `async fn`s they
/// replaced were (a compile-time check; the calls are never awaited).
#[test]
fn wrapper_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let dir = TempDir::new("sites-send");
    let path = dir.0.join("f");
    assert_send(&fs::read(&path));
    assert_send(&fs::read(path.clone()));
    assert_send(&fs::write(&path, b"x"));
    assert_send(&fs::write(&path, vec![1u8]));
    assert_send(&fs::read_to_string("/proc/self/status"));
    assert_send(&fs::metadata(&path));
    assert_send(&fs::read_dir(&dir.0));
    assert_send(&File::open(&path));
    assert_send(&File::create(&path));
    assert_send(&fs::OpenOptions::new().read(true).open(&path));
    assert_send(&handoff::net::lookup_host("localhost:80"));
    assert_send(&handoff::net::lookup_host(("localhost", 80)));
    let mut file = File::from_std(std::fs::File::open("/proc/self/status").unwrap());
    let mut buf = [0u8; 4];
    assert_send(&file.read(&mut buf));
    assert_send(&file.read_at(&mut buf, 0));
    assert_send(&file.write(b"x"));
    assert_send(&file.seek(std::io::SeekFrom::Start(0)));
    assert_send(&file.metadata());
    assert_send(&file.into_std());
    // And they still run anywhere (inline off a worker).
    let status = futures::executor::block_on(fs::read_to_string("/proc/self/status")).unwrap();
    assert!(status.starts_with("Name:"));
}
