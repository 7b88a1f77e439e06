//! A worker slot (Go's P): the right to run tasks.
//!
//! The slot's shared half lives in the runtime's slot array (`Slot`); its
//! owner half — the LIFO `next` slot, the owner end of the ring, the tick
//! counters — is a `Core`, a value moved by `Box` from thread to thread
//! (tokio's `Box<Core>`): *holding the core is owning the slot*.
//!
//! Where a core can be, and who may touch it:
//! - in a running thread's context (`Status::Running`): only that thread;
//! - on the idle list (`Status::Idle`): whoever pops it under the list's lock;
//! - parked in `Slot::core` (`Status::Syscall`): nobody, until one CAS out
//!   of `Syscall` (the returning thread's or the monitor's) is won; the
//!   winner takes it out. That cell is the only place a core is shared, and
//!   the status word (`state.rs`) is its lock.
//!
//! Fields of `Slot` and who touches them:
//! - `state`: see `state.rs`;
//! - `stamp`: written by the owner in `enter` before the `Syscall` store,
//!   read by the monitor after it loads `Syscall` (a later call may have
//!   overwritten it: the monitor then sees a later deadline, never an
//!   earlier one);
//! - `steal`: any thread (thieves, the monitor's "has local work" test,
//!   metrics);
//! - `thread`: the OS thread id of the thread that last took the core
//!   (Idle -> Running), written by that thread (`Slot::run_on`), read by
//!   the monitor to look at the thread inside a late call
//!   (`thread_state.rs`). A hint: `Relaxed`, 0 until first written;
//!   written when a thread takes the core, never on the `blocking` fast
//!   path (whose exit gives the core back to the same thread);
//! - `starved`: the tick of the last call the monitor retook only because
//!   its thread waited `LONG_CALL` for a CPU (`monitor.rs`); written by the
//!   monitor before its retake CAS, read by the thread whose exit lost to
//!   it (`Slot::was_starved`). A hint (`Relaxed`): a stale read makes
//!   the retake count as an ordinary one for call-site learning;
//! - counters: written by the owner only (a load and a store, no RMW: one
//!   writer at a time), read by metrics.
pub(crate) mod state;
pub(crate) mod watch;

use crate::clock::Stamp;
use crate::loom::{AtomicU32, AtomicU64, Ordering, UnsafeCell};
use crate::queue::Steal;
use state::{ExitCas, Retake, State};

/// A counter written by one thread at a time (a slot's owner): a plain
/// load and store, with no locked instruction on the hot path. Read
/// (`Relaxed`, a statistic) by metrics snapshots.
#[derive(Default)]
pub(crate) struct OwnerCounter(AtomicU64);

impl OwnerCounter {
    /// Relaxed: a statistic; the owner is the only writer, so no update is lost.
    #[inline]
    pub(crate) fn incr(&self) {
        self.add(1);
    }

