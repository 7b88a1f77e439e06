//! The slot status word: who may run a slot's tasks right now.
//!
//! One `AtomicU64`: the low two bits are the status, the rest is the
//! `syscall_tick`, bumped by every `enter`. Packing the tick into the word
//! means the one CAS that decides a slot in `Syscall` also names *which*
//! call it decides: a returning thread whose slot was retaken, handed to
//! another thread and put into a new call by it cannot win the slot back by
//! mistake (its CAS expects the old tick).
//!
//! ```text
//! Idle    --acquire (idle list pop, under its lock)--------> Running
//! Running --enter: owner stores tick+1|Syscall-------------> Syscall
//! Syscall --exit fast: CAS by the thread that entered------> Running
//! Syscall --retake: CAS by the monitor (tick checked)------> Idle
//! Running --release / blocking_long handoff: owner store---> Idle
//! ```
//!
//! - `Idle`: set when the slot's core is on the idle list or in the hands of
//!   the thread it is being handed to; cleared by the thread that takes it.
//! - `Running`: set by the owner; excludes everyone else from the slot's
//!   core (its LIFO slot and the owner end of its ring).
//! - `Syscall`: the owner is in a blocking call and parked the core in the
//!   slot. Exactly one of the returning thread (to `Running`) and the monitor
//!   (to `Idle`) wins the CAS and takes the core; the loser must not touch it.
//!
//! Orderings: `enter`'s store is `Release` and publishes the core parked in
//! the slot (the `SeqCst` fence that follows it in `Signal::call_entered`
//! makes it one side of the monitor's wake-up Dekker pair, `watch.rs`);
//! both CASes out of `Syscall` are `Acquire` (they take that core). The
//! owner's other stores are `Release`.
use crate::loom::{AtomicU64, Ordering};

const STATUS_MASK: u64 = 0b11;
const IDLE: u64 = 0;
const RUNNING: u64 = 1;
const SYSCALL: u64 = 2;
const TICK_SHIFT: u32 = 2;

/// The status part of the word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Idle,
    Running,
    Syscall,
}

/// A loaded value of the word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Snapshot(u64);

impl Snapshot {
    pub(crate) fn status(self) -> Status {
        match self.0 & STATUS_MASK {
            IDLE => Status::Idle,
            RUNNING => Status::Running,
            _ => Status::Syscall,
        }
    }

    pub(crate) fn tick(self) -> u64 {
        self.0 >> TICK_SHIFT
    }
}

/// Outcome of [`State::transition_to_running_from_syscall`].
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ExitCas {
    /// The slot is ours again.
    Won,
    /// The monitor retook the slot (or it moved on to another call).
    Lost,
}

/// Outcome of [`State::transition_to_idle_from_syscall`].
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Retake {
    /// The monitor owns the slot now.
    Retaken,
    /// The thread came back first, or this is no longer the call we timed.
    Missed,
}

pub(crate) struct State {
    word: AtomicU64,
}

impl State {
    pub(crate) fn new() -> State {
        State {
            word: AtomicU64::new(IDLE),
        }
    }

    /// Any thread: the current word (for the monitor and metrics).
    pub(crate) fn load(&self) -> Snapshot {
        // Acquire pairs with enter's Release store: a monitor that sees
        // `Syscall` also sees the entry stamp written before it.
        Snapshot(self.word.load(Ordering::Acquire))
    }

    /// Owner, or a thread that just took the slot off the idle list:
    /// Idle -> Running.
    pub(crate) fn transition_to_running(&self) {
        // Relaxed load: the caller holds the slot, so nobody else writes.
        let w = self.word.load(Ordering::Relaxed);
        assert_eq!(w & STATUS_MASK, IDLE, "a slot was acquired while not idle");
        // Release: publishes nothing the others read, kept symmetric with idle.
        self.word
            .store((w & !STATUS_MASK) | RUNNING, Ordering::Release);
    }

    /// Owner: Running -> Idle (slot released to the idle list or handed off).
    pub(crate) fn transition_to_idle(&self) {
        // Relaxed load: the caller holds the slot, so nobody else writes.
        let w = self.word.load(Ordering::Relaxed);
        assert_eq!(
            w & STATUS_MASK,
            RUNNING,
            "a slot was released while not running"
        );
        // Release pairs with the Acquire of whoever reads the status next.
        self.word.store(w & !STATUS_MASK, Ordering::Release);
    }

    /// Owner: Running -> Syscall with a new tick, which it returns (the
    /// thread needs it for its exit CAS).
    #[must_use]
    pub(crate) fn transition_to_syscall(&self) -> u64 {
        // Relaxed load: the caller holds the slot, so nobody else writes.
        let w = self.word.load(Ordering::Relaxed);
        debug_assert_eq!(
            w & STATUS_MASK,
            RUNNING,
            "enter on a slot that is not running"
        );
        let tick = (w >> TICK_SHIFT).wrapping_add(1);
        // Release: publishes the core parked in the slot (partner: the
        // Acquire CASes below). The caller then runs `Signal::call_entered`,
        // whose SeqCst fence makes this store one side of the monitor's
        // Dekker pair (partner: the fence in `Signal::publish`).
        self.word
            .store((tick << TICK_SHIFT) | SYSCALL, Ordering::Release);
        tick
    }

    /// The thread that entered call `tick`: Syscall -> Running, if it is
    /// still that call's Syscall.
    pub(crate) fn transition_to_running_from_syscall(&self, tick: u64) -> ExitCas {
        let from = (tick << TICK_SHIFT) | SYSCALL;
        let to = (tick << TICK_SHIFT) | RUNNING;
        // Acquire pairs with enter's Release store (the core we parked).
        match self
            .word
            .compare_exchange(from, to, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => ExitCas::Won,
            Err(_) => ExitCas::Lost,
        }
    }

    /// The monitor (or shutdown): Syscall -> Idle for call `tick`.
    pub(crate) fn transition_to_idle_from_syscall(&self, tick: u64) -> Retake {
        let from = (tick << TICK_SHIFT) | SYSCALL;
        let to = tick << TICK_SHIFT;
        // Acquire pairs with enter's Release store (the core parked in the slot).
        match self
            .word
            .compare_exchange(from, to, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Retake::Retaken,
            Err(_) => Retake::Missed,
        }
    }
}
