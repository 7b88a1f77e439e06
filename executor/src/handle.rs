//! The runtime's shared state (`Shared`) and its cheap handle (`Handle`),
//! which is also every task's scheduler.
//!
//! Fields of `Shared` and who touches them:
//! - `slots`: the slot array; see `slot/mod.rs` for each field's rules;
//! - `inject`: the global queue (any thread);
//! - `idle`: idle cores, idle threads, spinning count (`idle.rs`);
//! - `owned`: every live task, for shutdown (any thread, sharded locks);
//! - `threads`: the thread budget shared by workers and the blocking pool,
//!   and the registry shutdown waits on;
//! - `counters`: events too rare to shard (thread spawns, slow exits,
//!   retakes), plain relaxed atomics; hot counters live in the slots;
//! - `monitor`: the monitor's published next look and futex word
//!   (`slot/watch.rs`): written by the monitor, woken by `enter`;
//! - `pool`: the `spawn_blocking` pool (`pool.rs`).
//!
//! Scheduling a task (`Schedule::schedule`):
//! 1. On a worker thread of this runtime that holds a core: into the core's
//!    LIFO `next` slot; the task it displaces goes to the back of the ring.
//!    Only when something entered the ring (which thieves can see) does it
//!    run the wake protocol of `idle.rs`, which starts a spinner only if
//!    none spins and a core is idle.
//! 2. Anywhere else (another thread, a thread in a blocking call, a thread
//!    with no core): into the global queue, then the wake protocol.
//! 3. After shutdown: the task is dropped, never queued.
use crate::builder::Config;
use crate::context;
use crate::idle::{Idle, ThreadCtl};
use crate::inject::Inject;
use crate::loom::{fence, Arc, AtomicBool, AtomicU64, AtomicUsize, Condvar, Mutex, Ordering};
use crate::metrics::Metrics;
use crate::monitor;
use crate::pool::Pool;
use crate::slot::watch::Signal;
use crate::slot::Slot;
use crate::task::{self, JoinHandle, Notified, OwnedTasks, Schedule};
use crate::worker::{self, Core};
use std::future::Future;
use std::time::{Duration, Instant};

/// Longest `build()` waits for its worker threads to park.
const STARTUP_WAIT: Duration = Duration::from_millis(100);

/// A runnable task of this runtime.
pub(crate) type Task = Notified<Handle>;

/// Events counted outside the slots (rare, so one shared line is fine).
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) remote_spawns: AtomicU64,
    pub(crate) threads_spawned: AtomicU64,
    pub(crate) thread_spawn_failures: AtomicU64,
    pub(crate) slow_exits: AtomicU64,
    pub(crate) retakes: AtomicU64,
    pub(crate) retakes_deferred: AtomicU64,
    pub(crate) retakes_starved: AtomicU64,
    pub(crate) handoffs: AtomicU64,
    pub(crate) long_handoffs: AtomicU64,
    pub(crate) spawn_blocking_tasks: AtomicU64,
    pub(crate) monitor_wakes: AtomicU64,
}

impl Counters {
    /// Relaxed: statistics only.
    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// The thread budget (`max_threads`), shared by workers and pool threads,
/// and the registry of worker threads shutdown waits for.
pub(crate) struct Threads {
    max: usize,
    /// Threads alive or reserved (workers + pool).
    alive: AtomicUsize,
    /// Worker threads alive.
    pub(crate) workers: AtomicUsize,
    registry: Mutex<Vec<Arc<ThreadCtl<Core>>>>,
    exit_lock: Mutex<()>,
    exit_cv: Condvar,
}

impl Threads {
    fn new(max: usize) -> Threads {
        Threads {
            max,
            alive: AtomicUsize::new(0),
            workers: AtomicUsize::new(0),
            registry: Mutex::new(Vec::new()),
            exit_lock: Mutex::new(()),
            exit_cv: Condvar::new(),
        }
    }

    /// Reserves one thread under `max_threads`.
    pub(crate) fn try_reserve(&self) -> bool {
        let mut n = self.alive.load(Ordering::Relaxed);
        loop {
            if n >= self.max {
                return false;
            }
            // Relaxed: a counter; no data is published through it.
            match self
                .alive
                .compare_exchange_weak(n, n + 1, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(x) => n = x,
            }
        }
    }

