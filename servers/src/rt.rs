//! The runtime seam: what a server needs from an async runtime, and the
//! accept loop every server shares.
//!
//! The servers in this crate are written once and run on handoff (the
//! examples, tests and the tour) and on tokio (the comparison baseline in the
//! benchmark). Everything runtime-specific sits behind three small traits:
//!
//! - [`Rt`]: spawn a task, run a blocking system call, sleep. On handoff
//!   `blocking` is `handoff::blocking` (the call runs inline on the worker);
//!   on tokio it is `spawn_blocking` or `block_in_place`.
//! - [`Conn`]: a connection is any `futures::io` byte stream.
//! - [`Listener`]: something that accepts connections.
//!
//! # The accept loop ([`serve`])
//!
//! 1. Accept. On success, register the connection with the [`Reaper`] (which
//!    gives it an abort handle and an activity stamp) and spawn the service
//!    on it.
//! 2. On `EMFILE`/`ENFILE`/`ENOBUFS`/`ENOMEM` (out of descriptors or
//!    memory), sleep [`ACCEPT_BACKOFF`] and retry: the pending connection
//!    stays in the kernel's backlog and is accepted once a descriptor frees
//!    up. Spinning on the error would burn a core and starve the very
//!    connections whose closing would fix it. `ECONNABORTED` and friends
//!    (the peer gave up while queued) are retried at once.
//! 3. The loop never ends on an error: a server that stops accepting because
//!    of one bad moment is worse than one that logs and continues.
//!
//! # Idle connections ([`Reaper`])
//!
//! A connection that neither reads nor writes anything for `idle_timeout` is
//! closed. Rejected: a timer per read (`timeout(read)`), which costs a timer
//! insertion and removal per request on the hot path. Instead each connection
//! stamps a coarse clock on progress (one relaxed load and store), and one
//! reaper task per server wakes every `idle_timeout / 4`, advances the clock
//! and aborts the connections whose stamp is too old. The abort drops the
//! connection's future at its next await point, which closes the socket.
//! A client that stops reading its responses makes no write progress, so it
//! is reaped the same way.
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{AbortHandle, Abortable};
use futures::io::{AsyncRead, AsyncWrite};

/// How long the accept loop sleeps after running out of descriptors. Go's
/// net/http sleeps 5 ms doubling to 1 s; a fixed short pause is enough here
/// because a freed descriptor is what we wait for and it comes from a
/// connection ending, which takes about a round trip.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(5);

/// What a server needs from an async runtime.
///
/// # Example
///
/// A runtime made of plain threads, enough for a test:
///
/// ```
/// use std::future::Future;
/// use std::time::Duration;
/// use handoff_servers::Rt;
///
/// #[derive(Clone)]
/// struct Threads;
/// impl Rt for Threads {
///     fn spawn<F: Future<Output = ()> + Send + 'static>(&self, fut: F) {
///         std::thread::spawn(move || futures::executor::block_on(fut));
///     }
///     fn blocking<F, R>(&self, f: F) -> impl Future<Output = R> + Send
///     where
///         F: FnOnce() -> R + Send + 'static,
///         R: Send + 'static,
///     {
///         futures::future::ready(f())
///     }
///     fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send {
///         std::thread::sleep(d);
///         futures::future::ready(())
///     }
/// }
/// let n = futures::executor::block_on(Threads.blocking(|| 2 + 2));
/// assert_eq!(n, 4);
/// ```
pub trait Rt: Clone + Send + Sync + 'static {
    /// Spawns a detached task.
    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, fut: F);

    /// Runs `f`, which makes a blocking system call, without stalling the
    /// runtime's other tasks.
    fn blocking<F, R>(&self, f: F) -> impl Future<Output = R> + Send
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static;

    /// Completes after `d`.
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send;

    /// Opens a file to serve and reads up to `first` bytes from its start,
    /// in one blocking call (a small file needs no other). The default runs
    /// [`OpenedFile::open`] through [`Rt::blocking`].
    fn open_file(
        &self,
        path: std::path::PathBuf,
        first: usize,
    ) -> impl Future<Output = io::Result<OpenedFile>> + Send {
        self.blocking(move || OpenedFile::open(&path, first))
    }

    /// Reads up to `max` bytes of `file` at `offset` (fewer only at the end
    /// of the file). The default runs [`read_at`] through [`Rt::blocking`].
    fn read_file_at(
        &self,
        file: Arc<std::fs::File>,
        offset: u64,
        max: usize,
    ) -> impl Future<Output = io::Result<Vec<u8>>> + Send {
        self.blocking(move || read_at(&file, offset, max))
    }
}

