//! `Metrics`: a snapshot of the runtime's counters.
//!
//! Hot counters (polls, steals, spawns from a worker, fast and idle-slot
//! exits) live in each slot and are written by the slot's owner only, with a
//! relaxed load and store (no locked instruction, no shared cache line); rare
//! ones (thread spawns, retakes, slow exits) are shared relaxed atomics. A
//! snapshot sums them: it is consistent per counter, not across counters.
use crate::handle::Shared;
use crate::loom::Ordering;
use crate::slot::state::Status;

/// A snapshot of a runtime's counters (`Runtime::metrics`, `Handle::metrics`).
/// Counters only grow; gauges (`*_alive`, `*_idle`, `*_depth`, ...) are
/// the value at the snapshot.
///
/// ```
/// let rt = handoff_executor::Runtime::builder().worker_threads(2).build().unwrap();
/// rt.block_on(async {
///     for _ in 0..10 {
///         handoff_executor::spawn(async {}).await.unwrap();
///     }
/// });
/// let m = rt.metrics();
/// assert_eq!(m.slots, 2);
/// assert!(m.tasks_spawned >= 10);
/// assert!(m.polls >= 10);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Worker slots (`worker_threads`).
    pub slots: u64,
    /// Slots whose core is on the idle list.
    pub slots_idle: u64,
    /// Slots whose thread is inside a blocking call right now.
    pub slots_in_call: u64,
    /// Tasks spawned (from workers and from outside).
    pub tasks_spawned: u64,
    /// Tasks alive (spawned and not yet complete).
    pub tasks_alive: u64,
    /// Task polls.
    pub polls: u64,
    /// Successful steals (each takes half of another slot's queue).
    pub steals: u64,
    /// Tasks moved by steals.
    pub stolen_tasks: u64,
    /// Times a full local queue moved half of itself to the global queue.
    pub overflows: u64,
    /// Worker threads started (the initial ones included).
    pub threads_spawned: u64,
    /// Thread spawns the OS refused (the runtime went on with fewer).
    pub thread_spawn_failures: u64,
    /// Threads alive: workers, threads in blocking calls and pool threads.
    pub threads_alive: u64,
    /// Worker threads alive.
    pub worker_threads_alive: u64,
    /// Threads parked with no slot.
    pub threads_idle: u64,
    /// Threads looking for work to steal.
    pub threads_spinning: u64,
    /// Tasks in the global queue.
    pub global_queue_depth: u64,
    /// Tasks in all local queues.
    pub local_queue_depth: u64,
    /// `blocking`/`blocking_long` calls entered on a slot.
    pub blocking_calls: u64,
    /// Calls whose exit took the slot back with one CAS.
    pub blocking_fast_exits: u64,
    /// Calls whose slot was retaken; the exit took another idle slot.
    pub blocking_idle_slot_exits: u64,
    /// Calls that came back to no slot: the task was requeued globally.
    pub blocking_slow_exits: u64,
    /// Slots the monitor took back from a call that lasted.
    pub retakes: u64,
    /// Late calls the monitor did not retake at once because their thread
    /// was runnable with no CPU progress: preempted, waiting for a CPU (a
    /// retake would not help it; it is retaken if it starts computing or
    /// blocks, or after 10 ms). Counted once per call.
    pub retakes_deferred: u64,
    /// Retakes (counted in `retakes` too) of a call whose thread was still
    /// waiting for a CPU after 10 ms: the slot's tasks may wait no longer,
    /// but the call itself may have been short, so call-site learning
    /// ignores it.
    pub retakes_starved: u64,
    /// Slots handed to another thread (after a retake or by `blocking_long`).
    pub handoffs: u64,
    /// `blocking_long` calls that handed their slot off on entry.
    pub long_handoffs: u64,
    /// Times the monitor thread woke up.
    pub monitor_wakes: u64,
    /// Jobs given to `spawn_blocking`.
    pub spawn_blocking_tasks: u64,
    /// `spawn_blocking` pool threads alive.
    pub pool_threads_alive: u64,
    /// `spawn_blocking` jobs waiting for a thread.
    pub pool_queue_depth: u64,
}

impl Metrics {
    pub(crate) fn snapshot(shared: &Shared) -> Metrics {
        let mut m = Metrics {
            slots: shared.slots.len() as u64,
            ..Metrics::default()
        };
        for s in shared.slots.iter() {
            let c = &s.counters;
            m.tasks_spawned += c.tasks_spawned.get();
            m.polls += c.polls.get();
            m.steals += c.steals.get();
            m.stolen_tasks += c.stolen_tasks.get();
            m.overflows += c.overflows.get();
            m.blocking_calls += c.enters.get();
            m.blocking_fast_exits += c.fast_exits.get();
            m.blocking_idle_slot_exits += c.idle_slot_exits.get();
            m.local_queue_depth += s.steal.len() as u64;
            match s.state.load().status() {
                Status::Idle => {}
                Status::Running => {}
                Status::Syscall => m.slots_in_call += 1,
            }
        }
        let g = |a: &crate::loom::AtomicU64| a.load(Ordering::Relaxed);
        let c = &shared.counters;
        m.tasks_spawned += g(&c.remote_spawns);
        m.threads_spawned = g(&c.threads_spawned);
        m.thread_spawn_failures = g(&c.thread_spawn_failures);
        m.blocking_slow_exits = g(&c.slow_exits);
        m.retakes = g(&c.retakes);
        m.retakes_deferred = g(&c.retakes_deferred);
        m.retakes_starved = g(&c.retakes_starved);
        m.handoffs = g(&c.handoffs);
        m.long_handoffs = g(&c.long_handoffs);
        m.monitor_wakes = g(&c.monitor_wakes);
        m.spawn_blocking_tasks = g(&c.spawn_blocking_tasks);
        m.slots_idle = shared.idle.num_idle() as u64;
        m.threads_alive = shared.threads.alive() as u64;
        m.worker_threads_alive = shared.threads.workers.load(Ordering::Relaxed) as u64;
        m.threads_idle = shared.idle.num_idle_threads() as u64;
        m.threads_spinning = shared.idle.num_spinning() as u64;
        m.global_queue_depth = shared.inject.len() as u64;
        m.tasks_alive = shared.owned.len() as u64;
        let (pool_alive, pool_queued) = shared.pool.stats();
        m.pool_threads_alive = pool_alive as u64;
        m.pool_queue_depth = pool_queued as u64;
        m
    }
}
