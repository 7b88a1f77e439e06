//! The handshake between a slot's `enter` and the monitor: the monitor
//! says when it will next look at the slots, and an `enter` wakes it only
//! when that is too late for the call being entered.
//!
//! ## The word
//! `next_look` is a stamp (`clock.rs`): the monitor's timed sleep ends
//! there. `NEVER` (`u64::MAX`) while it sleeps with no deadline, `WOKEN`
//! (0) once an `enter` has claimed the wake-up. While the monitor runs a
//! round the word holds its last deadline (now in the past), so no `enter`
//! wakes a monitor that is awake or already due to wake.
//!
//! ## Protocol, both sides
//! enter (the owner of slot S, a call due at `due = stamp + retake_after`,
//! or `stamp + LAZY_LOOK` when Go's retake rule would spare it, see
//! `LAZY_LOOK`):
//! 1. store `tick + 1 | Syscall` into S's word (`Slot::enter_call`);
//! 2. `SeqCst` fence, load `next_look`; if it is `<= due`, done: the
//!    monitor looks in time (a fence, one load and a compare on the fast
//!    path; on x86-64 the fence is the `mfence` that a `SeqCst` store would
//!    have cost as an `xchg` anyway);
//! 3. else CAS `next_look` from the loaded value to `WOKEN`; the one `enter`
//!    that wins stores `FUTEX_WOKEN` into the futex word and makes the
//!    `futex_wake` system call. A failed CAS re-reads and decides again.
//!
//! monitor, before it sleeps until `D` (`NEVER` for no deadline):
//! 1. store `D` into `next_look`, `SeqCst` fence ([`Signal::publish`]);
//! 2. load every slot's word again: a call it has not seen whose due time
//!    is before `D` means do not sleep, run another round;
//! 3. sleep on the futex word (`FUTEX_IDLE`) until `D`; a `FUTEX_WOKEN`
//!    left by an `enter` makes the sleep return at once.
//!
//! ## Why no wake-up is lost
//! The two `SeqCst` fences are in one total order (Dekker). If the enter's
//! fence comes first, the monitor's re-check after its own fence sees the
//! enter's `Syscall` store and does not sleep past the call. Otherwise the
//! enter's load after its fence sees `D` (or a later value) and wakes the
//! monitor if `D` is too late. Fences rather than `SeqCst` accesses: loom
//! models `SeqCst` loads and stores as acquire/release only, so the model
//! checks exactly this code (a `SeqCst` store/load pair lost a wake-up
//! under loom, as loom warns it may). The
//! futex word carries a wake that lands between the monitor's re-check and
//! its `futex_wait`: the kernel compares the word and refuses to sleep.
//! A wake that finds the monitor awake only makes its next sleep return at
//! once: one spare round, never a missed one.
//!
//! Rejected: a `parked: bool` flag (the previous design). It cannot tell a
//! monitor that sleeps until a near deadline, which will see the new call
//! in time, from one that sleeps for long, so either every call entered
//! while the monitor sleeps pays a wake, or the monitor must never sleep
//! longer than `retake_after` while calls come (it polled).
use crate::clock::Stamp;
use crate::loom::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How soon the monitor must look at a call that Go's retake rule would
/// spare at entry: the slot has no local work (and gets none during the
/// call: only a slot's owner pushes to it) and another slot is idle or a
/// thread spins, so new work has somewhere to go. Such a call needs a
/// retake only if every other slot gets busy meanwhile, or after
/// `LONG_CALL`; looking at it within this long bounds the first case the
/// way Go's sysmon rule checks do, and lets the monitor poll a stream of
/// such calls 25 times less often than every `retake_after`.
pub(crate) const LAZY_LOOK: Duration = Duration::from_micros(500);

/// `next_look` while the monitor sleeps with no deadline.
pub(crate) const NEVER: Stamp = u64::MAX;
/// `next_look` once an `enter` has claimed the wake-up.
const WOKEN: Stamp = 0;