/// A file opened to be served: the file, its length when opened, and its
/// first bytes.
///
/// # Example
///
/// ```
/// let path = std::env::temp_dir().join(format!("handoff-opened-{}", std::process::id()));
/// std::fs::write(&path, b"hello world").unwrap();
/// let f = handoff_servers::rt::OpenedFile::open(&path, 5).unwrap();
/// assert_eq!((f.len, &f.head[..]), (11, &b"hello"[..]));
/// assert_eq!(handoff_servers::rt::read_at(&f.file, 6, 100).unwrap(), b"world");
/// std::fs::remove_file(&path).unwrap();
/// ```
#[derive(Debug)]
pub struct OpenedFile {
    /// The open file, shared with the blocking calls that read it.
    pub file: Arc<std::fs::File>,
    /// Its length when it was opened: what `Content-Length` promises.
    pub len: u64,
    /// Its first `min(len, first)` bytes.
    pub head: Vec<u8>,
}

impl OpenedFile {
    /// Opens `path` and reads its first `first` bytes (blocking).
    ///
    /// # Errors
    ///
    /// As `open`, `fstat` and `pread`; a directory is `EISDIR`.
    pub fn open(path: &std::path::Path, first: usize) -> io::Result<OpenedFile> {
        let file = std::fs::File::open(path)?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        let len = meta.len();
        let head = read_at(
            &file,
            0,
            first.min(usize::try_from(len).unwrap_or(usize::MAX)),
        )?;
        Ok(OpenedFile {
            file: Arc::new(file),
            len,
            head,
        })
    }
}

/// Reads up to `max` bytes of `file` at `offset` with `pread` (blocking),
/// retrying short reads until `max` bytes or the end of the file.
///
/// # Errors
///
/// As `pread`.
///
/// # Example
///
/// See [`OpenedFile`].
pub fn read_at(file: &std::fs::File, offset: u64, max: usize) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0; max];
    let mut n = 0;
    while n < max {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(n);
    Ok(buf)
}

/// A runtime made of plain threads, for tests, docs and tools: each task
/// gets its own thread (driven by `futures::executor::block_on`), so a
/// blocking call simply runs and a sleep simply sleeps. Not for serving
/// real load: a thread per connection is what async runtimes exist to avoid.
///
/// # Example
///
/// ```
/// use handoff_servers::{Rt, Threads};
/// let (tx, rx) = std::sync::mpsc::channel();
/// Threads.spawn(async move { tx.send(Threads.blocking(|| 6 * 7).await).unwrap() });
/// assert_eq!(rx.recv().unwrap(), 42);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Threads;

impl Rt for Threads {
    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, fut: F) {
        std::thread::spawn(move || futures::executor::block_on(fut));
    }

    async fn blocking<F, R>(&self, f: F) -> R
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        f()
    }

    async fn sleep(&self, d: Duration) {
        std::thread::sleep(d)
    }
}

/// A connection: a `futures::io` byte stream that can move between threads.
pub trait Conn: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Conn for T {}

/// Something that accepts connections (a TCP listener, a test double).
///
/// # Example
///
/// ```
/// use handoff_servers::{duplex::{pipe, End}, Listener};
/// /// Hands out one in-memory connection, then fails.
/// struct One(Option<End>);
/// impl Listener for One {
///     type Conn = End;
///     async fn accept(&mut self) -> std::io::Result<End> {
///         self.0.take().ok_or_else(|| std::io::ErrorKind::WouldBlock.into())
///     }
/// }
/// let (_client, server) = pipe(64);
/// let mut l = One(Some(server));
/// assert!(futures::executor::block_on(l.accept()).is_ok());
/// assert!(futures::executor::block_on(l.accept()).is_err());
/// ```
pub trait Listener: Send + 'static {
    /// The accepted connection type.
    type Conn: Conn;
    /// Accepts the next connection.
    fn accept(&mut self) -> impl Future<Output = io::Result<Self::Conn>> + Send;
}

