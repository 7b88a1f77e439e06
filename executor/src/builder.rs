//! `Builder`: the runtime's knobs, with the defaults of ARCHITECTURE.md.
use crate::runtime::Runtime;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// Default `max_threads`: Go's limit, but reaching it degrades (a slot
/// waits for a thread) instead of crashing the process.
///
/// ```
/// assert_eq!(handoff_executor::DEFAULT_MAX_THREADS, 10_000);
/// ```
pub const DEFAULT_MAX_THREADS: usize = 10_000;
/// Default `retake_after`: Go's sysmon period; the call budget a slot may
/// keep before the monitor hands it to another thread.
///
/// ```
/// assert_eq!(handoff_executor::DEFAULT_RETAKE_AFTER.as_micros(), 20);
/// ```
pub const DEFAULT_RETAKE_AFTER: Duration = Duration::from_micros(20);
/// Default `thread_keep_alive`: tokio's for blocking-pool threads.
///
/// ```
/// assert_eq!(handoff_executor::DEFAULT_KEEP_ALIVE.as_secs(), 10);
/// ```
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(10);
/// The variable that turns on the scheduler trace (Go's `GODEBUG=schedtrace`):
/// `HANDOFF_SCHEDTRACE=1000` prints one line a second to stderr, read when
/// a runtime is built.
///
/// ```
/// assert_eq!(handoff_executor::SCHEDTRACE_ENV, "HANDOFF_SCHEDTRACE");
/// ```
pub const SCHEDTRACE_ENV: &str = "HANDOFF_SCHEDTRACE";

type Hook = Arc<dyn Fn() + Send + Sync>;

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) worker_threads: usize,
    pub(crate) max_threads: usize,
    pub(crate) retake_after: Duration,
    pub(crate) keep_alive: Duration,
    pub(crate) thread_name: Arc<dyn Fn() -> String + Send + Sync>,
    pub(crate) stack_size: Option<usize>,
    pub(crate) on_thread_start: Option<Hook>,
    pub(crate) on_thread_stop: Option<Hook>,
    pub(crate) schedtrace: Option<Duration>,
}

/// Configures and builds a [`Runtime`].
///
/// ```
/// use std::time::Duration;
/// let rt = handoff_executor::Runtime::builder()
///     .worker_threads(2)
///     .max_threads(64)
///     .retake_after(Duration::from_micros(20))
///     .thread_keep_alive(Duration::from_secs(10))
///     .thread_name("my-worker")
///     .build()
///     .unwrap();
/// assert_eq!(rt.block_on(async { 1 + 1 }), 2);
/// ```
pub struct Builder {
    worker_threads: Option<usize>,
    max_threads: usize,
    retake_after: Duration,
    keep_alive: Duration,
    thread_name: Arc<dyn Fn() -> String + Send + Sync>,
    stack_size: Option<usize>,
    on_thread_start: Option<Hook>,
    on_thread_stop: Option<Hook>,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("worker_threads", &self.worker_threads)
            .field("max_threads", &self.max_threads)
            .field("retake_after", &self.retake_after)
            .field("thread_keep_alive", &self.keep_alive)
            .finish_non_exhaustive()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// A builder with the defaults.
    ///
    /// ```
    /// let rt = handoff_executor::Builder::new().build().unwrap();
    /// # drop(rt);
    /// ```
    pub fn new() -> Builder {
        Builder {
            worker_threads: None,
            max_threads: DEFAULT_MAX_THREADS,
            retake_after: DEFAULT_RETAKE_AFTER,
            keep_alive: DEFAULT_KEEP_ALIVE,
            thread_name: Arc::new(|| "handoff-worker".to_string()),
            stack_size: None,
            on_thread_start: None,
            on_thread_stop: None,
        }
    }

    /// The number of worker slots (Go's GOMAXPROCS); default: the available cores.
    ///
    /// # Panics
    /// When `n` is zero.
    ///
    /// ```
    /// let rt = handoff_executor::Runtime::builder().worker_threads(1).build().unwrap();
    /// assert_eq!(rt.metrics().slots, 1);
    /// ```
    pub fn worker_threads(&mut self, n: usize) -> &mut Self {
        assert!(
            n > 0,
            "worker_threads(0): a runtime needs at least one worker slot; pass 1 or more"
        );
        self.worker_threads = Some(n);
        self
    }

