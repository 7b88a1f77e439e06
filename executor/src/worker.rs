//! A runtime thread (Go's M) and the loop it runs while it holds a core.
//!
//! ## With a core (`run`)
//! ```text
//! loop:
//!   every GLOBAL_POLL_INTERVAL-th tick: a non-blocking reactor turn, then
//!       the global queue first (fairness: a busy ring cannot starve it)
//!   the LIFO `next` slot, at most MAX_LIFO_POLLS in a row (ping-pong
//!       between two tasks must not starve the ring)
//!   the local ring
//!   a batch from the global queue
//!   spin (if fewer than half the busy slots spin): steal half of a random
//!       other slot's ring; the global queue again
//!   a non-blocking reactor turn
//!   nothing: give the core back (stopper protocol in idle.rs) and go idle
//! ```
//!
//! ### Stealing before polling
//! A thread whose ring runs dry steals before it turns the reactor. The
//! other order (reactor first, the order this loop had) lets a thread that
//! keeps finding new events never run dry, so it never steals, while the
//! tasks in the ring of a thread the kernel has preempted wait for that
//! thread to get a CPU back: up to a scheduler tick (4 ms at HZ=250) and
//! more. Traced on the servers bench (2 slots, 50 connections, 2 vCPUs
//! shared with the load generator): a thread wakes a sibling for the work
//! it queued, the kernel runs the sibling on the waker's CPU and preempts
//! the waker, and the sibling turns the reactor every ~20 tasks for the
//! whole tick while the waker's 25 tasks wait. Those waits were the HTTP
//! plain scenario's p99 (4 ms, vs tokio's 1.2 ms). Stealing first, as
//! tokio does (steal, then park in the driver), takes them: tasks that
//! waited 4-8 ms in a ring went from ~2000 per 2 s run to ~0-50, and the
//! probe's fast-request p99 from 3.4-4.4 ms to 1.2-1.5 ms (3 runs each,
//! interleaved). New events are not starved: a busy thread still turns
//! the reactor every `GLOBAL_POLL_INTERVAL` polls.
//!
//! After every poll the thread checks that it still holds its core: a
//! `blocking` call that lost its slot (slow exit, bridge.rs) returns with
//! the core gone, and the thread then goes idle with no core.
//!
//! ## Without a core (`park_idle`)
//! The thread lists itself on the idle thread list and waits to be handed
//! a core (Go's `stopm`/`startm`). While some core is idle, one idle thread
//! blocks in the reactor (`try_lock_poller` + `turn(None)`, which returns
//! at the next timer or event), the others on their parker. While every
//! core is busy none does: what its turn woke could only go to the global
//! queue, where busy cores look every `GLOBAL_POLL_INTERVAL` ticks, while
//! the cores' own reactor turns put it in their rings. Measured, servers
//! bench, two interleaved A/B runs: the fast requests' p99 in the 1 ms
//! `/block` mix (30+ threads, so always an idle one in the reactor before)
//! went from 1.37/1.22 ms to 0.99/1.14 ms, in the cached-file mix from
//! 1.61/1.78 to 1.41/1.49 ms; `wrk` on 100% cached files, p99 2.6–5.0 ms
//! -> 2.6–3.4 ms. A core that becomes idle with nobody in the reactor
//! (`Shared::handoff`) nudges an idle thread, or starts one (Go's
//! `handoffp`): otherwise the I/O and timers of waiting tasks would go
//! unseen while the only slot sits in a lasting call (the handshake:
//! `loom_idle_core_gets_a_poller`). Before waiting it takes an idle core
//! itself if any queue has work (a thread freed by a slow exit picks up a
//! core left on the idle list at the `max_threads` cap). A thread that waited
//! `thread_keep_alive` with nothing handed exits, as long as more worker
//! threads than slots are alive.
//!
//! The poller keeps the tasks its turn wakes (`WorkerCx::woken`, filled by
//! `schedule_task` while `collecting`) and runs them itself on an idle core
//! (Go's findrunnable -> netpoll -> acquirep; tokio's worker parks in the
//! driver with its core). Before, they went to the global queue and the
//! wake handed an idle core to *another* parked thread: a futex wake and a
//! context switch on every request's path, and a third thread spawned for
//! two slots. Measured (probe hello, 2 workers, same run): voluntary
//! switches 28-33k -> 20-22k per 2 s, worker threads 3 -> 2. Only when no
//! core is idle do they go to the global queue.
//!
//! Rejected: one condvar for all idle threads (a core must go to one chosen
//! thread, and the reactor poller must be woken through the reactor).
use crate::context::{self, WorkerCx};
use crate::handle::{Counters, Shared, Task};
use crate::idle::ThreadCtl;
use crate::loom::{fence, Arc, Ordering};
use crate::park::Parker;
use crate::queue::{self, LOCAL_QUEUE_CAPACITY};
use std::time::Duration;