    /// Gives a reservation back (a thread exited or failed to spawn).
    pub(crate) fn release(&self) {
        self.alive.fetch_sub(1, Ordering::Relaxed);
        let _g = self.exit_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.exit_cv.notify_all();
    }

    pub(crate) fn alive(&self) -> usize {
        self.alive.load(Ordering::Relaxed)
    }

    pub(crate) fn register(&self, t: &Arc<ThreadCtl<Core>>) {
        let mut r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        r.retain(|t| !t.exited.load(Ordering::Relaxed));
        r.push(t.clone());
    }

    /// Waits until every registered worker thread has exited or sits in a
    /// blocking call, or until `deadline`. Returns `true` when none is left.
    fn wait_idle_exit(
        &self,
        deadline: Option<Instant>,
        except: Option<&Arc<ThreadCtl<Core>>>,
    ) -> bool {
        let mut g = self.exit_lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let busy = {
                let r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
                r.iter().any(|t| {
                    !except.is_some_and(|e| Arc::ptr_eq(e, t))
                        && !t.exited.load(Ordering::Acquire)
                        && !t.in_call.load(Ordering::Relaxed)
                })
            };
            if !busy {
                return true;
            }
            // Re-check at least every millisecond: `in_call` is set without
            // notifying the condvar.
            let mut wait = Duration::from_millis(1);
            if let Some(d) = deadline {
                let now = Instant::now();
                if now >= d {
                    return false;
                }
                wait = wait.min(d - now);
            }
            g = self
                .exit_cv
                .wait_timeout(g, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Everything the threads of one runtime share.
pub(crate) struct Shared {
    pub(crate) slots: Box<[Slot<Core, Task>]>,
    pub(crate) inject: Inject<Task>,
    pub(crate) idle: Idle<Core>,
    pub(crate) owned: OwnedTasks<Handle>,
    pub(crate) reactor: handoff_reactor::Handle,
    pub(crate) config: Config,
    pub(crate) shutdown: AtomicBool,
    pub(crate) threads: Threads,
    pub(crate) counters: Counters,
    pub(crate) monitor: Signal,
    pub(crate) pool: Pool,
    /// Threads inside `block_on` (by a number of their own), woken at
    /// shutdown: the worker that drove the reactor for them is leaving, so
    /// they must drive it themselves (runtime.rs, `block_on`).
    block_ons: Mutex<Vec<(u64, std::task::Waker)>>,
    next_block_on: AtomicU64,
    /// This `Shared`'s own `Arc` (for spawning threads from `&self`).
    me: std::sync::Weak<Shared>,
    /// When a hand-off last had to take the poller out of the reactor (a
    /// clock stamp, 0: never): `poller_taken` acts on the second within
    /// `SPARE_WINDOW`.
    poller_handoff_at: AtomicU64,
    /// Set by `poller_taken`: the next thread to leave a call starts the
    /// spare (`start_wanted_spare`).
    spare_wanted: AtomicBool,
}

/// Two hand-offs that had to take the poller within this long start a spare
/// thread (`Shared::poller_taken`): hand-offs are then a pattern, not a
/// one-off (a call preempted by the kernel and retaken once in a while).
const SPARE_WINDOW: Duration = Duration::from_millis(100);

/// A handle to a runtime: spawn onto it, enter it, read its metrics.
/// Cheap to clone (an `Arc`).
///
/// ```
/// let rt = handoff_executor::Runtime::new().unwrap();
/// let handle = rt.handle().clone();
/// let join = handle.spawn(async { 6 * 7 });
/// assert_eq!(rt.block_on(join).unwrap(), 42);
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("worker_threads", &self.shared.slots.len())
            .finish_non_exhaustive()
    }
}

/// Makes a runtime current on this thread (`Handle::enter`); restores the
/// previous one on drop.
///
/// ```
/// let rt = handoff_executor::Runtime::new().unwrap();
/// {
///     let _guard = rt.handle().enter();
///     assert!(handoff_executor::Handle::try_current().is_some());
/// }
/// assert!(handoff_executor::Handle::try_current().is_none());
/// ```
pub struct EnterGuard {
    _current: context::CurrentGuard,
    _reactor: handoff_reactor::EnterGuard,
}

impl std::fmt::Debug for EnterGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnterGuard")
    }
}

