//! The bridge: Go's `entersyscall` / `exitsyscall` for a task that runs a
//! blocking call inline on its worker thread. `handoff-blocking` builds
//! `blocking(f)` and `blocking_long(f)` on exactly these primitives:
//!
//! ```text
//! match bridge::enter(Call::Short) {
//!     None => f(),                         // no slot: plain thread, block_on, nested
//!     Some(call) => {
//!         let out = catch_unwind(f);       // the slot is released meanwhile
//!         match call.exit() {
//!             Exit::Fast | Exit::IdleSlot => out,            // Ready(out)
//!             Exit::Slow => { store out; wake the task; Pending } // requeued globally
//!         }
//!     }
//! }
//! ```
//!
//! ## enter(Short)
//! 1. Take the core out of the thread's context (no core: `None`).
//! 2. Move its LIFO task into its ring, where thieves can reach it while
//!    the thread is away.
//! 3. Write the entry stamp, park the core in the slot, store
//!    `tick + 1 | Syscall` (`Release`; `Slot::enter_call`).
//! 4. Load the monitor's next look; only if it is later than the call's due
//!    time, wake it (`slot/watch.rs`) — or, for an eager call, give the
//!    call to an idle thread that times it, retakes and runs the slot
//!    itself (`standby.rs`: one wake-up on the hand-off path, not two). The due time is `stamp +
//!    retake_after` when the slot has local work or no other slot could take
//!    new work (Go's retake rule, read before step 3), else `stamp +
//!    LAZY_LOOK`: the monitor would spare the call at `retake_after` anyway.
//!
//! From here the thread holds no core: a spawn or a wake made inside the
//! closure finds no core in the context and goes to the global queue, so
//! the old slot's queues are never touched by a thread in a call.
//!
//! ## exit
//! 1. CAS the slot's word `tick | Syscall -> tick | Running`: won, the core
//!    is ours again (`Fast`).
//! 2. Lost (the monitor retook it): take an idle core if any (`IdleSlot`).
//! 3. Else `Slow`: the thread has no core. The caller stores its output and
//!    wakes its task, which goes to the global queue; after the poll the
//!    worker loop sees it holds no core and parks the thread as idle (or the
//!    thread exits past `thread_keep_alive`).
//!
//! ## enter(Long) (Go's `entersyscallblock`)
//! The slot is handed off before the call (`Shared::handoff`: to a thread
//! if there is work, else to the idle list), so other tasks run at once
//! without waiting for the monitor. Its exit takes an idle core or is slow.
//!
//! The fast path (enter + exit) is a TLS load, a few plain stores, one
//! `Release` store, a `SeqCst` fence, one load and compare of the monitor's
//! next look, and one CAS: no lock, no
//! system call, and the time stamp is the CPU's counter (`clock.rs`).
use crate::clock;
use crate::context;
use crate::handle::Counters;
use crate::loom::Ordering;
use std::marker::PhantomData;

/// What kind of call is being entered.
///
/// ```
/// use handoff_executor::bridge::Call;
/// // `Long` for calls known to block (a sleep, accept on a blocking socket).
/// assert_ne!(Call::Short, Call::Long);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// `blocking`: keep the slot; the monitor retakes it if the call lasts.
    Short,
    /// `blocking_long`: hand the slot off before the call runs.
    Long,
}

/// How a call's exit got its thread a slot back.
///
/// ```
/// use handoff_executor::bridge::Exit;
/// fn must_requeue(e: Exit) -> bool {
///     e == Exit::Slow // store the output, wake the task, return Pending
/// }
/// assert!(!must_requeue(Exit::Fast));
/// ```
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The old slot was still ours: one CAS `Syscall -> Running`.
    Fast,
    /// The old slot was retaken; another idle slot was taken.
    IdleSlot,
    /// No slot: the caller must store its output, wake the task (it lands in the
    /// global queue) and return `Pending`; the worker parks after the poll.
    Slow,
}

/// A call in progress on a worker thread. Not `Send`: exit on the thread
/// that entered, within the same poll.
///
/// ```
/// let rt = handoff_executor::Runtime::new().unwrap();
/// rt.block_on(async {
///     handoff_executor::spawn(async {
///         let call: Option<handoff_executor::bridge::Syscall> =
///             handoff_executor::bridge::enter(handoff_executor::bridge::Call::Long);
///         // ... the blocking call runs here, the slot already handed off ...
///         if let Some(call) = call {
///             let _ = call.exit();
///         }
///     })
///     .await
///     .unwrap()
/// });
/// ```
#[derive(Debug)]
pub struct Syscall {
    /// The slot and call tick to reclaim (`None` for a `Long` call, whose
    /// slot was handed off on entry).
    old: Option<(usize, u64)>,
    _not_send: PhantomData<*const ()>,
}