    /// The most threads the runtime keeps alive at once: workers, threads
    /// inside blocking calls and `spawn_blocking` pool threads. Default 10 000.
    /// At the cap nothing more is spawned: a slot or a job waits for a thread.
    /// The monitor (one thread per runtime, started with it) is not counted,
    /// so the process holds at most `n + 1` runtime threads; the
    /// `threads_alive` metric counts the same threads as the cap.
    ///
    /// ```
    /// let rt = handoff_executor::Runtime::builder().worker_threads(1).max_threads(4).build().unwrap();
    /// # drop(rt);
    /// ```
    pub fn max_threads(&mut self, n: usize) -> &mut Self {
        self.max_threads = n;
        self
    }

    /// How long a slot may stay in one blocking call before the monitor
    /// retakes it and hands it to another thread. Default 20 µs.
    ///
    /// ```
    /// let rt = handoff_executor::Runtime::builder()
    ///     .retake_after(std::time::Duration::from_micros(50)).build().unwrap();
    /// # drop(rt);
    /// ```
    pub fn retake_after(&mut self, d: Duration) -> &mut Self {
        self.retake_after = d;
        self
    }

    /// How long an idle surplus thread waits for work before it exits. Default 10 s.
    ///
    /// ```
    /// let rt = handoff_executor::Runtime::builder()
    ///     .thread_keep_alive(std::time::Duration::from_millis(100)).build().unwrap();
    /// # drop(rt);
    /// ```
    pub fn thread_keep_alive(&mut self, d: Duration) -> &mut Self {
        self.keep_alive = d;
        self
    }

    /// The name of the runtime's threads.
    ///
    /// ```
    /// let rt = handoff_executor::Runtime::builder().thread_name("w").build().unwrap();
    /// let name = rt.block_on(async {
    ///     handoff_executor::spawn(async { std::thread::current().name().map(String::from) }).await.unwrap()
    /// });
    /// assert_eq!(name.as_deref(), Some("w"));
    /// ```
    pub fn thread_name(&mut self, name: impl Into<String>) -> &mut Self {
        let name = name.into();
        self.thread_name = Arc::new(move || name.clone());
        self
    }

    /// The stack size of the runtime's threads (default: std's).
    ///
    /// ```
    /// let rt = handoff_executor::Runtime::builder().thread_stack_size(4 << 20).build().unwrap();
    /// # drop(rt);
    /// ```
    pub fn thread_stack_size(&mut self, bytes: usize) -> &mut Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Runs `f` on each runtime thread when it starts.
    ///
    /// ```
    /// let rt = handoff_executor::Runtime::builder().on_thread_start(|| {}).build().unwrap();
    /// # drop(rt);
    /// ```
    pub fn on_thread_start(&mut self, f: impl Fn() + Send + Sync + 'static) -> &mut Self {
        self.on_thread_start = Some(Arc::new(f));
        self
    }

    /// Runs `f` on each runtime thread before it exits.
    ///
    /// ```
    /// let rt = handoff_executor::Runtime::builder().on_thread_stop(|| {}).build().unwrap();
    /// # drop(rt);
    /// ```
    pub fn on_thread_stop(&mut self, f: impl Fn() + Send + Sync + 'static) -> &mut Self {
        self.on_thread_stop = Some(Arc::new(f));
        self
    }

    /// Builds the runtime: its reactor, its worker threads (idle until
    /// work arrives) and its monitor thread.
    ///
    /// # Errors
    /// When the reactor cannot be created or no thread can be spawned.
    ///
    /// # Panics
    /// When `max_threads` is not greater than `worker_threads`.
    ///
    /// ```
    /// let rt = handoff_executor::Runtime::builder().worker_threads(2).build().unwrap();
    /// assert_eq!(rt.block_on(async { 3 }), 3);
    /// ```
    pub fn build(&mut self) -> io::Result<Runtime> {
        let worker_threads = self
            .worker_threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        assert!(
            self.max_threads > worker_threads,
            "max_threads ({}) must be greater than worker_threads ({}): threads inside blocking \
             calls need room beyond the slots' own; raise max_threads or lower worker_threads",
            self.max_threads,
            worker_threads
        );
        let schedtrace = std::env::var(SCHEDTRACE_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis);
        let config = Config {
            worker_threads,
            max_threads: self.max_threads,
            retake_after: self.retake_after,
            keep_alive: self.keep_alive,
            thread_name: self.thread_name.clone(),
            stack_size: self.stack_size,
            on_thread_start: self.on_thread_start.clone(),
            on_thread_stop: self.on_thread_stop.clone(),
            schedtrace,
        };
        Runtime::from_config(config)
    }
}