impl Handle {
    pub(crate) fn new(config: Config) -> std::io::Result<Handle> {
        crate::clock::init();
        let n = config.worker_threads;
        let retake_stamps = crate::clock::to_stamps(config.retake_after);
        // A lazy look is never sooner than an eager one.
        let lazy_stamps =
            crate::clock::to_stamps(crate::slot::watch::LAZY_LOOK.max(config.retake_after));
        let reactor = handoff_reactor::Handle::new()?;
        let mut slots = Vec::with_capacity(n);
        let mut cores = Vec::with_capacity(n);
        for i in 0..n {
            let (local, steal) = crate::queue::local();
            slots.push(Slot::new(steal));
            cores.push(Box::new(Core::new(i, local)));
        }
        let idle = Idle::new(n);
        for c in cores {
            idle.push_core(c);
        }
        let shared = Arc::new_cyclic(|me| Shared {
            me: me.clone(),
            slots: slots.into_boxed_slice(),
            inject: Inject::new(),
            idle,
            owned: OwnedTasks::with_shards(n * 4),
            reactor,
            threads: Threads::new(config.max_threads),
            config,
            shutdown: AtomicBool::new(false),
            counters: Counters::default(),
            monitor: Signal::new(retake_stamps, lazy_stamps),
            pool: Pool::new(),
            block_ons: Mutex::new(Vec::new()),
            next_block_on: AtomicU64::new(0),
            poller_handoff_at: AtomicU64::new(0),
            spare_wanted: AtomicBool::new(false),
        });
        let handle = Handle { shared };
        // Start the worker threads, idle: they park (one in the reactor)
        // until work arrives. A failed spawn is not fatal unless none starts.
        let mut started = 0;
        let mut last_err = None;
        for _ in 0..n {
            if !handle.shared.threads.try_reserve() {
                break;
            }
            match worker::spawn_thread(&handle.shared, None) {
                Ok(()) => started += 1,
                Err((e, _)) => {
                    handle.shared.threads.release();
                    last_err = Some(e);
                }
            }
        }
        if started == 0 {
            if let Some(e) = last_err {
                handle.shared.shutdown(Some(Duration::ZERO));
                return Err(e);
            }
        }
        // Let the new threads list themselves idle before the first spawn:
        // a wake that finds no idle thread spawns one more (bounded wait).
        let t0 = Instant::now();
        while handle.shared.idle.num_idle_threads() < started && t0.elapsed() < STARTUP_WAIT {
            std::thread::sleep(Duration::from_micros(50));
        }
        if let Err(e) = monitor::start(&handle.shared) {
            handle.shared.shutdown(Some(Duration::ZERO));
            return Err(e);
        }
        Ok(handle)
    }

    /// The handle of the runtime this thread is in (a task, `block_on`, or
    /// under `Handle::enter`).
    ///
    /// # Panics
    /// Outside a runtime.
    ///
    /// ```
    /// let rt = handoff_executor::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let h = handoff_executor::Handle::current();
    ///     assert_eq!(h.spawn(async { 1 }).await.unwrap(), 1);
    /// });
    /// ```
    pub fn current() -> Handle {
        Self::try_current().expect(
            "Handle::current() was called outside a handoff runtime; call it from a task, \
             from inside Runtime::block_on, or after Handle::enter, or keep a Handle \
             (Runtime::handle) and pass it where it is needed",
        )
    }

    /// The handle of the runtime this thread is in, if any.
    ///
    /// ```
    /// assert!(handoff_executor::Handle::try_current().is_none());
    /// ```
    pub fn try_current() -> Option<Handle> {
        context::current()
    }