/// Every this many ticks the worker looks at the global queue first and
/// turns the reactor without blocking: Go's and tokio's 61 (a prime, so it
/// does not fall into step with task patterns).
pub(crate) const GLOBAL_POLL_INTERVAL: u32 = 61;

/// Consecutive polls from the LIFO slot before the ring gets a turn
/// (tokio's `MAX_LIFO_POLLS_PER_TICK`).
pub(crate) const MAX_LIFO_POLLS: u8 = 3;

/// Most tasks taken from the global queue at once (Go takes up to half a
/// ring; a smaller batch keeps the global queue shared fairly between slots).
const GLOBAL_BATCH_MAX: usize = 64;

/// The owner half of a slot (see `slot/mod.rs`).
pub(crate) struct Core {
    pub(crate) index: usize,
    pub(crate) local: queue::Local<Task>,
    pub(crate) lifo: Option<Task>,
    lifo_polls: u8,
    tick: u32,
    pub(crate) is_searching: bool,
    rand: u32,
}

impl Core {
    pub(crate) fn new(index: usize, local: queue::Local<Task>) -> Core {
        Core {
            index,
            local,
            lifo: None,
            lifo_polls: 0,
            tick: 0,
            is_searching: false,
            rand: 0x9E37_79B9 ^ (index as u32).wrapping_mul(0x85EB_CA6B) | 1,
        }
    }

    /// Does this core hold runnable tasks?
    pub(crate) fn has_tasks(&self) -> bool {
        self.lifo.is_some() || !self.local.is_empty()
    }

    /// xorshift32: a cheap random start for stealing.
    fn next_rand(&mut self, n: usize) -> usize {
        let mut x = self.rand;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rand = x;
        (x as usize) % n
    }

    /// Moves the LIFO task to the ring so it can be stolen (before a call).
    pub(crate) fn flush_lifo(&mut self, shared: &Shared) {
        if let Some(t) = self.lifo.take() {
            self.local.push_back(t, &shared.inject);
        }
    }

    /// Drops every queued task (shutdown).
    fn drain(&mut self) {
        drop(self.lifo.take());
        while let Some(t) = self.local.pop() {
            drop(t);
        }
    }
}

/// Spawns a worker thread, idle (no core) or starting on `core`. The
/// caller has reserved the thread in `Threads`; on failure the core is
/// given back with the error (the closure that owned it never ran).
pub(crate) fn spawn_thread(
    shared: &Arc<Shared>,
    core: Option<Box<Core>>,
) -> Result<(), (std::io::Error, Option<Box<Core>>)> {
    let parker = Parker::new();
    let ctl = Arc::new(ThreadCtl::new(parker.unparker()));
    shared.threads.register(&ctl);
    let cfg = &shared.config;
    let mut b = std::thread::Builder::new().name((cfg.thread_name)());
    if let Some(s) = cfg.stack_size {
        b = b.stack_size(s);
    }
    // The core travels through a cell so a failed spawn can give it back.
    let core_cell = Arc::new(std::sync::Mutex::new(core));
    let cc = core_cell.clone();
    let sh = shared.clone();
    let c2 = ctl.clone();
    // Relaxed: a count for keep-alive decisions and metrics; counted before
    // the thread runs so its own exit never sees it below zero.
    shared.threads.workers.fetch_add(1, Ordering::Relaxed);
    let res = b.spawn(move || {
        let core = cc.lock().unwrap_or_else(|e| e.into_inner()).take();
        thread_main(sh, c2, parker, core)
    });
    match res {
        Ok(_) => {
            Counters::bump(&shared.counters.threads_spawned);
            Ok(())
        }
        Err(e) => {
            shared.threads.workers.fetch_sub(1, Ordering::Relaxed);
            ctl.exited.store(true, Ordering::Release);
            Counters::bump(&shared.counters.thread_spawn_failures);
            let core = core_cell.lock().unwrap_or_else(|e| e.into_inner()).take();
            Err((e, core))
        }
    }
}

