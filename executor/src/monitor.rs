//! The monitor (Go's `sysmon`): one thread that retakes slots stuck in a
//! blocking call and hands them to other threads.
//!
//! ## Costs it is designed around
//! - The fast path of `blocking` pays one load for the monitor: `enter`
//!   reads `parked` and wakes the monitor only if it is set.
//! - No CPU while no slot is in a call: the monitor parks on a futex.
//! - A retake about `retake_after` after entry, whatever happened before
//!   (Go's sysmon backs off to 10 ms sleeps after a quiet spell, so its
//!   retake then takes milliseconds; here a parked monitor is woken by the
//!   first `enter` and the entry stamp gives it the exact deadline).
//!
//! ## Loop
//! 1. Load every slot's word. For a slot in `Syscall`, its deadline is
//!    `stamp + retake_after` (`stamp` is the entry time `enter` wrote). Past
//!    the deadline, apply Go's retake rule: retake when the slot has local
//!    work, or no thread spins and no slot is idle (nobody else could take
//!    new work), or the call has lasted `LONG_CALL`. Retake = CAS
//!    `Syscall -> Idle` checking the call's tick, then hand off
//!    (`Shared::handoff`).
//! 2. While calls are being seen, sleep until the earliest deadline, but
//!    never longer than `retake_after` (a call that starts while we sleep is
//!    then seen by its own deadline). A precise sleep: the thread's timer
//!    slack is 1 ns, the futex wait takes an absolute deadline, and every
//!    deadline is brought forward by the measured lateness of past wakes
//!    (`Lateness`).
//! 3. After `QUIET_ROUNDS` rounds in which no call started (the slots'
//!    ticks did not move), park: store `parked = true` (`SeqCst`), re-check
//!    every slot's word (`SeqCst`) for a call not seen yet, and sleep on the
//!    futex until the next known deadline (a call already being timed, a
//!    spared call's re-check) or until an `enter` (or shutdown, or the
//!    schedtrace clock) wakes us.
//!    So a stream of short calls costs a wake per `retake_after` while it
//!    lasts and one futex wake when it starts, not one per call.
//!
//! ## Priority
//! The monitor runs at nice 19. While calls stream, it wakes every
//! `retake_after`; at normal priority each wake preempts a worker when all
//! CPUs are busy (10–20 µs of lost CPU per wake on a VM: measured, a
//! `getpid` loop ran at 2× its cost). At nice 19 a waking monitor does not
//! preempt busy workers; it runs on an idle CPU — and a call that really
//! blocks leaves its CPU idle, which is exactly when a retake is needed. A
//! call that keeps its CPU busy (a long computation in the kernel) only
//! gains from a retake if another CPU is idle, where the monitor then runs.
//! CFS still gives the monitor a small share on a saturated machine, so
//! retakes slow down there rather than stop.
//!
//! No lost wake-up: `enter` stores `Syscall` (`SeqCst`) then loads `parked`
//! (`SeqCst`); the monitor stores `parked` then loads the words. In the
//! single order of `SeqCst` operations one of the two sees the other.
//!
//! Rejected: Go's fixed 20 µs tick with back-off (CPU while idle, late
//! retakes after a quiet spell; golang/go#18236 measured 6–12% of a core);
//! a timer armed by every `enter` (a system call on the fast path).
use crate::builder::Config;
use crate::clock::{self, Stamp};
use crate::handle::{Counters, Shared};
use crate::loom::{Arc, AtomicBool, AtomicU32, Ordering};
use crate::slot::state::Status;
use crate::sys;
use std::time::{Duration, Instant};

/// A call that lasted this long is retaken even when idle slots could take
/// new work: Go's sysmon uses 10 ms (`forcegc`-independent syscall limit),
/// so a slot's local tasks never wait longer than that behind a call.
pub(crate) const LONG_CALL: Duration = Duration::from_millis(10);

/// Rounds (each at most `retake_after` long) with no call seen before the
/// monitor parks: Go's sysmon starts backing off after 50 idle rounds (1 ms
/// at 20 µs), which keeps a bursty stream of calls from paying a futex
/// wake per burst.
pub(crate) const QUIET_ROUNDS: u32 = 50;

/// A slot past its deadline that the retake rule spared is looked at again
/// after this long (the rule's inputs — idle slots, spinners — change
/// rarely; checking every `retake_after` would cost 50 000 wakes a second
/// for a slot in a long call next to an idle one).
pub(crate) const RULE_RECHECK: Duration = Duration::from_micros(500);

