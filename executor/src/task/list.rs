//! `OwnedTasks`: every live task of one runtime, so shutdown can cancel them.
//!
//! Every spawn inserts and every completion removes, from all worker threads
//! at once, so the list must not be one lock. It is `N` shards, each a mutex
//! around an intrusive doubly-linked list threaded through the task headers
//! (`Header::owned`): insert and remove are O(1) pointer swaps under the
//! shard's lock, with no allocation. A task lives in shard `id % N`; ids are
//! handed out in spawn order, so concurrent spawns spread over the shards.
//!
//! Protocol:
//! 1. `bind` allocates the task, locks its shard, and inserts it unless the
//!    list is closed; the list's reference is the one the shard holds.
//! 2. `remove` (from `Schedule::release`, once per task) locks the shard and
//!    unlinks the task if it is still linked, returning the list's reference.
//! 3. `close_and_shutdown_all` sets `closed`, then drains each shard one task
//!    at a time (the lock is released before the task is shut down, since a
//!    future's Drop may spawn, abort or complete other tasks) and shuts each
//!    task down: an idle one is cancelled here, a running one by its runner.
//!
//! Why no task escapes shutdown: `bind` reads `closed` under the shard lock.
//! If it reads `false`, its insert precedes `close`'s drain of that shard
//! (which takes the same lock later) and the drain finds it. If `close` has
//! drained the shard, its store to `closed` happened before its unlock,
//! which happened before `bind`'s lock, so `bind` reads `true` and cancels
//! the task itself.
//!
//! Rejected: one `Mutex<Vec>` (every spawn and completion of every worker
//! contends on one lock) and a slab (removal needs the key, and the slab
//! grows under churn); a lock-free list (unlinking in the middle is hard, and
//! the shard locks are almost never contended).
use super::raw::{Header, RawTask};
use super::state::INITIAL_BOUND;
use super::{harness::Cell, Id, JoinHandle, Notified, Schedule, Task};
use crate::loom::{AtomicBool, AtomicUsize, Mutex, MutexGuard, Ordering};
use std::future::Future;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// Shards per available core. 4 is tokio's figure for its sharded owned
/// list: with ids handed out round-robin, two workers spawning at once
/// collide on a shard lock about 1 time in `4 * cores`.
#[cfg_attr(loom, allow(dead_code))]
const SHARDS_PER_CORE: usize = 4;

/// Upper bound on the shard count (memory: one cache line per shard).
const MAX_SHARDS: usize = 1 << 12;

/// Shards under loom, whatever the caller asks for: one. A task's shard is
/// chosen by its id, ids come from a process-wide counter that keeps
/// counting across loom iterations, and a model whose tasks land in a
/// different shard (a different loom mutex) each iteration is not
/// deterministic ("Reached unexpected exploration state").
#[cfg(loom)]
const LOOM_SHARDS: usize = 1;

/// The id of the next `OwnedTasks` (0 means "no list", for blocking tasks).
/// A std atomic for the reasons of `NEXT_ID` in `id.rs`; Relaxed likewise.
static NEXT_LIST_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Every live task of one runtime.
pub(crate) struct OwnedTasks<S: Schedule> {
    shards: Box<[Shard]>,
    /// `shards.len() - 1` (a power of two minus one).
    mask: usize,
    /// No more tasks may be bound. Written by `close_and_shutdown_all`, read
    /// by `bind` under a shard lock (see the module header for why that
    /// suffices) and by `is_closed` (Acquire, pairs with the Release store).
    closed: AtomicBool,
    id: u64,
    _scheduler: PhantomData<fn(S)>,
}

/// One shard, alone on its cache lines so shards do not false-share.
#[repr(align(128))]
struct Shard {
    list: Mutex<List>,
    /// Tasks in `list`; written only under the lock (Relaxed: read only by
    /// `len`, which is a snapshot anyway).
    len: AtomicUsize,
}

/// An intrusive doubly-linked list of task headers.
struct List {
    head: Option<NonNull<Header>>,
}

// SAFETY: the list only holds pointers to tasks (which are Send + Sync
// through their state word); it is only reached under its shard's mutex.
unsafe impl Send for List {}

impl<S: Schedule> OwnedTasks<S> {
    /// A list sized for this machine: `SHARDS_PER_CORE` shards per available
    /// core, rounded up to a power of two.
    pub(crate) fn new() -> OwnedTasks<S> {
        #[cfg(loom)]
        let shards = LOOM_SHARDS;
        #[cfg(not(loom))]
        let shards = std::thread::available_parallelism().map_or(1, |n| n.get()) * SHARDS_PER_CORE;
        OwnedTasks::with_shards(shards)
    }

    /// A list with at least `shards` shards (rounded up to a power of two,
    /// at most `MAX_SHARDS`); e.g. `worker_threads * SHARDS_PER_CORE`.
    pub(crate) fn with_shards(shards: usize) -> OwnedTasks<S> {
        #[cfg(loom)]
        let shards = {
            let _ = shards;
            LOOM_SHARDS
        };
        let n = shards.clamp(1, MAX_SHARDS).next_power_of_two();
        OwnedTasks {
            shards: (0..n)
                .map(|_| Shard {
                    list: Mutex::new(List { head: None }),
                    len: AtomicUsize::new(0),
                })
                .collect(),
            mask: n - 1,
            closed: AtomicBool::new(false),
            id: NEXT_LIST_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            _scheduler: PhantomData,
        }
    }

