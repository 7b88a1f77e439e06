//! Idle slots, idle threads and spinning threads; the no-lost-wake-up protocol.
//!
//! Counters (lock-free reads) and two lists under one lock (Go's `sched.lock`):
//! - `num_idle`: cores on the idle list (Go's `npidle`);
//! - `num_spinning`: threads that hold a core, found no work in it and are
//!   looking elsewhere (Go's `nmspinning`). At most half the busy slots'
//!   worth spin (`2 * spinning < slots - idle`): more would only contend;
//! - the idle core list and the idle thread list. A thread on the idle
//!   thread list holds no core; it is handed one through its `ThreadCtl`.
//!
//! ## Submitting work (any thread)
//! 1. Push the task (local ring, or global queue).
//! 2. `SeqCst` fence.
//! 3. If no thread is spinning and a core is idle, CAS `num_spinning` 0 -> 1
//!    and start a thread on an idle core as a spinner (`notify`).
//!
//! ## Stopping (a thread with a core and no work)
//! 1. Put the core on the idle list (`num_idle += 1`).
//! 2. If it was spinning, `num_spinning -= 1` (`SeqCst`).
//! 3. `SeqCst` fence, then re-check every ring and the global queue; if any
//!    has work, take an idle core back and spin again.
//!
//! Why no wake-up is lost: in the single total order of the `SeqCst`
//! operations, either the submitter's check (3) comes after the stopper's
//! steps 1-2, so it sees `num_idle > 0` and `num_spinning == 0` (or another
//! spinner, which in turn re-checks when it stops) and wakes someone; or it
//! comes before, and then the stopper's re-check (3) comes after the push and
//! finds the task. This is the protocol written in the header of Go's
//! `proc.go` ("Worker thread parking/unparking").
//!
//! A spinner that finds work stops spinning; if it was the last spinner and
//! cores are idle it wakes another (Go's `resetspinning`), so a burst of
//! work fans out one thread at a time instead of waking every thread.
//!
//! Rejected: waking a thread on every submit (thundering herd, a futex wake
//! per spawn) and one global condvar for all idle threads (cannot hand a
//! particular core to a particular thread, which the bridge's handoff needs).
use crate::loom::{fence, Arc, AtomicBool, AtomicUsize, Mutex, MutexGuard, Ordering};
use crate::park::Unparker;

/// A retake order an `enter` gives to an idle thread (`standby.rs`): retake
/// slot `slot` from call `tick` once it lasts until `due`, unless it ends.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RetakeOrder {
    /// The slot in the call.
    pub(crate) slot: usize,
    /// The call's tick (the retake CAS checks it).
    pub(crate) tick: u64,
    /// When Go's retake rule may act: entry + `retake_after` (a stamp).
    pub(crate) due: u64,
    /// The CPU the caller entered the call on, if known.
    pub(crate) cpu: Option<u32>,
}

/// A thread of the runtime, as seen by the idle list and by whoever hands it
/// a core. Owned by `Arc`: the thread itself, the idle list and the
/// runtime's registry of threads.
pub(crate) struct ThreadCtl<C> {
    unparker: Unparker,
    /// A core handed to this thread while it was idle.
    next: Mutex<Option<Box<C>>>,
    /// Set while the thread blocks in the reactor instead of its parker: a
    /// waker must then also wake the reactor.
    pub(crate) in_poller: AtomicBool,
    /// Set while the thread is inside a blocking call (shutdown does not
    /// wait for it). Written by the thread only.
    pub(crate) in_call: AtomicBool,
    /// Set when the thread has exited.
    pub(crate) exited: AtomicBool,
    /// A retake order given to this thread while it was idle (`standby.rs`);
    /// like `next`, set only by whoever popped the thread off the idle list.
    order: Mutex<Option<RetakeOrder>>,
}

impl<C> ThreadCtl<C> {
    pub(crate) fn new(unparker: Unparker) -> ThreadCtl<C> {
        ThreadCtl {
            unparker,
            next: Mutex::new(None),
            in_poller: AtomicBool::new(false),
            in_call: AtomicBool::new(false),
            exited: AtomicBool::new(false),
            order: Mutex::new(None),
        }
    }