    /// Spawns a task onto this runtime.
    ///
    /// ```
    /// let rt = handoff_executor::Runtime::new().unwrap();
    /// let h = rt.handle().spawn(async { "done" });
    /// assert_eq!(rt.block_on(h).unwrap(), "done");
    /// ```
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let id = task::Id::next();
        let (join, notified) = self.shared.owned.bind(future, self.clone(), id);
        if let Some(n) = notified {
            self.shared.schedule_task(n, Kind::Spawn);
        }
        join
    }

    /// Runs `f` on a thread of the blocking pool (for `'static` work that
    /// must not hold a task at all). The pool shares `max_threads` with the
    /// workers; at the cap, jobs wait in a queue.
    ///
    /// ```
    /// let rt = handoff_executor::Runtime::new().unwrap();
    /// let h = rt.handle().spawn_blocking(|| 6 * 7);
    /// assert_eq!(rt.block_on(h).unwrap(), 42);
    /// ```
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        crate::pool::spawn_blocking(&self.shared, f)
    }

    /// Runs a future to completion on the calling thread, with this
    /// runtime's workers running the tasks it spawns.
    ///
    /// # Panics
    /// When called from a thread of a runtime (a task or inside another
    /// `block_on`).
    ///
    /// ```
    /// let rt = handoff_executor::Runtime::new().unwrap();
    /// let h = rt.handle().clone();
    /// let v = std::thread::spawn(move || h.block_on(async { 5 })).join().unwrap();
    /// assert_eq!(v, 5);
    /// ```
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        crate::runtime::block_on(self, future)
    }

    /// A snapshot of the runtime's counters.
    ///
    /// ```
    /// let rt = handoff_executor::Runtime::new().unwrap();
    /// rt.block_on(async { handoff_executor::spawn(async {}).await.unwrap() });
    /// assert!(rt.handle().metrics().tasks_spawned >= 1);
    /// ```
    pub fn metrics(&self) -> Metrics {
        Metrics::snapshot(&self.shared)
    }

    /// Makes this runtime current on this thread (so `Handle::current`,
    /// `spawn` and the reactor's timers work here) until the guard drops.
    ///
    /// ```
    /// let rt = handoff_executor::Runtime::new().unwrap();
    /// let _g = rt.handle().enter();
    /// let h = handoff_executor::spawn(async { 3 });
    /// assert_eq!(rt.block_on(h).unwrap(), 3);
    /// ```
    pub fn enter(&self) -> EnterGuard {
        EnterGuard {
            _reactor: self.shared.reactor.enter(),
            _current: context::set_current(self.clone()),
        }
    }

    /// The reactor this runtime's threads drive (for registering sources
    /// from outside a runtime thread).
    ///
    /// ```
    /// let rt = handoff_executor::Runtime::new().unwrap();
    /// let reactor = rt.handle().reactor().clone();
    /// reactor.wake(); // harmless when nobody waits in it
    /// ```
    pub fn reactor(&self) -> &handoff_reactor::Handle {
        &self.shared.reactor
    }
}

/// Why a task is being queued.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A new task.
    Spawn,
    /// Woken from outside its poll.
    Wake,
    /// Woken during its own poll (goes behind the others, not into LIFO).
    Yield,
}

impl Schedule for Handle {
    fn schedule(&self, task: Notified<Self>) {
        self.shared.schedule_task(task, Kind::Wake);
    }

    fn yield_now(&self, task: Notified<Self>) {
        self.shared.schedule_task(task, Kind::Yield);
    }

    fn release(&self, task: &task::Task<Self>) -> Option<task::Task<Self>> {
        self.shared.owned.remove(task)
    }
}

