//! The standby retaker: a call entered while the monitor sleeps past the
//! call's due time is timed by the idle thread that will run its slot,
//! instead of by the monitor.
//!
//! ## Why
//! After a quiet spell (the monitor asleep with no deadline) the hand-off
//! of a slot stuck in a call was two thread wake-ups in series: `enter`
//! woke the monitor, which retook the slot and woke an idle thread to run
//! it. On the 2-vCPU reference VM one wake-up costs ~20 µs at the median
//! (`cargo bench --bench blocking`, latency section, the `floor: futex
//! wake` row), so that hand-off took ~45 µs at the median where
//! `blocking_long` and tokio's `block_in_place`, one wake-up each, take
//! ~25 µs. Measured breakdown (p50, one slot, back-to-back 20 ms calls):
//! enter -> monitor running 17 µs, monitor's round 5 µs, wake -> thread
//! running 20 µs, thread -> B polled 1 µs. Here the `enter` that would
//! have woken the monitor wakes the idle thread instead, and that thread
//! waits out the rest of `retake_after`, retakes and runs the slot itself:
//! one wake-up, which overlaps the call's first microseconds. Measured A/B
//! in the same runs (three runs, 250 rounds each, 30 after idle), p50:
//! back to back 43–58 -> 30–32 µs, after 200 ms idle 44–142 -> 30–32 µs,
//! after 10 ms busy 67–74 -> 43–54 µs. The p99s (0.2–4 ms either way)
//! are the VM's wake-up tails: the bare-thread floor rows show the same.
//!
//! ## Protocol
//! `enter` (slot S, call `tick`, an eager call: Go's retake rule would act
//! once it lasts `retake_after`, i.e. at `due`):
//! 1. the handshake of `slot/watch.rs` finds the monitor sleeping past
//!    `due` (the only case in which `enter` would make a system call);
//! 2. pop an idle thread; none (all busy, or at `max_threads`): wake the
//!    monitor as before;
//! 3. give it the order (S, `tick`, `due`, the caller's CPU) in its
//!    `ThreadCtl` and unpark it (through the reactor if it blocks there).
//!
//! The standby thread (`park_idle`; popped off the idle list, so nobody
//! hands it a core meanwhile):
//! 1. if it runs on the caller's CPU, it may have preempted the caller (a
//!    short call would then only seem to last): yield once first, and
//!    yield rather than spin while it waits;
//! 2. until `due`, watch S's word: the call ended (the word moved on), go
//!    idle again. The wait is at most `retake_after` minus its own wake-up
//!    (~0 at the default 20 µs; calls with a `retake_after` above
//!    `MAX_WAIT` are left to the monitor);
//! 3. at `due`, apply Go's retake rule as the monitor does: a slot with no
//!    local work while another thread could take new work is spared; then
//!    wake the monitor, which times the call from there (`LAZY_LOOK`);
//! 4. else CAS `Syscall -> Idle` with the tick (`Slot::retake`) and run
//!    the core.
//!
//! ## Why it is correct
//! The retake is the one CAS of `slot/mod.rs`: whoever wins it — the
//! returning thread, the standby, or the monitor if a later round saw the
//! call anyway — owns the core (`loom_slot_exit_vs_retake`). No call goes
//! untimed: `enter` skips the monitor's wake only after giving the order to
//! a thread that will see the call end, retake it, or wake the monitor
//! (`loom_watch_enter_standby`). The order travels like a handed core
//! (`ThreadCtl::hand`): a mutex-guarded cell and the thread's parker, so it
//! cannot be lost, and a thread with an order pending does not block in the
//! reactor or exit.
//!
//! ## Which idle thread
//! A slot left by a call goes to an idle thread parked on its futex rather
//! than to the one blocked in the reactor, when there is one
//! (`Idle::pop_thread(true)`, for the standby and `Shared::handoff` alike):
//! on the reference VM a futex wake runs the thread ~22 µs after the call at
//! the median, an eventfd write into `epoll_wait` ~30 µs (the floor rows of
//! `cargo bench --bench blocking`). A one-slot runtime has one idle thread,
//! and it waits in the reactor (the slot was idle when it parked), so a
//! hand-off that takes it from there for the second time within 100 ms
//! asks for one spare thread with no slot (`Shared::poller_taken`): the
//! next thread to leave a call starts it, off the hand-off's path (one at
//! most, under `max_threads`), and it parks on its futex and takes the next
//! hand-offs. A lone hand-off starts nothing, so the rare retakes of
//! `cargo bench --bench blocking`'s 64-task runs (calls preempted by the
//! kernel) still create no thread beyond the slots. Go has the same shape:
//! `startm` takes a thread off `sched.midle`, never the one in netpoll.
//! Measured, one slot, back-to-back 20 ms calls, p50 of the hand-off before
//! -> after: `blocking_long` 33-35 -> 24-26 µs, `blocking` 37-39 -> 28-30
//! µs, learned `blocking` 35 -> 24-27 µs.
//!
//! Where the woken thread runs is the kernel's choice. Pinning it to the
//! caller's CPU first (`sched_setaffinity`) was measured and dropped: the
//! kernel then moves a thread that last ran on the other vCPU, which costs
//! the waker ~24 µs.
//!
//! ## Rejected
//! - A standby for every eager call: a thread wake per call in a stream of
//!   short calls. Only calls that would wake the monitor get one, so the
//!   wake count is what it was.
//! - A thread kept spinning, ready to take a slot: a core's worth of CPU
//!   while calls are rare.
//! - The monitor spinning out the last microseconds before a deadline (to
//!   cut its timer lateness, 20–30 µs p50 on the VM): measured no better,
//!   because after a quiet spell the monitor's own wake-up already ends
//!   past the deadline, and while calls stream it would spin on every poll.
//! - Leaving the retake to the monitor at a higher priority: whatever its
//!   priority, its timed wake after a quiet spell is a second wake-up in
//!   series (see `monitor.rs`, "Priority", for why it runs `SCHED_BATCH`).
use crate::clock::{self, Stamp};
use crate::context::WorkerCx;
use crate::handle::{Counters, Shared};
use crate::idle::RetakeOrder;
use crate::slot::state::Status;
use crate::sys;
use crate::worker::Core;
use std::time::Duration;