    /// Takes the core handed to this thread, if any.
    pub(crate) fn take_handed(&self) -> Option<Box<C>> {
        self.next.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Was this thread handed a core or given a retake order (it must then
    /// neither block in the reactor nor exit)?
    pub(crate) fn has_handed(&self) -> bool {
        self.next
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
            || self
                .order
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some()
    }

    /// Takes the retake order given to this thread, if any.
    pub(crate) fn take_order(&self) -> Option<RetakeOrder> {
        self.order.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Gives this (idle, unlisted) thread a retake order and wakes it, as
    /// `hand` does with a core. Returns `true` when the thread sits in the
    /// reactor and the caller must wake it.
    #[must_use]
    pub(crate) fn give_order(&self, order: RetakeOrder) -> bool {
        let prev = self
            .order
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(order);
        assert!(prev.is_none(), "two retake orders were given to one thread");
        self.unparker.unpark();
        // SeqCst pairs with the SeqCst store of `in_poller`, as in `hand`.
        fence(Ordering::SeqCst);
        self.in_poller.load(Ordering::SeqCst)
    }

    /// Hands a core to this (idle, unlisted) thread and wakes it. Returns
    /// `true` when the thread sits in the reactor and the caller must wake it.
    #[must_use]
    pub(crate) fn hand(&self, core: Box<C>) -> bool {
        let prev = self
            .next
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(core);
        assert!(prev.is_none(), "two cores were handed to one thread");
        self.unparker.unpark();
        // SeqCst pairs with the SeqCst store of `in_poller` by the thread
        // before it re-checks `next` and blocks in the reactor.
        fence(Ordering::SeqCst);
        self.in_poller.load(Ordering::SeqCst)
    }

    pub(crate) fn unpark(&self) {
        self.unparker.unpark();
    }
}

struct Lists<C> {
    cores: Vec<Box<C>>,
    threads: Vec<Arc<ThreadCtl<C>>>,
}

pub(crate) struct Idle<C> {
    nslots: usize,
    num_idle: AtomicUsize,
    num_spinning: AtomicUsize,
    num_idle_threads: AtomicUsize,
    lists: Mutex<Lists<C>>,
}

impl<C> Idle<C> {
    pub(crate) fn new(nslots: usize) -> Idle<C> {
        Idle {
            nslots,
            num_idle: AtomicUsize::new(0),
            num_spinning: AtomicUsize::new(0),
            num_idle_threads: AtomicUsize::new(0),
            lists: Mutex::new(Lists {
                cores: Vec::with_capacity(nslots),
                threads: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Lists<C>> {
        self.lists.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn num_idle(&self) -> usize {
        // SeqCst: one side of the protocol in the module header.
        self.num_idle.load(Ordering::SeqCst)
    }

    pub(crate) fn num_spinning(&self) -> usize {
        // SeqCst: one side of the protocol in the module header.
        self.num_spinning.load(Ordering::SeqCst)
    }

    /// Could a thread other than the caller take new work right now (a
    /// core is idle or a thread spins)? Go's retake rule asks this, and
    /// `enter` uses it to tell the monitor how soon its call could need a
    /// retake (`slot/watch.rs`).
    #[inline]
    pub(crate) fn can_take_work(&self) -> bool {
        // Relaxed: a hint. A stale answer only moves the moment the monitor
        // looks at a call between `retake_after` and `LAZY_LOOK`, and the
        // retake rule is evaluated again by the monitor when it looks.
        self.num_idle.load(Ordering::Relaxed) + self.num_spinning.load(Ordering::Relaxed) > 0
    }

    pub(crate) fn num_idle_threads(&self) -> usize {
        // Relaxed: a statistic and a hint for the monitor's retake rule.
        self.num_idle_threads.load(Ordering::Relaxed)
    }

    /// Submitter step 2-3: after pushing work, should a spinner be started?
    /// On `true` the caller owns one `num_spinning` count and must start a
    /// thread on a core from `pop_core` (or give the count back).
    pub(crate) fn claim_wake(&self) -> bool {
        // Pairs with the SeqCst decrement in `stop_spinning` and the SeqCst
        // increments of `num_idle` (protocol in the module header).
        fence(Ordering::SeqCst);
        if self.num_spinning.load(Ordering::SeqCst) != 0
            || self.num_idle.load(Ordering::SeqCst) == 0
        {
            return false;
        }
        self.num_spinning
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
    }

    /// A thread with a core and no work: may it spin (steal)? On `true` it
    /// counts as spinning until `stop_spinning`.
    pub(crate) fn start_spinning(&self) -> bool {
        let spinning = self.num_spinning.load(Ordering::SeqCst);
        let busy = self
            .nslots
            .saturating_sub(self.num_idle.load(Ordering::SeqCst));
        if 2 * spinning >= busy.max(1) {
            return false;
        }
        self.num_spinning.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// Stops spinning; `true` when this was the last spinner (the caller
    /// then wakes another if cores are idle, or re-checks the queues).
    pub(crate) fn stop_spinning(&self) -> bool {
        // SeqCst: the stopper's step 2 (module header).
        let prev = self.num_spinning.fetch_sub(1, Ordering::SeqCst);
        debug_assert!(prev > 0, "spinning count underflow");
        prev == 1
    }

    /// Takes an idle core (the caller moves its slot to `Running`).
    pub(crate) fn pop_core(&self) -> Option<Box<C>> {
        if self.num_idle.load(Ordering::SeqCst) == 0 {
            return None;
        }
        let mut l = self.lock();
        let c = l.cores.pop()?;
        // SeqCst: written under the lock, read lock-free by the protocol.
        self.num_idle.store(l.cores.len(), Ordering::SeqCst);
        Some(c)
    }

    /// Puts a core on the idle list (its slot already moved to `Idle`).
    pub(crate) fn push_core(&self, core: Box<C>) {
        let mut l = self.lock();
        l.cores.push(core);
        assert!(l.cores.len() <= self.nslots, "more idle cores than slots");
        // SeqCst: the stopper's step 1 (module header).
        self.num_idle.store(l.cores.len(), Ordering::SeqCst);
    }

    /// Drains the idle cores (shutdown).
    pub(crate) fn take_all_cores(&self) -> Vec<Box<C>> {
        let mut l = self.lock();
        self.num_idle.store(0, Ordering::SeqCst);
        std::mem::take(&mut l.cores)
    }

    /// An idle thread to hand a core (or a retake order) to, removed from
    /// the list: the most recently listed one. With `parked`, for the
    /// hand-off of a slot left by a call, the most recently listed one that
    /// is not blocked in the reactor, if any: Go's `startm` never takes the
    /// thread blocked in netpoll either (it is not on `sched.midle`). A
    /// thread parked on its futex runs sooner (on the reference VM ~22 µs
    /// after the wake at the median, ~30 µs for an eventfd write into
    /// `epoll_wait`: `cargo bench --bench blocking`, the floor rows).
    pub(crate) fn pop_thread(&self, parked: bool) -> Option<Arc<ThreadCtl<C>>> {
        /// How many of the most recently listed threads to look at: the
        /// lock is Go's `sched.lock`, and one thread at most is the poller.
        const LOOK: usize = 4;
        let mut l = self.lock();
        let n = l.threads.len();
        let look = if parked { LOOK } else { 0 };
        // Relaxed: a hint; `hand` and `give_order` read the flag again
        // (SeqCst) to decide whether the reactor must be woken.
        let at = (n.saturating_sub(look)..n)
            .rev()
            .find(|&i| !l.threads[i].in_poller.load(Ordering::Relaxed))
            .or(n.checked_sub(1))?;
        let t = l.threads.remove(at);
        self.num_idle_threads
            .store(l.threads.len(), Ordering::Relaxed);
        Some(t)
    }

    /// Is an idle thread listed that is not blocked in the reactor (one
    /// that a hand-off would wake through its futex)?
    pub(crate) fn has_parked_thread(&self) -> bool {
        // Relaxed: a hint, as in `pop_thread`.
        self.lock()
            .threads
            .iter()
            .any(|t| !t.in_poller.load(Ordering::Relaxed))
    }

    /// Lists a thread as idle (it holds no core).
    pub(crate) fn push_thread(&self, t: &Arc<ThreadCtl<C>>) {
        let mut l = self.lock();
        if !l.threads.iter().any(|x| Arc::ptr_eq(x, t)) {
            l.threads.push(t.clone());
        }
        self.num_idle_threads
            .store(l.threads.len(), Ordering::Relaxed);
    }

    /// Unlists a thread; `false` when someone popped it already (and so
    /// will hand it a core).
    pub(crate) fn remove_thread(&self, t: &Arc<ThreadCtl<C>>) -> bool {
        let mut l = self.lock();
        let found = match l.threads.iter().position(|x| Arc::ptr_eq(x, t)) {
            Some(i) => {
                l.threads.swap_remove(i);
                true
            }
            None => false,
        };
        self.num_idle_threads
            .store(l.threads.len(), Ordering::Relaxed);
        found
    }

    /// Unparks one listed idle thread without taking it off the list (it
    /// re-evaluates: takes an idle core with work, or the reactor).
    pub(crate) fn nudge_thread(&self) {
        let l = self.lock();
        if let Some(t) = l.threads.last() {
            t.unparker.unpark();
        }
    }

    /// Every idle thread (shutdown wakes them all).
    pub(crate) fn take_all_threads(&self) -> Vec<Arc<ThreadCtl<C>>> {
        let mut l = self.lock();
        self.num_idle_threads.store(0, Ordering::Relaxed);
        std::mem::take(&mut l.threads)
    }
}

#[cfg(all(test, loom))]
mod tests {
    use super::*;
    use crate::loom::{thread, AtomicBool};

    /// The wake protocol of the module header: a submitter queues work while
    /// the last spinner gives its core back. In every interleaving either the
    /// stopper's re-check finds the work or the submitter claims a wake-up
    /// (and finds the idle core to start a thread on).
    #[test]
    fn loom_idle_no_lost_wakeup() {
        loom::model(|| {
            let idle = Arc::new(Idle::<u32>::new(1));
            assert!(idle.start_spinning(), "the only busy slot may spin");
            let work = Arc::new(AtomicBool::new(false));
            let (i2, w2) = (idle.clone(), work.clone());
            let submitter = thread::spawn(move || {
                w2.store(true, Ordering::Release); // step 1: queue the task
                if i2.claim_wake() {
                    // steps 2-3: a spinner is started on an idle core
                    i2.pop_core().is_some() || {
                        i2.stop_spinning();
                        false
                    }
                } else {
                    false
                }
            });
            idle.push_core(Box::new(0)); // stopper step 1
            idle.stop_spinning(); // step 2
            fence(Ordering::SeqCst); // step 3
            let found = work.load(Ordering::Acquire);
            let woke = submitter.join().unwrap();
            assert!(found || woke, "the task was queued and nobody will run it");
        });
    }

    /// The reactor handshake of `worker.rs` ("Without a core") and
    /// `Shared::handoff`: an idle thread enters the reactor only while a
    /// core is idle, else it parks; a core parked with nobody in the reactor
    /// nudges a listed idle thread. The reactor's poller lock is modelled by
    /// `poller_held`. In every interleaving the core that went idle ends up
    /// watched: the thread saw it and took the reactor, or it was unparked
    /// and looks again (here: its `park` returns, which loom checks cannot
    /// hang).
    #[test]
    fn loom_idle_core_gets_a_poller() {
        loom::model(|| {
            let idle = Arc::new(Idle::<u32>::new(1));
            let poller_held = Arc::new(AtomicBool::new(false));
            let parker = crate::park::Parker::new();
            let me = Arc::new(ThreadCtl::<u32>::new(parker.unparker()));
            let (i2, p2) = (idle.clone(), poller_held.clone());
            // `Shared::handoff` with no work: park the core, then nudge.
            let hander = thread::spawn(move || {
                i2.push_core(Box::new(0));
                fence(Ordering::SeqCst);
                if !p2.load(Ordering::SeqCst) {
                    i2.nudge_thread();
                }
            });
            // `park_idle`: list, then take the reactor only with a core idle.
            idle.push_thread(&me);
            let mut polled = false;
            loop {
                fence(Ordering::SeqCst);
                if idle.num_idle() > 0 {
                    if poller_held
                        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        polled = true;
                    }
                    break;
                }
                // No idle core (yet): park off the reactor. A nudge ends it;
                // with no core ever parked, the hander has not run yet, and
                // its nudge is still to come.
                parker.park();
            }
            hander.join().unwrap();
            assert!(polled, "a core went idle and no thread took the reactor");
        });
    }
}