impl Shared {
    /// Go's retake rule, the sparing half: a call on `slot` need not be
    /// retaken yet when the slot has no work waiting (only its owner pushes
    /// to it, so it gets none during the call) and an idle slot or a
    /// spinning thread can take new work. Used by the monitor and the
    /// standby retaker (`bridge::enter` reads the owner's side directly).
    pub(crate) fn retake_rule_spares(&self, slot: &Slot<Core, Task>) -> bool {
        slot.steal.is_empty() && self.idle.can_take_work()
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        // Acquire pairs with the SeqCst swap in `shutdown`.
        self.shutdown.load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn schedule_task(self: &Arc<Self>, task: Task, kind: Kind) {
        let local = context::with_worker(|w| match w {
            Some(w) if std::ptr::eq(Arc::as_ptr(&w.shared), Arc::as_ptr(self)) => {
                match w.core.take() {
                    Some(mut core) => {
                        self.schedule_local(&mut core, task, kind);
                        w.core.set(Some(core));
                        None
                    }
                    None if w.collecting.get() => {
                        w.woken.borrow_mut().push(task);
                        None
                    }
                    None => Some(task),
                }
            }
            _ => Some(task),
        });
        if let Some(task) = local {
            self.schedule_remote(task, kind);
        }
    }

    fn schedule_local(&self, core: &mut Core, task: Task, kind: Kind) {
        let counters = &self.slots[core.index].counters;
        if kind == Kind::Spawn {
            counters.tasks_spawned.incr();
        }
        // A task that yields while it is this core's only work (a loop of
        // `blocking` calls whose budget ran out, `yield_now` in a lone
        // task) runs next on this thread anyway: waking a thread to steal
        // it cost a wake-up system call and a context switch per yield (one
        // per 128 `blocking(getpid)` calls: 25-40% of their cost).
        let lone_yield = kind == Kind::Yield && !core.has_tasks();
        let to_ring = if kind == Kind::Yield {
            Some(task)
        } else {
            core.lifo.replace(task)
        };
        let pushed = match to_ring {
            Some(t) => {
                if core.local.push_back(t, &self.inject) {
                    counters.overflows.incr();
                }
                true
            }
            None => false,
        };
        // Only work that thieves can see is worth waking a thread for; a
        // task in the LIFO slot runs next on this thread anyway.
        if pushed && !lone_yield {
            self.notify_parked();
        }
    }

    pub(crate) fn schedule_remote(&self, task: Task, kind: Kind) {
        if kind == Kind::Spawn {
            Counters::bump(&self.counters.remote_spawns);
        }
        if let Err(task) = self.inject.try_push(task) {
            // Closed at shutdown: the waker outlived the runtime.
            drop(task);
            return;
        }
        self.notify_parked();
        // A thread of this runtime with no core that polls the reactor
        // would otherwise not notice (it waits for a handed core).
    }

    /// Go's `wakep`: start a spinning thread on an idle core if nobody spins.
    pub(crate) fn notify_parked(&self) {
        if !self.idle.claim_wake() {
            return;
        }
        match self.idle.pop_core() {
            Some(mut core) => {
                core.is_searching = true;
                self.start_thread(core);
            }
            None => {
                self.idle.stop_spinning();
            }
        }
    }

    /// Go's `startm`: run `core` (status `Idle`, in transit) on an idle
    /// thread, or a new one while under `max_threads`; otherwise leave it on
    /// the idle list, where a thread that frees up will find it.
    pub(crate) fn start_thread(&self, core: Box<Core>) {
        self.start_thread_for(core, false);
    }

    /// `start_thread`; `handoff` is set for a core taken from a call (see
    /// `poller_taken`).
    fn start_thread_for(&self, mut core: Box<Core>, handoff: bool) {
        if let Some(t) = self.idle.pop_thread(handoff) {
            if t.hand(core) {
                self.reactor.wake();
                if handoff {
                    // The only idle thread was the poller (`pop_thread`
                    // takes it last).
                    self.poller_taken();
                }
            }
            return;
        }
        if !self.is_shutdown() {
            if let Some(me) = self.me.upgrade() {
                if self.threads.try_reserve() {
                    match worker::spawn_thread(&me, Some(core)) {
                        Ok(()) => return,
                        Err((_, c)) => {
                            self.threads.release();
                            core = c.expect("a failed spawn gives its core back");
                        }
                    }
                }
            }
        }
        self.park_core(core);
    }

    /// Called when a hand-off just took the only idle thread out of the
    /// reactor. If that happened before within `SPARE_WINDOW`, asks for one
    /// idle thread with no core (a spare), so that the next hand-offs wake a
    /// thread parked on its futex rather than the poller again (Go keeps
    /// idle threads on `sched.midle` besides the one in netpoll). Measured
    /// on the reference VM: see "Which idle thread" in `standby.rs`. A lone
    /// hand-off asks for nothing: a runtime whose calls are short keeps the
    /// threads it has.
    ///
    /// The spare is not started here, on the hand-off's path: the woken
    /// thread often runs on this very CPU (the caller is about to block),
    /// and a thread start there (~100 µs on the reference VM) delayed the
    /// slot's next task by as much. The next thread to leave a call starts
    /// it (`start_wanted_spare`, from the exit's slow path).
    pub(crate) fn poller_taken(&self) {
        let now = crate::clock::now();
        // Relaxed: a hint; `start_wanted_spare` bounds what it leads to.
        let prev = self.poller_handoff_at.swap(now, Ordering::Relaxed);
        if prev == 0 || now.wrapping_sub(prev) > crate::clock::to_stamps(SPARE_WINDOW) {
            return;
        }
        // Relaxed: a hint, read on a later exit.
        self.spare_wanted.store(true, Ordering::Relaxed);
    }

    /// Starts the spare thread `poller_taken` asked for, if any (called by a
    /// thread leaving a call on the exit's slow path, off every hand-off's
    /// path): under `max_threads`, only while no idle thread is parked on
    /// its futex, and only while the runtime has no more threads than its
    /// slots plus one (so one spare at most). Like any idle thread beyond
    /// the slots' count, it exits after `thread_keep_alive` unused.
    pub(crate) fn start_wanted_spare(&self) {
        // Relaxed: a hint; the swap lets one exit start it.
        if !self.spare_wanted.load(Ordering::Relaxed)
            || !self.spare_wanted.swap(false, Ordering::Relaxed)
        {
            return;
        }
        // One spare at most: beyond the slots' threads and the one a
        // hand-off took, a runtime has threads parked already (or will, as
        // their calls end).
        let workers = self.threads.workers.load(Ordering::Relaxed);
        if workers > self.slots.len() + 1 || self.is_shutdown() || self.idle.has_parked_thread() {
            return;
        }
        let Some(me) = self.me.upgrade() else {
            return;
        };
        if self.threads.try_reserve() && worker::spawn_thread(&me, None).is_err() {
            self.threads.release();
        }
    }

    /// Go's `handoffp`: find a thread for a core (status `Idle`) that was
    /// retaken from a call or handed off by `blocking_long`. If it or the
    /// global queue has work, start a thread on it; else put it on the idle
    /// list, where the wake protocol (`notify_parked`) finds it as soon as
    /// work is queued.
    ///
    /// Go also starts a spinning thread on a work-less core when nobody
    /// spins or idles. Rejected here: every wake of ours goes through
    /// `notify_parked`, which sees the idle core, so the spinner would only
    /// cost a thread wake (and, on a loaded machine where a preempted short
    /// call gets retaken, one per retake) to find nothing and park again.
    pub(crate) fn handoff(&self, core: Box<Core>) {
        if core.has_tasks() || !self.inject.is_empty() {
            Counters::bump(&self.counters.handoffs);
            self.start_thread_for(core, true);
            return;
        }
        // Go's handoffp: a core with no work still needs someone in the
        // reactor, or the I/O and timers of tasks that wait there stay
        // unseen while every other core is idle or in a call. Nobody holds
        // the reactor and no idle thread could take it: start a thread for
        // the core (it finds nothing to run, lists the core idle and blocks
        // in the reactor).
        if !self.reactor.poller_held() && self.idle.num_idle_threads() == 0 {
            self.start_thread(core);
            return;
        }
        self.park_core(core);
        // Work queued while the core was in transit found no idle core:
        // the stopper's re-check (idle.rs), for the monitor.
        fence(Ordering::SeqCst);
        if self.has_work() {
            self.notify_parked();
        }
        // An idle core and nobody in the reactor: idle threads stay off it
        // while no core is idle (worker.rs, `park_idle`), so have one look.
        if !self.reactor.poller_held() {
            self.idle.nudge_thread();
        }
    }

    /// A runtime thread (worker or pool) has ended: gives its place in the
    /// `max_threads` budget back, then lets whoever waited for that place
    /// have it. A core with work can be waiting on the idle list: at the cap,
    /// `start_thread` parks it there, and a thread that *exits* (rather than
    /// going idle) would never look at it again — with no thread left, the
    /// runtime then stalls with work queued and an idle core. So start a
    /// thread for it here, through the ordinary wake protocol; and let the
    /// `spawn_blocking` pool start a thread for a queued job.
    pub(crate) fn thread_exited(self: &Arc<Self>) {
        self.threads.release();
        // The stopper's re-check (idle.rs): pairs with the SeqCst fence a
        // submitter runs after queueing work.
        fence(Ordering::SeqCst);
        if self.has_work() {
            self.notify_parked();
        }
        self.pool.thread_released(self);
    }

    /// Puts a core (status `Idle`) back on the idle list.
    pub(crate) fn park_core(&self, mut core: Box<Core>) {
        let was_searching = std::mem::replace(&mut core.is_searching, false);
        self.idle.push_core(core);
        if was_searching {
            self.idle.stop_spinning();
        }
    }

    /// Does any queue hold work (for the stopper's re-check in `idle.rs`)?
    pub(crate) fn has_work(&self) -> bool {
        !self.inject.is_empty() || self.slots.iter().any(|s| !s.steal.is_empty())
    }

    /// Shuts the runtime down: cancels every task, stops the threads and
    /// waits (until `timeout`, `None` for as long as it takes) for those
    /// that are not inside a blocking call. Returns `true` when every such
    /// thread exited.
    /// A thread entered `block_on` with `waker`: shutdown wakes it. The
    /// returned number unregisters it.
    pub(crate) fn register_block_on(&self, waker: std::task::Waker) -> u64 {
        // Relaxed: a unique number is all that is needed.
        let id = self.next_block_on.fetch_add(1, Ordering::Relaxed);
        let mut list = self.block_ons.lock().unwrap_or_else(|e| e.into_inner());
        list.push((id, waker));
        id
    }

    pub(crate) fn unregister_block_on(&self, id: u64) {
        let mut list = self.block_ons.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|(i, _)| *i != id);
    }

