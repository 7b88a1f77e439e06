//! The monitor (Go's `sysmon`): one thread that retakes slots stuck in a
//! blocking call and hands them to other threads.
//!
//! ## What it costs, by design
//! - The fast path of `blocking` pays a fence, a few loads and a compare
//!   for the monitor: `enter` reads the monitor's next look
//!   (`slot/watch.rs`) and wakes it only when that is later than the new
//!   call's due time.
//! - A call's due time is `entry + retake_after` only when Go's retake rule
//!   could act on it then: its slot has local work, or no slot is idle and
//!   no thread spins (nobody else could take new work). Otherwise the rule
//!   would spare it at `retake_after` anyway, and it is due at `LAZY_LOOK`
//!   (500 µs), when the monitor checks the rule again. The inputs are read
//!   by `enter` (its own ring, two counters) and again by the monitor.
//! - Its wake rate follows the calls, never `1 / retake_after` on its own:
//!   it polls only while calls start at least once per poll period
//!   (`POLL_ENTER`), so a poll round costs no more wakes than the calls
//!   would, and the period is `retake_after` only while a new call would be
//!   due that soon (no idle slot), else `LAZY_LOOK`. Otherwise it sleeps
//!   until the next known deadline (a call it is timing) or for good, and a
//!   call entered after that pays one futex wake (1–2 µs on the caller on
//!   bare metal, ~11 µs on the 2-vCPU VM, whose inter-processor interrupt
//!   is a VM exit; only on calls that come after a quiet spell). An eager
//!   call gives that wake to an idle thread instead, which times, retakes
//!   and runs the slot itself (`standby.rs`: one wake-up on the hand-off
//!   path instead of the monitor's two in series).
//! - A retake about `retake_after` after entry, whatever happened before,
//!   for every call the rule would retake: the entry stamp gives the
//!   monitor the call's exact deadline whether it was polling, sleeping on
//!   a deadline, or asleep for good.
//!
//! ## Loop
//! 1. Load every slot's word. For a slot in `Syscall`, its deadline is
//!    `stamp + retake_after` (`stamp` is the entry time `enter` wrote), or
//!    `stamp + LAZY_LOOK` for a call the rule spares at first sight. Past
//!    the deadline, apply Go's retake rule: retake when the slot has local
//!    work, or no thread spins and no slot is idle (nobody else could take
//!    new work), or the call has lasted `LONG_CALL`. Retake = CAS
//!    `Syscall -> Idle` checking the call's tick, then hand off
//!    (`Shared::handoff`). A spared call is looked at again after
//!    `RULE_RECHECK`, doubling. Before a retake the monitor looks at the
//!    thread in the call (`thread_state.rs`): blocked (`S`, `D`) or
//!    computing (100 µs of CPU since the first look) -> retake; runnable
//!    with no progress (preempted, waiting for a CPU) -> yield and look
//!    again, then after `retake_after`, doubling to 1 ms, and retake at
//!    `LONG_CALL` whatever it is doing (a "starved" retake, which call-site
//!    learning ignores: `bridge::Retaken`). A retake cannot help a thread
//!    that waits for a CPU: the kernel moves it to one that frees up, and a
//!    new thread would wait too. Measured, 64 tasks of `getpid` on 2 slots
//!    on the loaded 2-vCPU VM: 16–267 retakes and 2–5 threads started per
//!    run before, 0–1 and 0–1 after. Cost: the look reads `/proc` (4 µs
//!    warm, ~30 µs for a monitor that slept 20 ms), so a blocked call is
//!    retaken 20–30 µs later than before (hand-off p50 46–84 -> 79–90 µs
//!    with learning off). No `/proc`: the rule of `Seen` below.
//! 2. Update the call rate (`Rate`: calls started per poll period, from the
//!    slots' summed ticks) and the mode: poll from `POLL_ENTER` calls per
//!    period, stop below `POLL_LEAVE`.
//! 3. Sleep until the earliest of: the deadlines of calls being timed, the
//!    re-check of a spared call, the next poll (only when polling), the
//!    schedtrace clock; none of them: until woken. The sleep follows the
//!    handshake of `slot/watch.rs` (publish the deadline, re-check the
//!    slots, futex wait), so an `enter` wakes us exactly when we would look
//!    too late. A precise sleep: the thread's timer slack is 1 ns, the
//!    futex wait takes an absolute deadline, and every deadline is brought
//!    forward by the measured lateness of past wakes (`Lateness`).
//!
//! ## Costs, measured
//! `cargo bench --bench blocking`, "monitor cost": the monitor thread's CPU
//! (schedstat) and wakes, 2 slots unless said, medians of 3 rounds of 1 s;
//! two runs each, on a 2-vCPU VM with a load average of 10–14 from other
//! builds (the monitor then ran at nice 19 and was starved, so some numbers
//! are lower than on a quiet machine, where back-to-back calls on one slot
//! reach ~1/`retake_after`: 67–69% of a core, ~35k wakes/s, either
//! priority).
//!
//! ```text
//! load                        previous design            this design
//! idle runtime                0%, 0 wakes/s              0%, 0 wakes/s
//! one 100 µs call per ms      34–51%, 21–24k/s (37/call) 2–3%, 1.4k/s (2.0/call)
//! back-to-back getpid         2–3%, 0.9–1k/s (starved)   1–5%, 0.5–1.6k/s
//! same, 1 slot                1%, 0.3–0.6k/s (starved)   2–62%, 0.6–27k/s
//! 20 ms calls back to back    26–37%, 13–19k/s (290/call) 1.5%, 0.4k/s (7.8/call)
//! Go sysmon (golang/go#18236): 6–12% of a busy server's CPU profile
//! ```
//! The one-slot stream is the worst case left: every call there could need
//! a retake at `retake_after` (nobody else could take new work), so the
//! monitor polls at that period while the stream lasts (see "Rejected").
//!
//! ## Priority
//! The monitor runs under `SCHED_BATCH` at the process's nice value. While
//! calls stream it may wake every `retake_after`; a normal thread's wake
//! preempts a worker when all CPUs are busy (10–20 µs of lost CPU per wake
//! on a VM: measured, a `getpid` loop ran at 2× its cost). A `SCHED_BATCH`
//! thread never preempts on wake-up (CFS/EEVDF leave its preemption to the
//! tick), so a waking monitor runs at once on an idle CPU — and a call that
//! really blocks leaves its CPU idle, which is exactly when a retake is
//! needed — and otherwise at the next tick, with a normal thread's share.
//!
//! It used to run at nice 19 for the first property, which also gave it
//! ~1.5% of a nice-0 thread's share: on a machine that other processes keep
//! busy it starved, and retakes came hundreds of milliseconds late. Measured
//! (one slot, fresh runtime, A blocks and B is queued, A's entry -> B
//! running, 20 rounds, six busy-looping processes on the 2 vCPUs): nice 19
//! p50 146–150 ms, p90 325–387 ms; `SCHED_BATCH` 1.6–1.7 ms / 8.0 ms (a
//! normal thread the same). Under heavier load the nice-19 monitor took
//! over 10 s: `tests/blocking_bridge.rs` failed its 10 s patience during a
//! workspace test run next to two busy loops and a build. Without outside
//! load the two are the same: the monitor-cost table above and the per-call
//! bench (64 tasks on 2 slots: blocking / raw threads 1.04–1.36× vs
//! 1.15–1.73× over two interleaved runs each, noise either way).
//!
//! ## Rejected
//! - Go's fixed 20 µs tick with back-off (CPU while idle, late retakes
//!   after a quiet spell; golang/go#18236 saw sysmon at 6–12% of a busy
//!   server's CPU profile).
//! - The previous design here: poll every `retake_after` until 50 rounds
//!   with no new call, then park behind a `parked` flag. A call every
//!   millisecond never let it park: ~13 000 wakes a second, 20–25% of a
//!   core, for work that needed one wake per call.
//! - Park whenever a round finds no slot in a call, whatever the rate: in
//!   a loop of short calls a third of the rounds find none, and the next
//!   call then pays a `futex_wake` (~1.5 µs) on a 150 ns `getpid` — the
//!   fast path's 1.2× budget gone on those calls.
//! - A timer armed by every `enter` (a system call on the fast path).
//! - Polling every `retake_after` while calls are dense, whatever the
//!   rule says (the first version of this design): back-to-back `getpid`
//!   next to an idle slot cost 33 000 wakes a second, 68% of a core, to
//!   time calls the rule would never retake. With `LAZY_LOOK` that stream
//!   costs ~1 000–2 000 wakes a second; a stream the rule could act on
//!   (one slot, or every slot busy) still costs a poll per `retake_after`:
//!   without a system call on `enter` nothing else can see a long call in
//!   time.
//! - Waking the monitor when the last idle slot is taken (to time lazy
//!   calls that become retakable at once): a `LAZY_LOOK` bound on that case
//!   is what Go's own rule checks give, and the wake would sit on the
//!   scheduler's hot path.
use crate::builder::Config;
use crate::clock::{self, Stamp};
use crate::handle::{Counters, Shared};
use crate::loom::{Arc, Ordering};
use crate::slot::state::Status;
use crate::slot::watch::{Woke, LAZY_LOOK, NEVER};
use crate::sys;
use crate::thread_state::{self, Probe, Sample, Verdict};
use std::time::{Duration, Instant};