const FUTEX_IDLE: u32 = 0;
const FUTEX_WOKEN: u32 = 1;

/// The monitor's park flag and futex word.
pub(crate) struct Signal {
    parked: AtomicBool,
    word: AtomicU32,
}

impl Signal {
    pub(crate) fn new() -> Signal {
        Signal {
            parked: AtomicBool::new(false),
            word: AtomicU32::new(FUTEX_IDLE),
        }
    }

    /// `enter`'s side: one load; a system call only when the monitor sleeps.
    #[inline]
    pub(crate) fn wake_if_parked(&self) {
        // SeqCst pairs with the SeqCst store in `park` (Dekker, module header).
        if self.parked.load(Ordering::SeqCst) {
            self.wake_parked();
        }
    }

    #[cold]
    fn wake_parked(&self) {
        // Only the enter that flips the flag makes the system call.
        if self.parked.swap(false, Ordering::SeqCst) {
            self.word.store(FUTEX_WOKEN, Ordering::Release);
            sys::futex_wake(&self.word, 1);
        }
    }

    /// Wakes the monitor whatever it is doing (shutdown).
    pub(crate) fn wake(&self) {
        self.parked.store(false, Ordering::SeqCst);
        self.word.store(FUTEX_WOKEN, Ordering::Release);
        sys::futex_wake(&self.word, 1);
    }

    /// Sleeps until `deadline` or a wake.
    fn sleep(&self, deadline: Option<Instant>) {
        // Acquire pairs with the Release stores of FUTEX_WOKEN.
        if self.word.swap(FUTEX_IDLE, Ordering::Acquire) == FUTEX_WOKEN {
            return;
        }
        sys::futex_wait(&self.word, FUTEX_IDLE, deadline);
    }
}

pub(crate) fn start(shared: &Arc<Shared>) -> std::io::Result<()> {
    let sh = shared.clone();
    std::thread::Builder::new()
        .name("handoff-monitor".into())
        .stack_size(64 * 1024)
        .spawn(move || run(sh))
        .map(drop)
}

/// How late the monitor's timed wakes arrive, to wake that much earlier.
///
/// A futex timed wait returns after its deadline by the kernel's timer and
/// scheduling latency: a few µs on an idle machine, 25 µs measured on a
/// loaded 2-vCPU VM, against a 20 µs budget. The monitor keeps a moving
/// average of the lateness and brings every deadline forward by it, capped
/// at half of `retake_after` (a call is never retaken before it lasted half
/// its budget): on average the check then lands on the deadline itself.
/// Rejected: spinning out the last microseconds (CPU on every round while
/// calls stream).
#[derive(Default)]
struct Lateness {
    /// Exponential moving average, in nanoseconds.
    ewma_ns: f64,
}

impl Lateness {
    /// Weight of a new sample (1/8: the average follows load changes within
    /// a few dozen rounds, about a millisecond at 20 µs rounds).
    const ALPHA: f64 = 0.125;

    fn observe(&mut self, deadline: Instant) {
        let late = Instant::now().saturating_duration_since(deadline);
        self.ewma_ns += Self::ALPHA * (late.as_nanos() as f64 - self.ewma_ns);
    }

    /// The correction to apply, capped at half of `budget`.
    fn get(&self, budget: Duration) -> Duration {
        Duration::from_nanos(self.ewma_ns as u64).min(budget / 2)
    }

    fn stamps(&self, budget: Duration) -> u64 {
        clock::to_stamps(self.get(budget))
    }
}

/// What the monitor remembers of one slot between rounds.
///
/// A call is retaken only when a previous round saw the same call (tick):
/// on a machine with fewer CPUs than busy threads the monitor's own wake-up
/// can land on the CPU of a thread in a 200 ns call and preempt it, and by
/// the time the monitor (10–20 µs of wake-up overhead on a VM) looks, the
/// call seems to have lasted its budget. Measured: thousands of false
/// retakes a second in a `getpid` loop, each costing the caller its slot.
/// A call first seen past its deadline is looked at again after a
/// `yield_now`, which lets the preempted caller finish first.
#[derive(Clone, Copy, Default)]
struct Seen {
    tick: u64,
    /// A spared call is not looked at again before this stamp.
    recheck: Stamp,
}