    pub(crate) fn shutdown(self: &Arc<Self>, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        // SeqCst pairs with the SeqCst load threads make after listing
        // themselves idle (worker.rs), so none parks unseen.
        if !self.shutdown.swap(true, Ordering::SeqCst) {
            self.owned.close_and_shutdown_all();
            drop(self.inject.close());
            self.pool.shutdown(self);
            self.monitor.wake();
            for t in self.idle.take_all_threads() {
                t.unpark();
            }
            self.reactor.wake();
            // The wakers only set flags, unpark and wake the reactor: no
            // lock of ours is taken under this one.
            for (_, w) in self
                .block_ons
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
            {
                w.wake_by_ref();
            }
            drop(self.idle.take_all_cores());
            for s in self.slots.iter() {
                let snap = s.state.load();
                if snap.status() == crate::slot::state::Status::Syscall {
                    drop(s.retake(snap.tick()));
                }
            }
        }
        // Do not wait for ourselves when the runtime is dropped on one of
        // its own threads.
        let me = context::with_worker(|w| w.map(|w| w.thread.clone()));
        let done = self.threads.wait_idle_exit(deadline, me.as_ref());
        // Tasks queued by threads that exited after the close are dropped by
        // those threads; drain the global queue once more for stragglers.
        drop(self.inject.close());
        done
    }
}