/// A protocol served on one connection.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use futures::io::AsyncWriteExt;
/// use handoff_servers::{Activity, Conn, Service};
/// /// Says hello and hangs up.
/// struct Hello;
/// impl Service for Hello {
///     async fn serve<S: Conn>(self: Arc<Self>, mut conn: S, activity: Activity) {
///         if conn.write_all(b"hello\n").await.is_ok() {
///             activity.touch();
///         }
///     }
/// }
/// let (mut client, server) = handoff_servers::duplex::pipe(64);
/// futures::executor::block_on(Arc::new(Hello).serve(server, Activity::detached()));
/// let mut got = String::new();
/// futures::executor::block_on(futures::io::AsyncReadExt::read_to_string(&mut client, &mut got)).unwrap();
/// assert_eq!(got, "hello\n");
/// ```
pub trait Service: Send + Sync + 'static {
    /// Serves `conn` until the peer closes it, it misbehaves, or it idles.
    /// Call [`Activity::touch`] on progress so the reaper leaves it alone.
    fn serve<S: Conn>(
        self: Arc<Self>,
        conn: S,
        activity: Activity,
    ) -> impl Future<Output = ()> + Send;
}

/// A connection's progress stamp, handed to [`Service::serve`].
///
/// # Example
///
/// ```
/// let a = handoff_servers::Activity::detached();
/// a.touch(); // nothing watches a detached stamp
/// ```
#[derive(Clone)]
pub struct Activity {
    clock: Arc<AtomicU64>,
    stamp: Arc<AtomicU64>,
}