const FUTEX_IDLE: u32 = 0;
const FUTEX_WOKEN: u32 = 1;

/// The monitor's published deadline and futex word.
pub(crate) struct Signal {
    next_look: AtomicU64,
    word: AtomicU32,
    /// `retake_after` in stamp units (fixed at build).
    retake_after: u64,
    /// `LAZY_LOOK` in stamp units.
    lazy_look: u64,
    #[cfg(loom)]
    lock: crate::loom::Mutex<()>,
    #[cfg(loom)]
    cv: crate::loom::Condvar,
}

/// How a monitor's [`Signal::sleep`] ended.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Woke {
    /// An `enter` (or shutdown) woke it.
    Signalled,
    /// Its deadline passed, or a spurious return.
    Timeout,
}

impl Signal {
    /// `retake_after` and `LAZY_LOOK` in stamp units: the due time of a
    /// call is its entry stamp plus one of them.
    pub(crate) fn new(retake_after: u64, lazy_look: u64) -> Signal {
        Signal {
            // The monitor starts asleep with no deadline.
            next_look: AtomicU64::new(NEVER),
            word: AtomicU32::new(FUTEX_IDLE),
            retake_after,
            lazy_look,
            #[cfg(loom)]
            lock: crate::loom::Mutex::new(()),
            #[cfg(loom)]
            cv: crate::loom::Condvar::new(),
        }
    }

    pub(crate) fn retake_after(&self) -> u64 {
        self.retake_after
    }

    pub(crate) fn lazy_look(&self) -> u64 {
        self.lazy_look
    }

    /// `enter`'s side (step 2): a call entered at `stamp`, after its
    /// `Syscall` store. `eager`: the call could need a retake as soon as
    /// it lasts `retake_after` (its slot has local work, or nobody else
    /// could take new work); otherwise it is due at `LAZY_LOOK`. One load
    /// and a compare unless the monitor sleeps past the call's due time;
    /// then an eager call first offers itself to `standby(due)`
    /// (`standby.rs`: an idle thread times it), and only if that declines
    /// is the monitor woken.
    #[inline]
    pub(crate) fn call_entered(
        &self,
        stamp: Stamp,
        eager: bool,
        standby: impl FnOnce(Stamp) -> bool,
    ) {
        let budget = if eager {
            self.retake_after
        } else {
            self.lazy_look
        };
        let due = stamp.wrapping_add(budget);
        // Pairs with the fence in `publish` (the Dekker pair in the module
        // header): orders our `Syscall` store before the load below.
        fence(Ordering::SeqCst);
        // Relaxed: ordered by the fence above.
        let look = self.next_look.load(Ordering::Relaxed);
        if look > due {
            if eager && standby(due) {
                return;
            }
            self.wake_for(due, look);
        }
    }

    #[cold]
    fn wake_for(&self, due: Stamp, mut look: Stamp) {
        while look > due {
            // SeqCst: an RMW on the same word as `publish`; only the enter
            // that moves the word to WOKEN makes the system call.
            match self
                .next_look
                .compare_exchange(look, WOKEN, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => {
                    self.wake_futex();
                    return;
                }
                Err(now) => look = now,
            }
        }
    }

    /// Wakes the monitor whatever it is doing (shutdown, tests).
    pub(crate) fn wake(&self) {
        // SeqCst: as in `wake_for`.
        self.next_look.store(WOKEN, Ordering::SeqCst);
        self.wake_futex();
    }

    fn wake_futex(&self) {
        // Release pairs with the Acquire swap in `sleep`. A swap, not a
        // store (as `Unparker::unpark`): under loom a plain store here let
        // the woken monitor read its own older swap of FUTEX_IDLE and sleep
        // again (a false deadlock in `loom_watch_enter_vs_park`); the RMW
        // costs nothing that matters on this cold path.
        self.word.swap(FUTEX_WOKEN, Ordering::Release);
        self.futex_wake();
    }