/// What a worker thread gives back when it ends, however it ends: its
/// place in the `max_threads` budget, its count, its registry entry, and a
/// core handed to it that it never started to run. Dropped on a normal
/// exit and on unwinding alike, so a panicking `on_thread_start` or
/// `on_thread_stop` hook (or a bug) cannot leak the reservation — which at
/// the cap would leave no thread to run the slots, for good.
struct ThreadExit {
    shared: Arc<Shared>,
    thread: Arc<ThreadCtl<Core>>,
    /// A core handed at spawn, until the thread acquires it.
    first: Option<Box<Core>>,
}

impl Drop for ThreadExit {
    fn drop(&mut self) {
        let shared = &self.shared;
        if let Some(core) = self.first.take() {
            // To another thread if there is work, else the idle list. (A
            // start hook that panics on every thread then costs a thread
            // spawn per retry while work waits: the runtime cannot run
            // anyway, and each panic message says why.)
            shared.handoff(core);
        }
        // Relaxed: a count for keep-alive decisions and metrics.
        shared.threads.workers.fetch_sub(1, Ordering::Relaxed);
        // Release pairs with the Acquire in `Threads::wait_idle_exit`.
        self.thread.exited.store(true, Ordering::Release);
        shared.thread_exited();
    }
}

fn thread_main(
    shared: Arc<Shared>,
    thread: Arc<ThreadCtl<Core>>,
    parker: Parker,
    first: Option<Box<Core>>,
) {
    // Declared first, dropped last: after the hooks and the context guards.
    let mut exit = ThreadExit {
        shared: shared.clone(),
        thread: thread.clone(),
        first,
    };
    let _reactor = shared.reactor.enter();
    let _current = context::set_current(crate::handle::Handle {
        shared: shared.clone(),
    });
    if let Some(f) = &shared.config.on_thread_start {
        f();
    }
    let cx = WorkerCx {
        shared: shared.clone(),
        tid: crate::sys::gettid(),
        core: std::cell::Cell::new(None),
        thread,
        collecting: std::cell::Cell::new(false),
        woken: std::cell::RefCell::new(Vec::new()),
    };
    let guard = context::set_worker(&cx);
    let mut core = exit.first.take().map(|c| cx.acquire(c));
    loop {
        let c = match core.take() {
            Some(c) => c,
            None => match cx.park_idle(&parker) {
                Some(c) => c,
                None => break,
            },
        };
        cx.run(c);
    }
    drop(guard);
    if let Some(f) = &shared.config.on_thread_stop {
        f();
    }
    drop(exit);
}

impl WorkerCx {
    /// Starts using a core taken off the idle list or handed over.
    fn acquire(&self, core: Box<Core>) -> Box<Core> {
        self.shared.slots[core.index].run_on(self.tid);
        core
    }

    /// Runs tasks until this thread no longer holds a core.
    fn run(&self, mut core: Box<Core>) {
        let shared = &*self.shared;
        loop {
            if shared.is_shutdown() {
                core.drain();
                shared.slots[core.index].state.transition_to_idle();
                // Dropped here: shutdown has taken the idle list already.
                drop(core);
                return;
            }
            if let Some(task) = self.next_task(&mut core) {
                match self.run_task(core, task) {
                    Some(c) => core = c,
                    None => return,
                }
                continue;
            }
            // Work already queued beats new I/O: steal before the reactor
            // turn (tokio's order: steal, then park in the driver). See
            // "Stealing before polling" in the module header.
            if let Some(task) = self.search(&mut core) {
                match self.run_task(core, task) {
                    Some(c) => core = c,
                    None => return,
                }
                continue;
            }
            core = self.turn_reactor(core);
            if core.has_tasks() {
                continue;
            }
            match self.release_core(core) {
                Some(c) => core = c,
                None => return,
            }
        }
    }