impl Activity {
    /// A stamp no reaper watches (for driving a service by hand).
    pub fn detached() -> Activity {
        Activity {
            clock: Arc::new(AtomicU64::new(0)),
            stamp: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Records progress now.
    #[inline]
    pub fn touch(&self) {
        // Relaxed: the stamp is a hint read by the reaper; being one tick
        // stale only delays a reap by one tick.
        let now = self.clock.load(Ordering::Relaxed);
        if self.stamp.load(Ordering::Relaxed) != now {
            self.stamp.store(now, Ordering::Relaxed);
        }
    }
}

struct Tracked {
    stamp: Arc<AtomicU64>,
    abort: AbortHandle,
}

/// Closes connections that make no progress for an idle timeout.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// let reaper = handoff_servers::Reaper::new(Duration::from_secs(60));
/// assert_eq!(reaper.connections(), 0);
/// ```
#[derive(Clone)]
pub struct Reaper {
    idle_ticks: u64,
    tick: Duration,
    clock: Arc<AtomicU64>,
    next_id: Arc<AtomicU64>,
    conns: Arc<Mutex<HashMap<u64, Tracked>>>,
}

impl Reaper {
    /// A reaper that closes connections idle for about `idle_timeout`
    /// (between `idle_timeout` and `1.25 * idle_timeout`).
    pub fn new(idle_timeout: Duration) -> Reaper {
        // Four ticks per timeout: the coarse clock then errs by a quarter.
        let tick = (idle_timeout / 4).max(Duration::from_millis(1));
        Reaper {
            idle_ticks: 4,
            tick,
            clock: Arc::new(AtomicU64::new(1)),
            next_id: Arc::new(AtomicU64::new(0)),
            conns: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Number of connections currently open.
    pub fn connections(&self) -> usize {
        self.conns.lock().unwrap().len()
    }

    /// Spawns `svc` on `conn` under this reaper's watch.
    pub fn spawn_conn<R: Rt, S: Service, C: Conn>(&self, rt: &R, svc: &Arc<S>, conn: C) {
        let (abort, reg) = AbortHandle::new_pair();
        let stamp = Arc::new(AtomicU64::new(self.clock.load(Ordering::Relaxed)));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.conns.lock().unwrap().insert(
            id,
            Tracked {
                stamp: stamp.clone(),
                abort,
            },
        );
        let activity = Activity {
            clock: self.clock.clone(),
            stamp,
        };
        let fut = Abortable::new(svc.clone().serve(conn, activity), reg);
        let conns = self.conns.clone();
        rt.spawn(async move {
            let _ = fut.await;
            conns.lock().unwrap().remove(&id);
        });
    }

    /// Runs forever: every tick, advances the clock and aborts idle
    /// connections. Spawn it once per server.
    pub async fn run<R: Rt>(self, rt: R) {
        loop {
            rt.sleep(self.tick).await;
            // Relaxed: see `Activity::touch`.
            let now = self.clock.fetch_add(1, Ordering::Relaxed) + 1;
            let conns = self.conns.lock().unwrap();
            for t in conns.values() {
                if now.saturating_sub(t.stamp.load(Ordering::Relaxed)) > self.idle_ticks {
                    t.abort.abort();
                }
            }
        }
    }
}

/// True for accept errors that mean "out of descriptors or memory": back off.
///
/// # Example
///
/// ```
/// use std::io::Error;
/// assert!(handoff_servers::rt::is_resource_exhaustion(&Error::from_raw_os_error(libc::EMFILE)));
/// assert!(!handoff_servers::rt::is_resource_exhaustion(&Error::from_raw_os_error(libc::ECONNABORTED)));
/// ```
pub fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Accepts connections forever and serves each with `svc` in its own task,
/// closing connections idle for `idle_timeout`.
///
/// # Example
///
/// ```no_run
/// # async fn f<R: handoff_servers::Rt, L: handoff_servers::Listener>(rt: R, l: L) {
/// use std::sync::Arc;
/// use std::time::Duration;
/// let svc = Arc::new(handoff_servers::echo::Echo);
/// handoff_servers::serve(rt, l, svc, Duration::from_secs(60)).await;
/// # }
/// ```
pub async fn serve<R: Rt, L: Listener, S: Service>(
    rt: R,
    mut listener: L,
    svc: Arc<S>,
    idle_timeout: Duration,
) {
    let reaper = Reaper::new(idle_timeout);
    rt.spawn(reaper.clone().run(rt.clone()));
    let mut exhausted_logged = false;
    loop {
        match listener.accept().await {
            Ok(conn) => {
                exhausted_logged = false;
                reaper.spawn_conn(&rt, &svc, conn);
            }
            Err(e) if is_resource_exhaustion(&e) => {
                if !exhausted_logged {
                    eprintln!("accept: {e}; backing off until a descriptor frees up");
                    exhausted_logged = true;
                }
                rt.sleep(ACCEPT_BACKOFF).await;
            }
            // The peer reset or gave up while queued, or a transient error:
            // this connection is lost, the next one may be fine.
            Err(_) => rt.sleep(Duration::from_micros(100)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duplex::{pipe, End};
    use crate::echo::Echo;
    use crate::rt::Threads;
    use futures::io::{AsyncReadExt, AsyncWriteExt};
    use std::collections::VecDeque;

    /// Hands out scripted accept results, then waits forever.
    struct Script(VecDeque<io::Result<End>>, Arc<AtomicU64>);

    impl Listener for Script {
        type Conn = End;
        async fn accept(&mut self) -> io::Result<End> {
            self.1.fetch_add(1, Ordering::SeqCst);
            match self.0.pop_front() {
                Some(r) => r,
                None => futures::future::pending().await,
            }
        }
    }

    fn emfile() -> io::Error {
        io::Error::from_raw_os_error(libc::EMFILE)
    }

    #[test]
    fn emfile_on_accept_backs_off_and_recovers() {
        let (mut client, server) = pipe(1024);
        let calls = Arc::new(AtomicU64::new(0));
        let script = Script(
            VecDeque::from([Err(emfile()), Err(emfile()), Err(emfile()), Ok(server)]),
            calls.clone(),
        );
        let started = std::time::Instant::now();
        Threads.spawn(serve(
            Threads,
            script,
            Arc::new(Echo),
            Duration::from_secs(60),
        ));
        futures::executor::block_on(async {
            client.write_all(b"still here").await.unwrap();
            let mut buf = [0; 10];
            client.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"still here");
        });
        // Three backoffs happened before the good accept.
        assert!(started.elapsed() >= ACCEPT_BACKOFF * 3);
        assert!(calls.load(Ordering::SeqCst) >= 4);
    }

    #[test]
    fn idle_connection_is_closed_active_one_is_not() {
        let (mut idle, s1) = pipe(1024);
        let (mut busy, s2) = pipe(1024);
        let script = Script(
            VecDeque::from([Ok(s1), Ok(s2)]),
            Arc::new(AtomicU64::new(0)),
        );
        Threads.spawn(serve(
            Threads,
            script,
            Arc::new(Echo),
            Duration::from_millis(200),
        ));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            futures::executor::block_on(async {
                // The busy one talks every 20 ms for 0.6 s: three timeouts'
                // worth, never idle for one.
                for _ in 0..30 {
                    busy.write_all(b"x").await.unwrap();
                    let mut b = [0; 1];
                    busy.read_exact(&mut b).await.unwrap();
                    std::thread::sleep(Duration::from_millis(20));
                }
                let mut rest = Vec::new();
                idle.read_to_end(&mut rest).await.unwrap();
                tx.send(rest.len()).unwrap();
            })
        });
        let n = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("idle connection never closed");
        assert_eq!(n, 0);
    }
}