/// A call that lasted this long is retaken even when idle slots could take
/// new work: Go's sysmon uses 10 ms (`forcegc`-independent syscall limit),
/// so a slot's local tasks never wait longer than that behind a call.
pub(crate) const LONG_CALL: Duration = Duration::from_millis(10);

/// A slot past its deadline that the retake rule spared is looked at again
/// after this long, doubled for each further spare (at most
/// `RULE_RECHECK_DOUBLINGS` times), until `LONG_CALL` retakes it anyway.
/// The rule's inputs change rarely: a slot in a call gets no new local
/// work (nobody but its owner pushes to it), so only "an idle slot or a
/// spinner exists" can turn false. Checking every `retake_after` would cost
/// 50 000 wakes a second for a slot in a long call next to an idle one;
/// every 500 µs cost 20 wakes per 10 ms call (measured); doubling costs 5,
/// and a slot whose neighbours all got busy is retaken within 4 ms
/// (Go's sysmon, backed off, takes up to 10 ms).
pub(crate) const RULE_RECHECK: Duration = LAZY_LOOK;

/// See `RULE_RECHECK`: 500 µs × 2^3 = 4 ms at most between re-checks.
const RULE_RECHECK_DOUBLINGS: u32 = 3;

/// Poll when at least this many calls start per poll period (`Rate`):
/// a poll round then costs no more wakes than the calls would.
const POLL_ENTER: f64 = 1.0;