    fn next_task(&self, core: &mut Core) -> Option<Task> {
        let shared = &*self.shared;
        core.tick = core.tick.wrapping_add(1);
        if core.tick.is_multiple_of(GLOBAL_POLL_INTERVAL) {
            // Fairness: the global queue first, and the reactor, so I/O and
            // timers are seen under load.
            if let Some(t) = shared.inject.pop() {
                return Some(t);
            }
        }
        if core.lifo_polls < MAX_LIFO_POLLS {
            if let Some(t) = core.lifo.take() {
                core.lifo_polls += 1;
                return Some(t);
            }
        } else {
            core.flush_lifo(shared);
        }
        core.lifo_polls = 0;
        if let Some(t) = core.local.pop() {
            return Some(t);
        }
        self.pop_global_batch(core)
    }

    fn pop_global_batch(&self, core: &mut Core) -> Option<Task> {
        let shared = &*self.shared;
        let len = shared.inject.len();
        if len == 0 {
            return None;
        }
        let room = LOCAL_QUEUE_CAPACITY - core.local.len();
        let fair_share = len / shared.slots.len() + 1;
        let n = std::cmp::max(1, fair_share.min(room / 2).min(GLOBAL_BATCH_MAX));
        let local = &mut core.local;
        shared.inject.pop_batch(n, |t| {
            // Cannot overflow: the batch fits in half the free room.
            let _ = local.push_back(t, &shared.inject);
        })
    }

    /// Polls one task with the core in the thread's context (so the task's
    /// wakes and spawns go to this core). `None`: the core was lost (the
    /// task's blocking call took the slow exit).
    fn run_task(&self, mut core: Box<Core>, task: Task) -> Option<Box<Core>> {
        let shared = &*self.shared;
        if core.is_searching {
            core.is_searching = false;
            // Go's `resetspinning`: the last spinner to find work wakes
            // another, so a burst of work fans out.
            if shared.idle.stop_spinning() {
                shared.notify_parked();
            }
        }
        shared.slots[core.index].counters.polls.incr();
        if core.tick.is_multiple_of(GLOBAL_POLL_INTERVAL) {
            core = self.turn_reactor(core);
        }
        self.core.set(Some(core));
        task.run();
        self.core.take()
    }

    /// A non-blocking reactor turn with the core in context (wakers fired
    /// here put their tasks into this core).
    fn turn_reactor(&self, core: Box<Core>) -> Box<Core> {
        let Some(mut poller) = self.shared.reactor.try_lock_poller() else {
            return core;
        };
        self.core.set(Some(core));
        let _ = poller.turn(Some(Duration::ZERO));
        drop(poller);
        self.core
            .take()
            .expect("a reactor turn does not take the core")
    }

    /// Steal from the other slots, then the global queue, as a spinner.
    fn search(&self, core: &mut Core) -> Option<Task> {
        let shared = &*self.shared;
        if !core.is_searching {
            if !shared.idle.start_spinning() {
                return None;
            }
            core.is_searching = true;
        }
        let n = shared.slots.len();
        let start = core.next_rand(n);
        for i in 0..n {
            let idx = (start + i) % n;
            if idx == core.index {
                continue;
            }
            if let Some(t) = shared.slots[idx].steal.steal_into(&mut core.local) {
                let c = &shared.slots[core.index].counters;
                c.steals.incr();
                c.stolen_tasks.add(1 + core.local.len() as u64);
                return Some(t);
            }
        }
        self.pop_global_batch(core)
    }

    /// Nothing to run: the stopper's side of the protocol in `idle.rs`.
    /// Returns a core when the re-check found work and an idle core.
    fn release_core(&self, mut core: Box<Core>) -> Option<Box<Core>> {
        let shared = &*self.shared;
        debug_assert!(!core.has_tasks());
        let was_searching = std::mem::replace(&mut core.is_searching, false);
        shared.slots[core.index].state.transition_to_idle();
        shared.idle.push_core(core); // step 1
        if was_searching {
            shared.idle.stop_spinning(); // step 2
        }
        fence(Ordering::SeqCst); // step 3: pairs with `claim_wake`'s fence
        if shared.has_work() {
            if let Some(mut c) = shared.idle.pop_core() {
                c.is_searching = shared.idle.start_spinning();
                return Some(self.acquire(c));
            }
        }
        None
    }

