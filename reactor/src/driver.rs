//! The epoll driver: one epoll instance, an eventfd to interrupt it, the
//! registrations of descriptors, the timer heap and the signal source.
//!
//! # Who touches what
//!
//! | field | who | how |
//! | --- | --- | --- |
//! | `epfd`, `eventfd` | everyone | immutable after `new`; closed when the last `Handle` drops |
//! | `wake` | `Handle::wake` (any thread), the poller | lock-free, see below |
//! | `poller_locked` | `try_lock_poller` / `PollerGuard::drop` / `poller_held` | CAS, one holder at a time; `poller_held` is a hint read after a caller's fence |
//! | `poll_state` | the poller-lock holder only | a mutex that is never contended |
//! | `io` | register/deregister (any thread), the poller once per turn | mutex |
//! | `timers` | `Sleep` (any thread), the poller once or twice per turn | mutex |
//!
//! # A turn
//!
//! 1. If the turn may block: `wake.transition_to_polling()` (sets `POLLING`,
//!    consumes `NOTIFIED`). If a wake was pending, the turn does not block.
//! 2. Under the timer lock: compute the timeout as
//!    `min(caller's timeout, next deadline - now)` and record the instant the
//!    poller will sleep until, so that a timer added meanwhile with an
//!    earlier deadline knows to call `wake`.
//! 3. `epoll_pwait2` (nanosecond timeout) or `epoll_pwait` (rounded *up* to
//!    whole ms) — a timer never fires early, because it fires only when
//!    `Instant::now() >= deadline` after the wait.
//! 4. Forget the recorded sleep deadline; `wake.transition_to_processing()`
//!    (clears `POLLING`, keeps `NOTIFIED`).
//! 5. Under the `io` lock, once for the batch: for each event whose token's
//!    generation matches the slab entry, set the readiness bits (and bump the
//!    tick), take the reader/writer wakers. Release the lock, then wake them
//!    (a waker may drop a task that drops a socket that takes the `io` lock).
//! 6. Under the timer lock: pop expired timers in deadline order, take their
//!    wakers; release; wake.
//! 7. `wake.transition_to_idle()` (clears `NOTIFIED`).
//!
//! # The wake protocol (`Handle::wake`, any thread)
//!
//! `Handle::wake` is on the executor's hot path, so it must not make a
//! system call unless a thread is really asleep in `epoll_pwait`:
//!
//! 1. waker: `prev = fetch_or(NOTIFIED)`; if `prev` had `POLLING` and not
//!    `NOTIFIED`, write the eventfd (the first wake of this turn does it).
//! 2. poller: `swap(POLLING)` before blocking; if the old value had `NOTIFIED`,
//!    use a zero timeout. After `epoll_pwait` returns, `swap(0)`.
//!
//! 3. poller: after `epoll_pwait` returns, clear `POLLING` (a wake now only
//!    sets `NOTIFIED`: no system call, nobody is asleep); after firing the
//!    wakers, `swap(0)` just before `turn` returns.
//!
//! Why no wake is lost: steps 1 and 2 are read-modify-writes of the same
//! word, so they are totally ordered. If the wake comes first, the poller
//! sees `NOTIFIED` and does not block. If the poller comes first, the wake
//! sees `POLLING` and writes the eventfd, which is registered edge-triggered
//! in the epoll set, so the `epoll_pwait` in progress (or about to start)
//! returns. A wake between step 3's two RMWs is delivered by `turn`
//! returning: the caller (the executor) looks at its queues after every
//! turn, and the final `swap` (Acquire) pairs with the wake's Release, so it
//! sees what the waker queued. This matters: the wakers a turn fires often
//! call `Handle::wake` themselves (they queue a task), and each of those
//! would otherwise leave `NOTIFIED` set and make the next turn a spurious
//! non-blocking one. A wake after the final `swap` leaves `NOTIFIED` set, so
//! the *next* blocking turn returns at once: never a lost wake. When no
//! thread is in `epoll_pwait` a wake is one uncontended atomic RMW. The loom
//! model `loom_wake_word_never_loses_a_wake` checks the race.
//!
//! The eventfd is never read: with `EPOLLET`, every write is a new edge, and
//! the counter would need 2^64 - 2 writes to fill (then `EAGAIN`, which
//! means "already signalled"). This saves a `read` per wake.
//!
//! # Tokens and generations
//!
//! The epoll data of a registration is `generation << 32 | slab key`. A
//! socket that is closed and whose number is reused may still have an event
//! in the batch the poller is processing; its key may even be reused by the
//! new registration, but the generation differs, so the event is dropped.
//!
//! # No cycles
//!
//! Sockets and timers hold a `Weak` reference to the driver; wakers they
//! store may own tasks that own those sockets, so a strong reference would
//! make a cycle `driver -> registration -> waker -> task -> socket -> driver`.
//! When the last `Handle` drops, the driver marks every registration and
//! timer shut down and drops their wakers, then closes its descriptors.
//!
//! Rejected: storing an `Arc` pointer as epoll data and skipping the slab
//! lookup. It needs deferred release (an event may name a registration that
//! was freed since `epoll_pwait` returned); one uncontended lock per batch
//! is cheaper to get right and measured within the benchmark's target.
use crate::io::ScheduledIo;
use crate::state::{Notify, StartTurn, WakeWord};
use crate::sys;
use crate::timer::Timers;
use slab::Slab;
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// Events fetched by one `epoll_pwait`. 1024 is mio's default capacity for
/// `Events`: one batch covers a busy server's ready set, and a larger ready
/// set just takes another turn.
const EVENTS_CAPACITY: usize = 1024;

