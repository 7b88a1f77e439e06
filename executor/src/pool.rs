//! The `spawn_blocking` pool: threads for `'static` work that must not hold
//! a task at all (tokio's blocking pool).
//!
//! 1. `spawn_blocking` makes a blocking task (`task::blocking_task`: one
//!    allocation, the same `JoinHandle`/`JoinError` as spawned futures) and
//!    queues its `Runnable`.
//! 2. If a pool thread is idle and not already notified, notify one; else
//!    reserve a thread from the runtime's budget (`max_threads`, shared with
//!    the workers) and spawn one; at the cap, the job stays queued — never
//!    dropped — and runs when a pool thread frees up or when any runtime
//!    thread exits and gives its reservation back (`thread_released`).
//! 3. A pool thread runs jobs until the queue is empty, then waits
//!    `thread_keep_alive` for more and exits.
//! 4. Shutdown cancels the queued jobs (their `JoinHandle`s report
//!    cancelled) and wakes idle pool threads so they exit; running jobs are
//!    not waited for.
//!
//! `idle` counts waiting threads, `notified` the wake-ups sent and not yet
//! taken; a job is given to a waiting thread only while `idle > notified`,
//! so two quick jobs and one idle thread start a second thread instead of
//! queueing behind the first.
use crate::context;
use crate::handle::{Counters, Handle, Shared};
use crate::loom::{Arc, Condvar, Mutex, MutexGuard};
use crate::task::{self, JoinHandle, Runnable};
use std::collections::VecDeque;
use std::time::Instant;

pub(crate) struct Pool {
    state: Mutex<State>,
    cv: Condvar,
}

struct State {
    queue: VecDeque<Runnable>,
    threads: usize,
    idle: usize,
    notified: usize,
    shutdown: bool,
}

impl Pool {
    pub(crate) fn new() -> Pool {
        Pool {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                threads: 0,
                idle: 0,
                notified: 0,
                shutdown: false,
            }),
            cv: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// (pool threads alive, jobs queued)
    pub(crate) fn stats(&self) -> (usize, usize) {
        let s = self.lock();
        (s.threads, s.queue.len())
    }

    pub(crate) fn shutdown(&self, _shared: &Shared) {
        let queued = {
            let mut s = self.lock();
            s.shutdown = true;
            self.cv.notify_all();
            std::mem::take(&mut s.queue)
        };
        for r in queued {
            r.cancel();
        }
    }

    /// A runtime thread exited: if jobs wait at the cap, start a pool thread
    /// with the freed room.
    pub(crate) fn thread_released(&self, shared: &Arc<Shared>) {
        let mut s = self.lock();
        if s.shutdown || s.queue.is_empty() || s.idle > s.notified {
            return;
        }
        try_spawn(shared, &mut s);
    }
}

/// Spawns a pool thread if the budget allows (called under the pool lock).
fn try_spawn(shared: &Arc<Shared>, s: &mut State) {
    if !shared.threads.try_reserve() {
        return;
    }
    s.threads += 1;
    let sh = shared.clone();
    let mut b = std::thread::Builder::new().name("handoff-blocking".into());
    if let Some(sz) = shared.config.stack_size {
        b = b.stack_size(sz);
    }
    if b.spawn(move || pool_thread(sh)).is_err() {
        s.threads -= 1;
        shared.threads.release();
        Counters::bump(&shared.counters.thread_spawn_failures);
    } else {
        Counters::bump(&shared.counters.threads_spawned);
    }
}

pub(crate) fn spawn_blocking<F, R>(shared: &Arc<Shared>, f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let (runnable, join) = task::blocking_task(f, task::Id::next());
    Counters::bump(&shared.counters.spawn_blocking_tasks);
    let pool = &shared.pool;
    let mut s = pool.lock();
    if s.shutdown {
        drop(s);
        runnable.cancel();
        return join;
    }
    s.queue.push_back(runnable);
    if s.idle > s.notified {
        s.notified += 1;
        pool.cv.notify_one();
    } else {
        try_spawn(shared, &mut s);
    }
    join
}

/// Gives a pool thread's place back — in the pool's count and in the
/// `max_threads` budget — when the thread ends, also when it unwinds (a
/// panicking `on_thread_start` or `on_thread_stop`); then the freed place
/// goes to a waiting worker core or queued job (`Shared::thread_exited`), so
/// nothing waits for a thread that died.
struct PoolThreadExit {
    shared: Arc<Shared>,
}

impl Drop for PoolThreadExit {
    fn drop(&mut self) {
        let shared = &self.shared;
        shared.pool.lock().threads -= 1;
        shared.thread_exited();
    }
}

fn pool_thread(shared: Arc<Shared>) {
    // Declared first, dropped last: after the stop hook and the guards.
    let _exit = PoolThreadExit {
        shared: shared.clone(),
    };
    let _reactor = shared.reactor.enter();
    let _current = context::set_current(Handle {
        shared: shared.clone(),
    });
    if let Some(f) = &shared.config.on_thread_start {
        f();
    }
    let pool = &shared.pool;
    let keep_alive = shared.config.keep_alive;
    let mut s = pool.lock();
    'outer: loop {
        while let Some(r) = s.queue.pop_front() {
            drop(s);
            r.run();
            s = pool.lock();
        }
        if s.shutdown {
            break;
        }
        s.idle += 1;
        let deadline = Instant::now() + keep_alive;
        loop {
            let now = Instant::now();
            if s.notified > 0 {
                s.notified -= 1;
                s.idle -= 1;
                continue 'outer;
            }
            if s.shutdown || now >= deadline {
                s.idle -= 1;
                if s.shutdown || s.queue.is_empty() {
                    break 'outer;
                }
                continue 'outer;
            }
            s = pool
                .cv
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
    drop(s);
    if let Some(f) = &shared.config.on_thread_stop {
        f();
    }
}