/// Stop polling below this many calls per poll period: half of
/// `POLL_ENTER`, so a rate near the threshold does not flip the mode on
/// every round.
const POLL_LEAVE: f64 = 0.5;

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

    fn observe(&mut self, late: Duration) {
        self.ewma_ns += Self::ALPHA * (late.as_nanos() as f64 - self.ewma_ns);
    }

    /// The correction to apply, in stamps, capped at half of `budget`.
    fn stamps(&self, budget: Duration) -> u64 {
        clock::to_stamps(Duration::from_nanos(self.ewma_ns as u64).min(budget / 2))
    }
}

/// The recent rate of calls, from the slots' summed ticks, in calls per
/// poll period; and the poll period itself, as measured.
///
/// Both sums decay by `DECAY` each round (memory: about 8 rounds), and a
/// round adds at most `WINDOW` of time, so one long idle spell does not
/// hide a burst that follows it for dozens of rounds.
struct Rate {
    calls: f64,
    stamps: f64,
    last_ticks: u64,
    last_at: Stamp,
    window: f64,
    /// The measured time between two poll rounds (a poll sleep plus the
    /// wake-up and the round): `retake_after` plus 5–50 µs on a VM.
    period: f64,
}

impl Rate {
    const DECAY: f64 = 0.875;
    /// Longest stretch of time one round counts for.
    const WINDOW: Duration = Duration::from_millis(1);
    /// Weight of a new poll period sample.
    const ALPHA: f64 = 0.125;

    fn new(retake_after: Duration) -> Rate {
        Rate {
            calls: 0.0,
            stamps: 0.0,
            last_ticks: 0,
            last_at: clock::now(),
            window: clock::to_stamps(Self::WINDOW) as f64,
            period: clock::to_stamps(retake_after).max(1) as f64,
        }
    }