    /// Creates and registers a task (one heap allocation). Returns its
    /// `JoinHandle` and the first `Notified` to push to a run queue. If the
    /// list is closed, the future is dropped here, the handle reports
    /// cancelled, and there is no `Notified`.
    pub(crate) fn bind<F>(
        &self,
        future: F,
        scheduler: S,
        id: Id,
    ) -> (JoinHandle<F::Output>, Option<Notified<S>>)
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let ptr = Cell::<F, S>::allocate(future, scheduler, id, self.id, INITIAL_BOUND);
        // SAFETY: a fresh task with three references: one for each wrapper.
        let (task, notified, join) = unsafe {
            let raw = RawTask::from_raw(ptr);
            (
                Task::<S>::from_raw_ref(ptr),
                Notified::<S>::from_raw_ref(ptr),
                JoinHandle::new(raw),
            )
        };
        let shard = self.shard(id);
        let mut list = lock(&shard.list);
        // Relaxed: read under the shard lock; see the module header.
        if self.closed.load(Ordering::Relaxed) {
            drop(list);
            drop(notified);
            task.shutdown();
            return (join, None);
        }
        // SAFETY: the task is not in any list, and we hold its shard's lock.
        unsafe { list.push_front(task.into_raw_ref()) };
        shard
            .len
            .store(shard.len.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        drop(list);
        (join, Some(notified))
    }

    /// Unlinks a completing task; returns the list's reference if the task
    /// was still linked (None: never bound, or already drained by
    /// `close_and_shutdown_all`). For `Schedule::release`.
    pub(crate) fn remove(&self, task: &Task<S>) -> Option<Task<S>> {
        let header = task.header();
        if header.owner_id == 0 {
            return None;
        }
        assert_eq!(
            header.owner_id, self.id,
            "a task was released to an OwnedTasks list it was not bound to; \
             Schedule::release must remove from the list that bound the task"
        );
        let shard = self.shard(header.id);
        let mut list = lock(&shard.list);
        // SAFETY: tasks of this list live in the shard of their id, and we hold its lock.
        let removed = unsafe { list.remove(task.header_ptr()) }?;
        shard
            .len
            .store(shard.len.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
        drop(list);
        // SAFETY: the list's reference, now ours.
        Some(unsafe { Task::from_raw_ref(removed) })
    }

    /// Closes the list to new tasks and cancels every registered task: each
    /// future is dropped exactly once, here if the task is idle, else by the
    /// thread running it when its poll returns.
    pub(crate) fn close_and_shutdown_all(&self) {
        // Release pairs with the Acquire in `is_closed`; `bind` is covered by
        // the shard locks (module header).
        self.closed.store(true, Ordering::Release);
        for shard in self.shards.iter() {
            loop {
                let mut list = lock(&shard.list);
                // SAFETY: we hold the shard's lock.
                let Some(ptr) = (unsafe { list.pop_front() }) else {
                    break;
                };
                shard
                    .len
                    .store(shard.len.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
                drop(list);
                // SAFETY: the list's reference, now ours; shutdown consumes it.
                unsafe { Task::<S>::from_raw_ref(ptr) }.shutdown();
            }
        }
    }

    /// True once `close_and_shutdown_all` has started.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Tasks currently registered (a snapshot).
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.len.load(Ordering::Relaxed))
            .sum()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, id: Id) -> &Shard {
        &self.shards[id.as_u64() as usize & self.mask]
    }
}

impl<S: Schedule> Drop for OwnedTasks<S> {
    fn drop(&mut self) {
        // A runtime's list is dropped empty: its tasks hold their scheduler,
        // which holds the runtime state that holds the list. A list used
        // without that cycle may still hold tasks: cancel them (their
        // schedulers cannot reach this list, so nothing re-enters it).
        if self
            .shards
            .iter()
            .any(|s| s.len.load(Ordering::Relaxed) != 0)
        {
            self.close_and_shutdown_all();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The list's invariants hold between statements that can panic (no user
    // code runs under the lock), so a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl List {
    /// # Safety
    ///
    /// `node` is a live task not linked in any list; the caller holds the lock.
    unsafe fn push_front(&mut self, node: NonNull<Header>) {
        // SAFETY: the caller's contract: the links are ours.
        unsafe {
            node.as_ref().owned.with_mut(|p| {
                (*p).prev = None;
                (*p).next = self.head;
            });
            if let Some(head) = self.head {
                head.as_ref().owned.with_mut(|p| (*p).prev = Some(node));
            }
        }
        self.head = Some(node);
    }

    /// Unlinks `node` if it is linked here.
    ///
    /// # Safety
    ///
    /// `node` is live, belongs to this list's shard (linked here or not
    /// linked at all), and the caller holds the lock.
    unsafe fn remove(&mut self, node: NonNull<Header>) -> Option<NonNull<Header>> {
        // SAFETY: the caller's contract: the links of every node of this
        // list are guarded by the lock we hold.
        unsafe {
            let (prev, next) = node.as_ref().owned.with(|p| ((*p).prev, (*p).next));
            match prev {
                Some(prev) => prev.as_ref().owned.with_mut(|p| (*p).next = next),
                None => {
                    if self.head != Some(node) {
                        // No predecessor and not the head: not linked.
                        return None;
                    }
                    self.head = next;
                }
            }
            if let Some(next) = next {
                next.as_ref().owned.with_mut(|p| (*p).prev = prev);
            }
            node.as_ref().owned.with_mut(|p| {
                (*p).prev = None;
                (*p).next = None;
            });
        }
        Some(node)
    }

    /// # Safety
    ///
    /// The caller holds the lock.
    unsafe fn pop_front(&mut self) -> Option<NonNull<Header>> {
        let head = self.head?;
        // SAFETY: `head` is linked here; the caller holds the lock.
        unsafe { self.remove(head) }
    }
}