    /// Queues the tasks this thread's reactor turn woke into the core it
    /// just took; when there is more than one, a spinner may come to steal
    /// some (Go's `injectglist` starts threads for the rest).
    fn adopt(&self, mut core: Box<Core>, woken: Vec<Task>) -> Box<Core> {
        let shared = &*self.shared;
        // A handed core may come as a spinner (`notify_parked` counted it):
        // it stays one until it runs its first task (`run_task`).
        let n = woken.len();
        for t in woken {
            let _ = core.local.push_back(t, &shared.inject);
        }
        if n > 1 {
            shared.notify_parked();
        }
        core
    }

    /// Waits with no core until handed one (`Some`) or told to exit (`None`).
    fn park_idle(&self, parker: &Parker) -> Option<Box<Core>> {
        let shared = &*self.shared;
        let me = &self.thread;
        // Whether we put ourselves on the idle thread list. If we did and
        // can no longer remove ourselves, a hander popped us and a core is
        // on its way: then we must wait for it, not take another.
        let mut listed = false;
        loop {
            if let Some(c) = me.take_handed() {
                return Some(self.acquire(c));
            }
            if let Some(order) = me.take_order() {
                // An `enter` popped us off the idle list to time its call
                // (`standby.rs`); we are listed no more.
                listed = false;
                if let Some(c) = crate::standby::run(self, order) {
                    return Some(self.acquire(c));
                }
                continue;
            }
            if shared.is_shutdown() {
                if listed {
                    shared.idle.remove_thread(me);
                }
                return None;
            }
            if shared.idle.num_idle() > 0 && shared.has_work() {
                if !listed || shared.idle.remove_thread(me) {
                    listed = false;
                    if let Some(mut c) = shared.idle.pop_core() {
                        c.is_searching = shared.idle.start_spinning();
                        return Some(self.acquire(c));
                    }
                } else {
                    parker.park();
                    continue;
                }
            }
            if !listed {
                shared.idle.push_thread(me);
                listed = true;
                // SeqCst pairs with the swap in `Shared::shutdown`: either it
                // found us on the list, or we see the flag here.
                if shared.shutdown.load(Ordering::SeqCst) {
                    continue;
                }
                // Re-check after listing (the stopper's step 3 for threads):
                // work queued before we listed found nobody to wake.
                fence(Ordering::SeqCst);
                if shared.has_work() && shared.idle.num_idle() > 0 {
                    continue;
                }
            }
            // Block in the reactor only while a core is idle: with every
            // core busy, what the turn wakes could only go to the global
            // queue, and the cores' own turns (every GLOBAL_POLL_INTERVAL
            // ticks, and when they run dry) put it in their rings instead.
            // SeqCst pairs with the fence in `Shared::handoff` between its
            // `park_core` and its look at the poller: either we see the idle
            // core here, or it sees the poller free and nudges us.
            fence(Ordering::SeqCst);
            let poll = shared.idle.num_idle() > 0;
            if let Some(mut poller) = poll.then(|| shared.reactor.try_lock_poller()).flatten() {
                // SeqCst pairs with the fence in `ThreadCtl::hand`.
                me.in_poller.store(true, Ordering::SeqCst);
                fence(Ordering::SeqCst);
                if !me.has_handed() && !shared.is_shutdown() {
                    self.collecting.set(true);
                    let _ = poller.turn(None);
                    self.collecting.set(false);
                }
                me.in_poller.store(false, Ordering::Relaxed);
                drop(poller);
                let woken = std::mem::take(&mut *self.woken.borrow_mut());
                if woken.is_empty() {
                    continue;
                }
                // Go's findrunnable -> netpoll -> acquirep: the thread that
                // saw the events runs what they woke, on an idle core,
                // instead of queueing it and waking another thread (a
                // context switch on every request's path).
                if let Some(c) = me.take_handed() {
                    return Some(self.adopt(self.acquire(c), woken));
                }
                if !listed || shared.idle.remove_thread(me) {
                    listed = false;
                    if let Some(c) = shared.idle.pop_core() {
                        return Some(self.adopt(self.acquire(c), woken));
                    }
                }
                // Every core is busy (their threads look at the global queue
                // when their rings run dry), or one is being handed to us.
                for t in woken {
                    shared.schedule_remote(t, crate::handle::Kind::Wake);
                }
                continue;
            }
            let woken = parker.park_timeout(shared.config.keep_alive);
            if !woken
                && !me.has_handed()
                && shared.threads.workers.load(Ordering::Relaxed) > shared.slots.len()
                && shared.idle.remove_thread(me)
            {
                return None;
            }
        }
    }
}