    #[inline]
    pub(crate) fn add(&self, n: u64) {
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.wrapping_add(n), Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Per-slot statistics, owner-written.
#[derive(Default)]
pub(crate) struct SlotCounters {
    pub(crate) polls: OwnerCounter,
    pub(crate) steals: OwnerCounter,
    pub(crate) stolen_tasks: OwnerCounter,
    pub(crate) tasks_spawned: OwnerCounter,
    pub(crate) fast_exits: OwnerCounter,
    pub(crate) idle_slot_exits: OwnerCounter,
    pub(crate) overflows: OwnerCounter,
    pub(crate) enters: OwnerCounter,
}

/// The shared half of a slot. `C` is the core type, `T` the task type.
#[repr(align(128))] // own cache lines: slots are written by different threads
pub(crate) struct Slot<C, T> {
    pub(crate) state: State,
    pub(crate) stamp: AtomicU64,
    pub(crate) thread: AtomicU32,
    pub(crate) starved: AtomicU64,
    core: UnsafeCell<Option<Box<C>>>,
    pub(crate) steal: Steal<T>,
    pub(crate) counters: SlotCounters,
}

// SAFETY: `core` is accessed only by the winner of the status CAS (module
// header); everything else is atomics. Cores and tasks move between threads.
unsafe impl<C: Send, T: Send> Sync for Slot<C, T> {}
// SAFETY: as above.
unsafe impl<C: Send, T: Send> Send for Slot<C, T> {}

impl<C, T> Slot<C, T> {
    pub(crate) fn new(steal: Steal<T>) -> Slot<C, T> {
        Slot {
            state: State::new(),
            stamp: AtomicU64::new(0),
            thread: AtomicU32::new(0),
            starved: AtomicU64::new(0),
            core: UnsafeCell::new(None),
            steal,
            counters: SlotCounters::default(),
        }
    }

    /// Thread `tid` took the slot's core (off the idle list, handed over,
    /// or by an exit that found it idle): Idle -> Running, and the monitor
    /// will look at `tid` if a call of this slot is late.
    pub(crate) fn run_on(&self, tid: u32) {
        // Relaxed: a hint for the monitor, which reads it after the Acquire
        // load of the `Syscall` word this thread stores later (`enter`'s
        // Release store publishes it); a stale value only misdirects a look
        // at a call whose tick has moved on, whose retake CAS then fails.
        self.thread.store(tid, Ordering::Relaxed);
        self.state.transition_to_running();
    }

    /// The owner parks its core here and moves the slot to `Syscall`
    /// (Go's `reentersyscall`). Returns the call's tick for the exit CAS.
    #[must_use]
    pub(crate) fn enter_call(&self, core: Box<C>, stamp: Stamp) -> u64 {
        // Relaxed: published by the Release status store just below.
        self.stamp.store(stamp, Ordering::Relaxed);
        // SAFETY: the slot is `Running` and we own it (we hold its core), so
        // nobody reads the cell until the store below publishes `Syscall`
        // and a CAS out of it is won.
        self.core.with_mut(|p| unsafe { *p = Some(core) });
        self.state.transition_to_syscall()
    }

    /// The thread that entered call `tick` takes its core back, if the
    /// monitor did not retake it first (Go's `exitsyscallfast`).
    #[inline]
    pub(crate) fn exit_call(&self, tick: u64) -> Option<Box<C>> {
        match self.state.transition_to_running_from_syscall(tick) {
            // SAFETY: we won the only CAS out of this `Syscall`: the core is ours.
            ExitCas::Won => self.core.with_mut(|p| unsafe { (*p).take() }),
            ExitCas::Lost => None,
        }
    }

    /// Was call `tick`, whose exit lost the slot, retaken only because its
    /// thread waited for a CPU (`starved` above)?
    pub(crate) fn was_starved(&self, tick: u64) -> bool {
        // Relaxed: a hint (module header).
        self.starved.load(Ordering::Relaxed) == tick
    }

    /// The monitor (or shutdown) retakes the slot from call `tick`.
    pub(crate) fn retake(&self, tick: u64) -> Option<Box<C>> {
        match self.state.transition_to_idle_from_syscall(tick) {
            // SAFETY: we won the only CAS out of this `Syscall`: the core is ours.
            Retake::Retaken => self.core.with_mut(|p| unsafe { (*p).take() }),
            Retake::Missed => None,
        }
    }
}

#[cfg(all(test, loom))]
mod tests {
    use super::state::Status;
    use super::*;
    use crate::loom::{thread, Arc};

    fn slot() -> Arc<Slot<u32, u32>> {
        let (_local, steal) = crate::queue::local::<u32>();
        let s = Slot::new(steal);
        s.state.transition_to_running();
        Arc::new(s)
    }

    /// The monitor's side: load the word, retake if it is in a call.
    fn monitor_retake(s: &Slot<u32, u32>) -> Option<(Box<u32>, u64)> {
        let snap = s.state.load();
        if snap.status() == Status::Syscall {
            s.retake(snap.tick()).map(|c| (c, snap.tick()))
        } else {
            None
        }
    }

    /// enter / exit against a retake: in every interleaving exactly one of
    /// the returning thread and the monitor owns the slot.
    #[test]
    fn loom_slot_exit_vs_retake() {
        loom::model(|| {
            let s = slot();
            let tick = s.enter_call(Box::new(7), 1);
            let m = s.clone();
            let monitor = thread::spawn(move || monitor_retake(&m).map(|(c, _)| c));
            let mine = s.exit_call(tick);
            let theirs = monitor.join().unwrap();
            assert!(mine.is_some() ^ theirs.is_some(), "exactly one owner");
            assert_eq!(*mine.or(theirs).unwrap(), 7, "the core is intact");
        });
    }

    /// The retaken slot is handed to another thread that enters a call of
    /// its own on it: the first thread's late exit must not win it back
    /// (the tick in the word tells the two calls apart).
    #[test]
    fn loom_slot_retake_handoff_reenter() {
        loom::model(|| {
            let s = slot();
            let tick = s.enter_call(Box::new(7), 1);
            let m = s.clone();
            let other = thread::spawn(move || {
                let (core, seen) = monitor_retake(&m)?;
                assert_eq!(seen, tick);
                // handed off: the new owner runs it and enters a call
                m.state.transition_to_running();
                let t2 = m.enter_call(core, 2);
                thread::yield_now();
                m.exit_call(t2)
            });
            let mine = s.exit_call(tick);
            let theirs = other.join().unwrap();
            assert!(mine.is_some() ^ theirs.is_some(), "exactly one owner");
        });
    }

    /// blocking_long: the owner hands the slot off (Running -> Idle onto the
    /// idle list) before its call; on exit it competes with a thread taking
    /// idle slots: exactly one gets it.
    #[test]
    fn loom_slot_long_handoff() {
        loom::model(|| {
            let s = slot();
            let idle = Arc::new(crate::loom::Mutex::new(Vec::<Box<u32>>::new()));
            s.state.transition_to_idle();
            idle.lock().unwrap().push(Box::new(7));
            let (i2, s2) = (idle.clone(), s.clone());
            let taker = thread::spawn(move || {
                let c = i2.lock().unwrap().pop();
                if c.is_some() {
                    s2.state.transition_to_running();
                }
                c
            });
            // the returning thread's exit: no old slot, try the idle list
            let mine = idle.lock().unwrap().pop();
            if mine.is_some() {
                s.state.transition_to_running();
            }
            let theirs = taker.join().unwrap();
            assert!(mine.is_some() ^ theirs.is_some(), "exactly one owner");
        });
    }
}