/// Token of the wake eventfd (never a slab token: generations are < 2^31).
const TOKEN_WAKE: u64 = u64::MAX;
/// Token of the signalfd.
pub(crate) const TOKEN_SIGNAL: u64 = u64::MAX - 1;

/// Registrations: the slab and the generation counter.
pub(crate) struct IoSet {
    pub(crate) slab: Slab<(u32, Arc<ScheduledIo>)>,
    next_generation: u32,
}

/// The poller's scratch space, reused across turns.
struct PollState {
    events: Vec<libc::epoll_event>,
    wakers: Vec<Waker>,
}

pub(crate) struct Inner {
    epfd: OwnedFd,
    eventfd: OwnedFd,
    wake: WakeWord,
    poller_locked: AtomicBool,
    poll_state: Mutex<PollState>,
    pub(crate) io: Mutex<IoSet>,
    pub(crate) timers: Mutex<Timers>,
    pub(crate) signals: Mutex<crate::signal::SignalState>,
}

/// A handle to a reactor. Cheap to clone (an `Arc`), `Send` and `Sync`.
///
/// The reactor lives until its last `Handle` is dropped: then its epoll,
/// eventfd and signalfd are closed, sockets registered with it report an
/// error on their next operation and pending timers never fire.
///
/// ```
/// let h = handoff_reactor::Handle::new().unwrap();
/// let _g = h.enter();
/// assert!(handoff_reactor::Handle::try_current().is_some());
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("epfd", &self.inner.epfd.as_raw_fd())
            .finish()
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// Keeps a reactor current on this thread; restores the previous one on drop.
///
/// ```
/// let h = handoff_reactor::Handle::new().unwrap();
/// {
///     let _g = h.enter();
///     assert!(handoff_reactor::Handle::try_current().is_some());
/// }
/// assert!(handoff_reactor::Handle::try_current().is_none());
/// ```
pub struct EnterGuard {
    prev: Option<Handle>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        CURRENT.with(|c| *c.borrow_mut() = prev);
    }
}

/// The right to wait in the reactor; only one thread holds it at a time.
///
/// ```
/// let h = handoff_reactor::Handle::new().unwrap();
/// let mut p = h.try_lock_poller().unwrap();
/// assert!(h.try_lock_poller().is_none());
/// assert_eq!(p.turn(Some(std::time::Duration::ZERO)).unwrap(), 0);
/// ```
pub struct PollerGuard {
    inner: Arc<Inner>,
}

impl Drop for PollerGuard {
    fn drop(&mut self) {
        // Release: pairs with the Acquire CAS in `try_lock_poller`, so the
        // next holder sees this one's writes to the poll state.
        self.inner.poller_locked.store(false, Ordering::Release);
    }
}