    /// A round at `now` saw the slots' ticks sum to `ticks`; `polled`: the
    /// sleep before it was a poll that timed out (a period sample).
    fn observe(&mut self, ticks: u64, now: Stamp, polled: bool) {
        let n = ticks.wrapping_sub(self.last_ticks) as f64;
        let dt = now.wrapping_sub(self.last_at) as f64;
        if polled {
            self.period += Self::ALPHA * (dt - self.period);
        }
        self.calls = self.calls * Self::DECAY + n;
        self.stamps = self.stamps * Self::DECAY + dt.min(self.window);
        self.last_ticks = ticks;
        self.last_at = now;
    }

    /// Calls started per `period` stamps (`None`: the measured period of
    /// an eager poll), recently.
    fn per_period(&self, period: Option<u64>) -> f64 {
        let period = period.map_or(self.period, |p| p as f64);
        self.calls * period / self.stamps.max(1.0)
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
    /// How many times the retake rule spared this call.
    spared: u32,
    /// The call's thread was found waiting for a CPU: its first sample
    /// (`thread_state.rs`); `None` until then.
    waiting: Option<Sample>,
}

fn min_stamp(a: Stamp, b: Stamp) -> Stamp {
    a.min(b)
}

fn run(shared: Arc<Shared>) {
    // Without this, Linux stretches every timed wait by up to 50 µs.
    let _ = sys::set_precise_timer_slack();
    // SCHED_BATCH: see "Priority" in the module header. Refused (a
    // seccomp filter, say): a normal thread, whose wakes may preempt.
    let _ = sys::set_batch_policy();
    let cfg: &Config = &shared.config;
    let signal = &shared.monitor;
    let retake_after = signal.retake_after();
    let long_call = clock::to_stamps(LONG_CALL);
    let recheck = clock::to_stamps(RULE_RECHECK);
    let lazy_look = signal.lazy_look();
    let poll_period = clock::to_stamps(cfg.retake_after.max(Duration::from_micros(1)));
    let mut lateness = Lateness::default();
    let mut rate = Rate::new(cfg.retake_after);
    let mut polling = false;
    let mut polled_eager = false;
    let mut seen = vec![Seen::default(); shared.slots.len()];
    let mut trace = cfg.schedtrace.map(crate::trace::Trace::new);
    let mut probe = Probe::new();
    let mut woke = Woke::Signalled;
    while !shared.is_shutdown() {
        Counters::bump(&shared.counters.monitor_wakes);
        let now = clock::now();
        let late = lateness.stamps(cfg.retake_after);
        let mut next = NEVER;
        let mut ticks = 0u64;
        let mut confirm = false;
        for (slot, seen) in shared.slots.iter().zip(seen.iter_mut()) {
            let snap = slot.state.load();
            ticks = ticks.wrapping_add(snap.tick());
            if snap.status() != Status::Syscall {
                seen.tick = snap.tick();
                continue;
            }
            let tick = snap.tick();
            // Retake only a call seen by an earlier round too (Go's sysmon
            // rule): see `Seen` on the monitor preempting its own victim.
            let seen_before = tick == seen.tick;
            // Relaxed: read after the Acquire load of the word that showed
            // this call; a later call's stamp only moves the deadline later.
            let entry = slot.stamp.load(Ordering::Relaxed);
            if !seen_before {
                // A call the retake rule would spare is first looked at
                // after `LAZY_LOOK` (slot/watch.rs), as `enter` said.
                let lazy = shared.retake_rule_spares(slot);
                *seen = Seen {
                    tick,
                    recheck: if lazy {
                        entry.wrapping_add(lazy_look)
                    } else {
                        0
                    },
                    spared: 0,
                    waiting: None,
                };
            }
            let due = entry
                .wrapping_add(retake_after.saturating_sub(late))
                .max(seen.recheck);
            if now < due {
                next = min_stamp(next, due);
                continue;
            }
            let lasted_long = now.wrapping_sub(entry) >= long_call;
            let spare = shared.retake_rule_spares(slot) && !lasted_long;
            if spare {
                seen.recheck = now.wrapping_add(recheck << seen.spared.min(RULE_RECHECK_DOUBLINGS));
                seen.spared += 1;
                next = min_stamp(next, seen.recheck.min(entry.wrapping_add(long_call)));
                continue;
            }
            // Is the thread blocked, computing, or only waiting for a CPU
            // (`thread_state.rs`)? Relaxed: see `Slot::run_on`.
            let tid = slot.thread.load(Ordering::Relaxed);
            let look = match seen.waiting {
                None => probe.look(tid),
                Some(first) => probe.look_again(tid, first),
            };
            let mut starved = false;
            match thread_state::judge(look, &mut seen.waiting, cfg.retake_after) {
                Verdict::Retake => {}
                // No look possible: the rule from before (`Seen`).
                Verdict::Unknown if seen_before || lasted_long => {}
                Verdict::Unknown => {
                    confirm = true;
                    continue;
                }
                Verdict::Yield if !lasted_long => {
                    Counters::bump(&shared.counters.retakes_deferred);
                    confirm = true;
                    continue;
                }
                // First look at 10 ms and runnable: it may be computing.
                Verdict::Yield => {}
                // Waited for a CPU since an earlier look, for `LONG_CALL`:
                // retaken to bound its slot's wait, but the call itself may
                // be short (the exit tells learning so: `Slot::starved`).
                Verdict::Wait(_) if lasted_long => starved = true,
                Verdict::Wait(gap) => {
                    let at = now.wrapping_add(clock::to_stamps(gap));
                    seen.recheck = at.min(entry.wrapping_add(long_call));
                    next = min_stamp(next, seen.recheck);
                    continue;
                }
            }
            if starved {
                // Relaxed: a hint for the exit (`Slot::starved`); stored
                // before the CAS, so a thread that loses to it usually sees it.
                slot.starved.store(tick, Ordering::Relaxed);
            }
            if let Some(core) = slot.retake(tick) {
                Counters::bump(&shared.counters.retakes);
                if starved {
                    Counters::bump(&shared.counters.retakes_starved);
                }
                shared.handoff(core);
            }
        }
        rate.observe(ticks, now, polled_eager && woke == Woke::Timeout);
        if let Some(t) = trace.as_mut() {
            t.maybe_print(&shared);
        }
        if confirm {
            // A call first seen past its deadline: let the CPU go (to the
            // caller's thread if we woke on its CPU) and look again at once.
            std::thread::yield_now();
            polled_eager = false;
            continue;
        }
        // Poll while calls come at least as often as we would poll; else
        // sleep until the next known deadline and let enters wake us. The
        // poll period is `retake_after` only while a new call could need a
        // retake that soon (nobody else could take new work); otherwise
        // `LAZY_LOOK`, and an enter with local work wakes us (slot/watch.rs).
        let eager = !shared.idle.can_take_work();
        let per_period = rate.per_period((!eager).then_some(lazy_look));
        polling = if polling {
            per_period >= POLL_LEAVE
        } else {
            per_period >= POLL_ENTER
        };
        let period = if eager { poll_period } else { lazy_look };
        let poll_at = clock::now().wrapping_add(period.saturating_sub(late));
        let polled = polling && poll_at <= next;
        polled_eager = polled && eager;
        if polled {
            next = poll_at;
        }
        if let Some(t) = trace.as_ref() {
            let wait = t.next_deadline().saturating_duration_since(Instant::now());
            next = min_stamp(next, clock::now().wrapping_add(clock::to_stamps(wait)));
        }
        // Step 1 and 2 of the protocol in `slot/watch.rs`: publish, then
        // look again for a call that started since the scan and is due
        // before we would look.
        signal.publish(next);
        let missed = shared.slots.iter().zip(seen.iter()).any(|(s, seen)| {
            // Ordered after our `publish` by its fence (slot/watch.rs).
            let w = s.state.load();
            if w.status() != Status::Syscall || w.tick() == seen.tick {
                return false;
            }
            // The due time `enter` used, as well as we can tell (a hint
            // either way: see `LAZY_LOOK`).
            let lazy = shared.retake_rule_spares(s);
            let budget = if lazy { lazy_look } else { retake_after };
            // Relaxed: as in the scan.
            s.stamp.load(Ordering::Relaxed).wrapping_add(budget) < next
        });
        if missed || shared.is_shutdown() {
            polled_eager = false;
            woke = Woke::Signalled;
            continue;
        }
        let deadline = (next != NEVER).then(|| clock::to_instant(next));
        woke = signal.sleep(deadline);
        if woke == Woke::Timeout {
            if let Some(d) = deadline {
                lateness.observe(Instant::now().saturating_duration_since(d));
            }
        }
    }
}