/// Spawns a task on the current runtime.
///
/// # Panics
/// Outside a runtime (use `Runtime::spawn` or `Handle::spawn` there).
///
/// ```
/// let rt = handoff_executor::Runtime::new().unwrap();
/// let v = rt.block_on(async { handoff_executor::spawn(async { 2 + 2 }).await.unwrap() });
/// assert_eq!(v, 4);
/// ```
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match context::current() {
        Some(h) => h.spawn(future),
        None => panic!(
            "handoff::spawn was called outside a handoff runtime; call it from a task or \
             inside Runtime::block_on, or use Runtime::spawn / Handle::spawn with a handle \
             to the runtime"
        ),
    }
}

/// Runs `f` on the current runtime's blocking pool.
///
/// # Panics
/// Outside a runtime (use `Handle::spawn_blocking` there).
///
/// ```
/// let rt = handoff_executor::Runtime::new().unwrap();
/// let v = rt.block_on(async { handoff_executor::spawn_blocking(|| 7).await.unwrap() });
/// assert_eq!(v, 7);
/// ```
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    match context::current() {
        Some(h) => h.spawn_blocking(f),
        None => panic!(
            "handoff::spawn_blocking was called outside a handoff runtime; call it from a \
             task or inside Runtime::block_on, or use Handle::spawn_blocking"
        ),
    }
}