/// Enters a call (Go's `entersyscall`). `None`: this thread holds no slot
/// (not a worker, `block_on`, a nested call, a thread whose slot was lost):
/// run the call inline.
///
/// ```
/// use handoff_executor::bridge::{enter, Call, Exit};
/// // Outside a runtime there is no slot to release: run inline.
/// assert!(enter(Call::Short).is_none());
///
/// let rt = handoff_executor::Runtime::new().unwrap();
/// let exit = rt.block_on(async {
///     handoff_executor::spawn(async {
///         let call = enter(Call::Short).expect("a task on a worker holds a slot");
///         let pid = unsafe { libc::getpid() };
///         assert!(pid > 0);
///         call.exit()
///     })
///     .await
///     .unwrap()
/// });
/// assert_eq!(exit, Exit::Fast);
/// ```
#[inline]
pub fn enter(call: Call) -> Option<Syscall> {
    context::with_worker(|w| {
        let w = w?;
        let mut core = w.core.take()?;
        let shared = &*w.shared;
        core.flush_lifo(shared);
        let index = core.index;
        let slot = &shared.slots[index];
        slot.counters.enters.incr();
        // Relaxed: read only by shutdown's wait, which re-checks every ms.
        w.thread.in_call.store(true, Ordering::Relaxed);
        match call {
            Call::Short => {
                // Could this call need a retake once it lasts `retake_after`
                // (Go's retake rule, as seen now)? Else the monitor may look
                // later (`slot/watch.rs`, `LAZY_LOOK`).
                let eager = !core.local.is_empty() || !shared.idle.can_take_work();
                let stamp = clock::now();
                let tick = slot.enter_call(core, stamp);
                shared.monitor.call_entered(stamp, eager, |due| {
                    crate::standby::dispatch(shared, index, tick, due)
                });
                Some(Syscall {
                    old: Some((index, tick)),
                    _not_send: PhantomData,
                })
            }
            Call::Long => {
                slot.state.transition_to_idle();
                Counters::bump(&shared.counters.long_handoffs);
                shared.handoff(core);
                Some(Syscall {
                    old: None,
                    _not_send: PhantomData,
                })
            }
        }
    })
}

/// Why a call's slot was taken from it, as far as the monitor could tell
/// ([`Syscall::exit_with_cause`]); call-site learning counts only `Lasted`.
///
/// ```
/// use handoff_executor::bridge::Retaken;
/// fn teaches_that_the_call_blocks(r: Retaken) -> bool {
///     r == Retaken::Lasted
/// }
/// assert!(!teaches_that_the_call_blocks(Retaken::Starved));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retaken {
    /// Not retaken: a `Fast` exit, or a `Long` call (its slot was handed
    /// off at entry, whatever the call did).
    No,
    /// Retaken because the call lasted: its thread blocked in the kernel or
    /// computed (or the monitor could not look at it).
    Lasted,
    /// Retaken only because its thread waited 10 ms for a CPU (preempted on
    /// a busy machine): the slot's tasks may not wait longer, but the call
    /// itself may have been short.
    Starved,
}

impl Syscall {
    /// Leaves the call (Go's `exitsyscall`). See the module header for what
    /// each [`Exit`] asks of the caller.
    ///
    /// ```
    /// let rt = handoff_executor::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     handoff_executor::spawn(async {
    ///         if let Some(call) = handoff_executor::bridge::enter(handoff_executor::bridge::Call::Short) {
    ///             let _ = call.exit();
    ///         }
    ///     })
    ///     .await
    ///     .unwrap()
    /// });
    /// ```
    #[inline]
    pub fn exit(self) -> Exit {
        self.exit_with_cause().0
    }

    /// [`exit`](Syscall::exit), also telling why the slot was retaken, for
    /// callers that learn from it (`handoff-blocking`'s call-site learning).
    ///
    /// ```
    /// use handoff_executor::bridge::{enter, Call, Exit, Retaken};
    /// let rt = handoff_executor::Runtime::new().unwrap();
    /// let (exit, cause) = rt.block_on(async {
    ///     handoff_executor::spawn(async {
    ///         let call = enter(Call::Short).expect("a task on a worker holds a slot");
    ///         call.exit_with_cause()
    ///     })
    ///     .await
    ///     .unwrap()
    /// });
    /// assert_eq!((exit, cause), (Exit::Fast, Retaken::No));
    /// ```
    #[inline]
    pub fn exit_with_cause(self) -> (Exit, Retaken) {
        context::with_worker(|w| {
            let w = w.expect("Syscall::exit ran on a thread that is not a worker: exit on the thread that entered");
            let shared = &*w.shared;
            w.thread.in_call.store(false, Ordering::Relaxed);
            let Some((index, tick)) = self.old else {
                return (exit_slow(w), Retaken::No);
            };
            let slot = &shared.slots[index];
            if let Some(core) = slot.exit_call(tick) {
                slot.counters.fast_exits.incr();
                w.core.set(Some(core));
                return (Exit::Fast, Retaken::No);
            }
            let cause = if slot.was_starved(tick) {
                Retaken::Starved
            } else {
                Retaken::Lasted
            };
            (exit_slow(w), cause)
        })
    }
}

#[cold]
fn exit_slow(w: &context::WorkerCx) -> Exit {
    let shared = &*w.shared;
    // A spare thread asked for by a hand-off (`Shared::poller_taken`): started
    // here, where a thread start delays only this task's continuation.
    shared.start_wanted_spare();
    if !shared.is_shutdown() {
        if let Some(core) = shared.idle.pop_core() {
            let slot = &shared.slots[core.index];
            slot.run_on(w.tid);
            slot.counters.idle_slot_exits.incr();
            w.core.set(Some(core));
            return Exit::IdleSlot;
        }
    }
    Counters::bump(&shared.counters.slow_exits);
    Exit::Slow
}