impl PollerGuard {
    /// Waits for I/O events, expired timers or a [`Handle::wake`], at most
    /// `timeout` (`None`: until one of those), then fires the wakers of
    /// ready registrations and expired timers. Returns how many wakers fired.
    ///
    /// `Some(Duration::ZERO)` never blocks. A turn may return early with 0
    /// (a wake, a signal, a timer whose deadline is not quite reached):
    /// callers loop.
    ///
    /// ```
    /// use std::time::Duration;
    /// let h = handoff_reactor::Handle::new().unwrap();
    /// let mut p = h.try_lock_poller().unwrap();
    /// h.wake(); // a wake before the turn makes it return at once
    /// assert_eq!(p.turn(None).unwrap(), 0);
    /// ```
    ///
    /// # Errors
    /// An error from `epoll_pwait` other than `EINTR` (which counts as an
    /// early return).
    pub fn turn(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let inner = &*self.inner;
        let mut state = lock(&inner.poll_state);
        let state = &mut *state;
        let blocking = timeout != Some(Duration::ZERO);
        let wait = if blocking {
            match inner.wake.transition_to_polling() {
                StartTurn::DoNotBlock => Some(Duration::ZERO),
                StartTurn::Block => lock(&inner.timers).poller_timeout(Instant::now(), timeout),
            }
        } else {
            Some(Duration::ZERO)
        };
        let res = sys::epoll_wait(&inner.epfd, &mut state.events[..], wait);
        if blocking {
            // Timers first: a timer set from now on sees an awake poller and
            // makes no wake (this turn fires or re-plans it anyway).
            lock(&inner.timers).poller_awake();
            inner.wake.transition_to_processing();
        }
        let n = match res {
            Ok(n) => n,
            Err(e) => {
                if blocking {
                    let _delivered_by_return = inner.wake.transition_to_idle();
                }
                return Err(e);
            }
        };

        let mut signal = false;
        if n > 0 {
            let io = lock(&inner.io);
            for ev in &state.events[..n] {
                let (token, events) = (ev.u64, ev.events);
                match token {
                    TOKEN_WAKE => {}
                    TOKEN_SIGNAL => signal = true,
                    _ => {
                        let key = (token & 0xffff_ffff) as usize;
                        let generation = (token >> 32) as u32;
                        let Some((g, sio)) = io.slab.get(key) else {
                            continue;
                        };
                        if *g != generation {
                            continue; // a late event for a closed descriptor
                        }
                        sio.dispatch(events, &mut state.wakers);
                    }
                }
            }
        }
        if signal {
            crate::signal::dispatch(inner, &mut state.wakers);
        }
        lock(&inner.timers).fire_expired(Instant::now(), &mut state.wakers);
        let fired = state.wakers.len();
        for w in state.wakers.drain(..) {
            // A waker is user code: one that panics must not unwind the
            // thread driving the reactor (a worker holding a slot, or a
            // `block_on` caller) nor leave the turn's other wakers unwoken.
            // The panic hook has reported it; the payload is dropped.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.wake()));
        }
        if blocking {
            let _delivered_by_return = inner.wake.transition_to_idle();
        }
        Ok(fired)
    }
}