/// Longest `retake_after` a standby waits out; above it the monitor times
/// the call (a long wait would hold an idle thread spinning or sleeping on
/// a timer, and the hand-off latency then matters less than a thread).
/// 50 µs: the default 20 µs plus the wake-up it overlaps, with room.
const MAX_WAIT: Duration = Duration::from_micros(50);

/// `enter`'s side (step 2-3): called only when the monitor sleeps past the
/// eager call's `due`. `true`: an idle thread took the call, do not wake
/// the monitor.
#[cold]
pub(crate) fn dispatch(shared: &Shared, slot: usize, tick: u64, due: Stamp) -> bool {
    if shared.config.retake_after > MAX_WAIT || shared.is_shutdown() {
        return false;
    }
    let Some(thread) = shared.idle.pop_thread(true) else {
        return false;
    };
    let order = RetakeOrder {
        slot,
        tick,
        due,
        cpu: sys::current_cpu(),
    };
    if thread.give_order(order) {
        shared.reactor.wake();
        shared.poller_taken();
    }
    true
}

/// The standby thread's side (steps 1-4). `Some`: the retaken core, to be
/// acquired by the caller (its slot is `Idle`).
pub(crate) fn run(cx: &WorkerCx, order: RetakeOrder) -> Option<Box<Core>> {
    let shared = &*cx.shared;
    let slot = &shared.slots[order.slot];
    let on_callers_cpu = order.cpu.is_some() && sys::current_cpu() == order.cpu;
    if on_callers_cpu {
        std::thread::yield_now();
    }
    loop {
        let w = slot.state.load();
        if w.status() != Status::Syscall || w.tick() != order.tick || shared.is_shutdown() {
            return None;
        }
        if clock::now() >= order.due {
            break;
        }
        if on_callers_cpu {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
    // Go's retake rule, as the monitor applies it (monitor.rs, step 1).
    if shared.retake_rule_spares(slot) {
        shared.monitor.wake();
        return None;
    }
    let core = slot.retake(order.tick)?;
    Counters::bump(&shared.counters.retakes);
    if core.has_tasks() {
        Counters::bump(&shared.counters.handoffs);
    }
    Some(core)
}