    /// The monitor's step 1: it will next look at `next` (`NEVER`: only
    /// when woken). The caller re-checks the slots afterwards.
    pub(crate) fn publish(&self, next: Stamp) {
        // Relaxed: ordered before the caller's re-check by the fence.
        self.next_look.store(next, Ordering::Relaxed);
        // Pairs with the fence in `call_entered` (module header).
        fence(Ordering::SeqCst);
    }

    /// Did an `enter` claim a wake since the last `publish`? (For the
    /// lateness estimate: only a timed-out sleep measures the timer.)
    #[cfg(loom)]
    pub(crate) fn was_woken(&self) -> bool {
        // Relaxed: a hint; the wake itself is carried by the futex word.
        self.next_look.load(Ordering::Relaxed) == WOKEN
    }

    /// The monitor's step 3: sleeps until `deadline` (`None`: until woken).
    pub(crate) fn sleep(&self, deadline: Option<Instant>) -> Woke {
        // Acquire pairs with the Release store in `wake_futex`.
        if self.word.swap(FUTEX_IDLE, Ordering::Acquire) == FUTEX_WOKEN {
            return Woke::Signalled;
        }
        self.futex_wait(deadline);
        // Acquire: as above.
        if self.word.swap(FUTEX_IDLE, Ordering::Acquire) == FUTEX_WOKEN {
            Woke::Signalled
        } else {
            Woke::Timeout
        }
    }

    #[cfg(not(loom))]
    fn futex_wait(&self, deadline: Option<Instant>) {
        crate::sys::futex_wait(&self.word, FUTEX_IDLE, deadline);
    }

    #[cfg(not(loom))]
    fn futex_wake(&self) {
        crate::sys::futex_wake(&self.word, 1);
    }

    #[cfg(loom)]
    fn futex_wait(&self, _deadline: Option<Instant>) {
        // Loom has no time: a timed sleep is modelled as an untimed one
        // (so the models only let the monitor sleep with no deadline).
        let mut g = self.lock.lock().unwrap();
        while self.word.load(Ordering::Relaxed) == FUTEX_IDLE {
            g = self.cv.wait(g).unwrap();
        }
    }

    #[cfg(loom)]
    fn futex_wake(&self) {
        drop(self.lock.lock().unwrap());
        self.cv.notify_all();
    }
}

#[cfg(all(test, loom))]
mod tests {
    use super::super::state::Status;
    use super::super::Slot;
    use super::*;
    use crate::loom::{thread, Arc, AtomicBool};

    const R: u64 = 20;

    fn slot() -> Arc<Slot<u32, u32>> {
        let (_local, steal) = crate::queue::local::<u32>();
        let s = Slot::new(steal);
        s.state.transition_to_running();
        Arc::new(s)
    }

    /// The monitor's side: publish, re-check, sleep. Returns whether it saw
    /// the call (in the re-check or after waking).
    fn monitor_round(s: &Slot<u32, u32>, sig: &Signal, look: Stamp, seen_tick: u64) -> bool {
        sig.publish(look);
        let w = s.state.load();
        if w.status() == Status::Syscall && w.tick() != seen_tick {
            return true; // re-check: run another round instead of sleeping
        }
        let _ = sig.sleep(None);
        // Woken: the next round scans with an Acquire load.
        let w = s.state.load();
        w.tick() != seen_tick
    }

    /// enter against a monitor going to sleep with no deadline, or with a
    /// deadline later than the call's due time (modelled as "until woken":
    /// the sleep would last past the due time): in every interleaving the
    /// monitor either sees the call in its re-check or is woken by the enter
    /// (a lost wake-up leaves the monitor asleep for good, which loom
    /// reports as a deadlock).
    #[test]
    fn loom_watch_enter_vs_park() {
        for look in [NEVER, 5 + R + 1] {
            enter_vs_park(look);
        }
    }