/// Locks a mutex, ignoring poisoning: the reactor's critical sections keep
/// their data consistent at every point where a waker could panic (wakers
/// run outside every lock).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Handle {
    /// Creates a reactor: an epoll instance and an eventfd registered in it.
    ///
    /// ```
    /// let h = handoff_reactor::Handle::new()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// When the kernel refuses an epoll or eventfd descriptor (`EMFILE`, ...).
    pub fn new() -> io::Result<Handle> {
        let epfd = sys::epoll_create()?;
        let eventfd = sys::eventfd()?;
        sys::epoll_ctl(
            &epfd,
            libc::EPOLL_CTL_ADD,
            eventfd.as_raw_fd(),
            (libc::EPOLLIN | libc::EPOLLET) as u32,
            TOKEN_WAKE,
        )?;
        let events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS_CAPACITY];
        Ok(Handle {
            inner: Arc::new(Inner {
                epfd,
                eventfd,
                wake: WakeWord::new(),
                poller_locked: AtomicBool::new(false),
                poll_state: Mutex::new(PollState {
                    events,
                    wakers: Vec::new(),
                }),
                io: Mutex::new(IoSet {
                    slab: Slab::new(),
                    next_generation: 0,
                }),
                timers: Mutex::new(Timers::new()),
                signals: Mutex::new(crate::signal::SignalState::default()),
            }),
        })
    }

    /// The reactor current on this thread.
    ///
    /// ```
    /// handoff_reactor::block_on(async {
    ///     let _h = handoff_reactor::Handle::current();
    /// });
    /// ```
    ///
    /// # Panics
    /// Outside a runtime (no [`Handle::enter`] guard is alive on this thread).
    pub fn current() -> Handle {
        Self::try_current().expect(
            "there is no handoff reactor on this thread: call this inside Runtime::block_on, \
             a task spawned on a handoff runtime, or handoff_reactor::block_on",
        )
    }

    /// The reactor current on this thread, if any.
    ///
    /// ```
    /// assert!(handoff_reactor::Handle::try_current().is_none());
    /// ```
    pub fn try_current() -> Option<Handle> {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// Makes this reactor current on this thread until the guard drops.
    ///
    /// ```
    /// let h = handoff_reactor::Handle::new().unwrap();
    /// let _g = h.enter();
    /// let _ = handoff_reactor::Handle::current();
    /// ```
    pub fn enter(&self) -> EnterGuard {
        let prev = CURRENT.with(|c| c.borrow_mut().replace(self.clone()));
        EnterGuard { prev }
    }

    /// The right to block in [`PollerGuard::turn`]; `None` while another
    /// thread holds it.
    ///
    /// ```
    /// let h = handoff_reactor::Handle::new().unwrap();
    /// let g = h.try_lock_poller();
    /// assert!(g.is_some() && h.try_lock_poller().is_none());
    /// drop(g);
    /// assert!(h.try_lock_poller().is_some());
    /// ```
    pub fn try_lock_poller(&self) -> Option<PollerGuard> {
        // Acquire: pairs with the Release in `PollerGuard::drop`.
        self.inner
            .poller_locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| PollerGuard {
                inner: self.inner.clone(),
            })
    }

    /// Whether some thread holds the poller (blocks in it or turns it) at
    /// this moment: a hint for a scheduler deciding whether to send a thread
    /// into the reactor. `SeqCst`, so that a caller's `SeqCst` fence orders it
    /// against its own earlier writes (the executor's idle-core handshake).
    ///
    /// ```
    /// let h = handoff_reactor::Handle::new().unwrap();
    /// assert!(!h.poller_held());
    /// let g = h.try_lock_poller();
    /// assert!(h.poller_held());
    /// drop(g);
    /// assert!(!h.poller_held());
    /// ```
    pub fn poller_held(&self) -> bool {
        self.inner.poller_locked.load(Ordering::SeqCst)
    }

    /// Interrupts a thread blocked in [`PollerGuard::turn`], or makes the
    /// next blocking turn return at once. Callable from any thread; costs a
    /// system call only when a thread is (about to be) asleep in epoll.
    ///
    /// ```
    /// let h = handoff_reactor::Handle::new().unwrap();
    /// let h2 = h.clone();
    /// let t = std::thread::spawn(move || h2.try_lock_poller().unwrap().turn(None).unwrap());
    /// h.wake(); // whether it lands before or during the turn, the turn returns
    /// t.join().unwrap();
    /// ```
    pub fn wake(&self) {
        self.inner.wake();
    }

    pub(crate) fn downgrade(&self) -> Weak<Inner> {
        Arc::downgrade(&self.inner)
    }
}

impl Inner {
    pub(crate) fn wake(&self) {
        if self.wake.transition_to_notified() == Notify::WriteEventfd {
            // An error here (EBADF cannot happen: we own the fd) would only
            // mean the poller wakes at its timeout; nothing better to do.
            let _ = sys::eventfd_write(&self.eventfd);
        }
    }

    pub(crate) fn epfd(&self) -> &OwnedFd {
        &self.epfd
    }

    /// Registers `fd` edge-triggered for read, write and hang-up.
    pub(crate) fn register(&self, fd: i32) -> io::Result<(usize, Arc<ScheduledIo>)> {
        let sio = Arc::new(ScheduledIo::new());
        let mut io = lock(&self.io);
        let generation = io.next_generation & 0x7fff_ffff;
        io.next_generation = io.next_generation.wrapping_add(1);
        let entry = io.slab.vacant_entry();
        let key = entry.key();
        assert!(key <= u32::MAX as usize, "more than 2^32 registrations");
        let token = (generation as u64) << 32 | key as u64;
        let events =
            libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLPRI | libc::EPOLLET;
        // epoll_ctl under the lock: the event for this token can only be
        // looked up after the slab holds the entry.
        sys::epoll_ctl(&self.epfd, libc::EPOLL_CTL_ADD, fd, events as u32, token)?;
        entry.insert((generation, sio.clone()));
        Ok((key, sio))
    }