fn run(shared: Arc<Shared>) {
    // Without this, Linux stretches every timed wait by up to 50 µs.
    let _ = sys::set_precise_timer_slack();
    // Nice 19: see "Priority" in the module header.
    let _ = sys::set_lowest_priority();
    let cfg: &Config = &shared.config;
    let retake_after = clock::to_stamps(cfg.retake_after);
    let long_call = clock::to_stamps(LONG_CALL);
    let recheck = clock::to_stamps(RULE_RECHECK);
    let poll_max = cfg.retake_after.max(Duration::from_micros(1));
    let mut lateness = Lateness::default();
    let mut seen = vec![Seen::default(); shared.slots.len()];
    // Start parked: no call has been seen yet.
    let mut quiet = QUIET_ROUNDS;
    let mut trace = cfg.schedtrace.map(crate::trace::Trace::new);
    while !shared.is_shutdown() {
        Counters::bump(&shared.counters.monitor_wakes);
        let now = clock::now();
        let mut next: Option<Stamp> = None;
        let mut new_calls = false;
        let mut confirm = false;
        for (slot, seen) in shared.slots.iter().zip(seen.iter_mut()) {
            let snap = slot.state.load();
            if snap.tick() != seen.tick {
                new_calls = true; // a call started since the last round
            }
            if snap.status() != Status::Syscall {
                seen.tick = snap.tick();
                continue;
            }
            let tick = snap.tick();
            // Retake only a call seen by an earlier round too (Go's sysmon
            // rule): see `Seen` on the monitor preempting its own victim.
            let seen_before = tick == seen.tick;
            if !seen_before {
                *seen = Seen { tick, recheck: 0 };
            }
            // Relaxed: read after the Acquire load of the word that showed
            // this call; a later call's stamp only moves the deadline later.
            let entry = slot.stamp.load(Ordering::Relaxed);
            let due = entry
                .wrapping_add(retake_after.saturating_sub(lateness.stamps(cfg.retake_after)))
                .max(seen.recheck);
            if now < due {
                next = Some(next.map_or(due, |n| n.min(due)));
                continue;
            }
            if !seen_before {
                confirm = true;
                continue;
            }
            let idle = &shared.idle;
            let lasted_long = now.wrapping_sub(entry) >= long_call;
            let spare =
                slot.steal.is_empty() && idle.num_spinning() + idle.num_idle() > 0 && !lasted_long;
            if spare {
                seen.recheck = now.wrapping_add(recheck);
                let d = seen.recheck.min(entry.wrapping_add(long_call));
                next = Some(next.map_or(d, |n| n.min(d)));
                continue;
            }
            if let Some(core) = slot.retake(tick) {
                Counters::bump(&shared.counters.retakes);
                shared.handoff(core);
            }
        }
        if let Some(t) = trace.as_mut() {
            t.maybe_print(&shared);
        }
        if confirm {
            // A call first seen past its deadline: let the CPU go (to the
            // caller's thread if we woke on its CPU) and look again at once.
            std::thread::yield_now();
            continue;
        }
        if new_calls {
            quiet = 0;
        } else {
            quiet = quiet.saturating_add(1);
        }
        let short = Instant::now() + poll_max.saturating_sub(lateness.get(cfg.retake_after));
        let mut deadline = next.map(clock::to_instant);
        if let Some(t) = trace.as_ref() {
            let td = t.next_deadline();
            deadline = Some(deadline.map_or(td, |d| d.min(td)));
        }
        if quiet < QUIET_ROUNDS || deadline.is_some_and(|d| d <= short) {
            // Step 2: calls are coming; never sleep past `retake_after`.
            let d = deadline.map_or(short, |d| d.min(short));
            shared.monitor.sleep(Some(d));
            lateness.observe(d);
            continue;
        }
        // Step 3: park until the next known deadline or an enter.
        // SeqCst pairs with enter's SeqCst store of `Syscall`.
        shared.monitor.parked.store(true, Ordering::SeqCst);
        let new_call = shared.slots.iter().zip(seen.iter()).any(|(s, seen)| {
            let w = s.state.load_seqcst();
            w.status() == Status::Syscall && w.tick() != seen.tick
        });
        if !new_call && !shared.is_shutdown() {
            shared.monitor.sleep(deadline);
        }
        if shared.monitor.parked.swap(false, Ordering::SeqCst) {
            // Woken by the deadline, not by an enter: stay in the long sleep
            // mode after this round.
        } else {
            quiet = 0;
        }
    }
}