    fn enter_vs_park(look: Stamp) {
        loom::model(move || {
            let s = slot();
            let sig = Arc::new(Signal::new(R, 4 * R));
            // The monitor was awake (its last deadline has passed).
            sig.publish(1);
            let (s2, sig2) = (s.clone(), sig.clone());
            let enter = thread::spawn(move || {
                let stamp = 5;
                let _tick = s2.enter_call(Box::new(7), stamp);
                sig2.call_entered(stamp, true, |_| false);
            });
            assert!(monitor_round(&s, &sig, look, 0), "the monitor saw the call");
            enter.join().unwrap();
        });
    }

    /// Two slots enter at once against a parking monitor: exactly one of
    /// them claims the wake (one system call), and the monitor sees both
    /// calls once it runs.
    #[test]
    fn loom_watch_two_enters_one_wake() {
        loom::model(|| {
            let a = slot();
            let b = slot();
            let sig = Arc::new(Signal::new(R, 4 * R));
            let spawn_enter = |s: &Arc<Slot<u32, u32>>, sig: &Arc<Signal>| {
                let (s, sig) = (s.clone(), sig.clone());
                thread::spawn(move || {
                    let _tick = s.enter_call(Box::new(1), 5);
                    sig.call_entered(5, true, |_| false);
                })
            };
            // The monitor is asleep with no deadline (published before the
            // enters start).
            let ta = spawn_enter(&a, &sig);
            let tb = spawn_enter(&b, &sig);
            ta.join().unwrap();
            tb.join().unwrap();
            assert!(sig.was_woken(), "a call past NEVER claims the wake");
            assert_eq!(sig.sleep(None), Woke::Signalled);
            for s in [&a, &b] {
                assert_eq!(s.state.load().status(), Status::Syscall);
            }
        });
    }

    /// An eager call entered while the monitor goes to sleep with no
    /// deadline, with a standby retaker (`standby.rs`) that takes the call
    /// or declines it (no idle thread): in every interleaving the call is
    /// seen by the monitor's re-check, or wakes the monitor, or is given to
    /// the standby — never none of them, and never both wakes.
    #[test]
    fn loom_watch_enter_standby() {
        for takes in [true, false] {
            loom::model(move || {
                let s = slot();
                let sig = Arc::new(Signal::new(R, 4 * R));
                // The monitor was awake (its last deadline has passed).
                sig.publish(1);
                let given = Arc::new(AtomicBool::new(false));
                let (s2, sig2, g2) = (s.clone(), sig.clone(), given.clone());
                let enter = thread::spawn(move || {
                    let _tick = s2.enter_call(Box::new(7), 5);
                    sig2.call_entered(5, true, |due| {
                        assert_eq!(due, 5 + R, "the standby waits for the eager due time");
                        // Relaxed: read after the join.
                        g2.store(takes, Ordering::Relaxed);
                        takes
                    });
                });
                // The monitor's steps 1-2 before a sleep with no deadline.
                sig.publish(NEVER);
                let w = s.state.load();
                let saw = w.status() == Status::Syscall && w.tick() != 0;
                enter.join().unwrap();
                let woken = sig.was_woken();
                let given = given.load(Ordering::Relaxed);
                assert!(saw || woken || given, "a call that nobody times");
                assert!(
                    !(woken && given),
                    "the monitor was woken for a call a standby took"
                );
            });
        }
    }

    /// A monitor that will look before the call is due is not woken: the
    /// enter's fast path makes no system call.
    #[test]
    fn loom_watch_no_wake_when_in_time() {
        loom::model(|| {
            let s = slot();
            let sig = Arc::new(Signal::new(R, 4 * R));
            sig.publish(10);
            let (s2, sig2) = (s.clone(), sig.clone());
            let enter = thread::spawn(move || {
                let _tick = s2.enter_call(Box::new(7), 5);
                sig2.call_entered(5, true, |_| panic!("no wake needed")); // due 25 >= 10
            });
            enter.join().unwrap();
            assert!(!sig.was_woken());
        });
    }
}