    /// Removes a registration; its wakers are dropped when the caller drops
    /// its `Arc` (outside the lock).
    pub(crate) fn deregister(&self, fd: i32, key: usize, sio: &Arc<ScheduledIo>) -> io::Result<()> {
        let mut io = lock(&self.io);
        if io.slab.get(key).is_some_and(|(_, s)| Arc::ptr_eq(s, sio)) {
            io.slab.remove(key);
        }
        drop(io);
        sys::epoll_ctl(&self.epfd, libc::EPOLL_CTL_DEL, fd, 0, 0)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Shut down every registration and timer and drop their wakers, so
        // tasks parked on this reactor are freed (no cycle, no leak).
        let io = self.io.get_mut().unwrap_or_else(|e| e.into_inner());
        let mut wakers = Vec::new();
        for (_, sio) in io.slab.drain() {
            sio.shutdown(&mut wakers);
        }
        self.timers
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .shutdown(&mut wakers);
        self.signals
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .shutdown(&mut wakers);
        drop(wakers);
    }
}

/// Which directions an epoll event makes ready.
pub(crate) fn interest_of(events: u32) -> (bool, bool) {
    let ev = events as i32;
    let read = ev
        & (libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR)
        != 0;
    let write = ev & (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) != 0;
    (read, write)
}

/// The waker of [`block_on`]: flags the future for another poll, unparks the
/// thread if it is parked, and interrupts the reactor if this thread may be
/// asleep in it. Holds the reactor weakly (no cycle through registrations).
struct BlockOnWaker {
    notified: AtomicBool,
    thread: Thread,
    reactor: Weak<Inner>,
}

thread_local! {
    /// The `BlockOnWaker` whose `block_on` runs on this thread (its address;
    /// 0 if none). Lets a wake tell "same thread" in one TLS read, where
    /// `thread::current().id()` would clone an `Arc` on every wake.
    static BLOCK_ON: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl Wake for BlockOnWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Release: pairs with the Acquire swap in `block_on`, so the re-poll
        // sees what the waker's thread did before waking.
        if self.notified.swap(true, Ordering::Release) {
            return;
        }
        let me = Arc::as_ptr(self) as usize;
        if BLOCK_ON.with(|b| b.get()) != me {
            self.thread.unpark();
            if let Some(r) = self.reactor.upgrade() {
                r.wake();
            }
        }
    }
}

/// How long [`block_on`] parks when another thread holds the poller lock
/// before it tries to take the lock itself. The waker unparks it at once;
/// this only bounds the time if the other poller lets go without turning.
const BLOCK_ON_PARK: Duration = Duration::from_millis(1);

/// Runs a future to completion on this thread, turning the reactor while it
/// is pending. Uses the reactor current on this thread, or creates one (and
/// drops it when the future completes).
///
/// ```
/// assert_eq!(handoff_reactor::block_on(async { 7 }), 7);
/// ```
///
/// # Panics
/// When the kernel refuses to create a reactor, or `epoll_pwait` fails
/// (which only happens if the epoll descriptor was closed behind our back).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let handle = Handle::try_current().unwrap_or_else(|| {
        Handle::new().expect("handoff_reactor::block_on: could not create an epoll reactor")
    });
    let _enter = handle.enter();
    let w = Arc::new(BlockOnWaker {
        notified: AtomicBool::new(true),
        thread: thread::current(),
        reactor: handle.downgrade(),
    });
    let waker = Waker::from(w.clone());
    let mut cx = Context::from_waker(&waker);
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            BLOCK_ON.with(|b| b.set(self.0));
        }
    }
    let _restore = Restore(BLOCK_ON.with(|b| b.replace(Arc::as_ptr(&w) as usize)));
    let mut fut = pin!(fut);
    loop {
        // Acquire: pairs with the Release in `BlockOnWaker::wake_by_ref`.
        if w.notified.swap(false, Ordering::Acquire) {
            if let Poll::Ready(v) = crate::coop::budget(|| fut.as_mut().poll(&mut cx)) {
                return v;
            }
            continue;
        }
        match handle.try_lock_poller() {
            Some(mut p) => {
                p.turn(None)
                    .expect("handoff_reactor::block_on: epoll_pwait failed");
            }
            None => thread::park_timeout(BLOCK_ON_PARK),
        }
    }
}
