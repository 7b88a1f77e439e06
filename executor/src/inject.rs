//! The global run queue: tasks that belong to no slot (Go's `sched.runq`).
//!
//! A `VecDeque` behind a mutex, plus an atomic length so the emptiness test
//! every idle worker makes stays a lock-free load. Workers take a batch at a
//! time (`pop_batch`), so the lock is taken once per many tasks.
//!
//! 1. `push`/`push_batch` lock, append, then store the new length.
//! 2. `pop`/`pop_batch` first load the length without the lock; on zero they
//!    return at once. Otherwise they lock and take.
//! 3. `close` marks the queue closed under the lock: later pushes hand their
//!    task back to the caller (who drops it outside the lock), so a waker
//!    that outlives the runtime cannot strand a task in a dead queue.
//!
//! The length is written only under the lock; its `Release` store pairs with
//! the `Acquire` load in `is_empty`, so a thread that sees a non-zero length
//! and then locks finds the tasks. A stale zero is fine for callers that
//! follow the no-lost-wake-up protocol of `idle.rs` (they re-check after a
//! `SeqCst` fence).
//!
//! Rejected: an intrusive list through the task headers (one less
//! allocation per push, but it needs a pointer field owned by this module in
//! the task module's header; `VecDeque` reuses its buffer, so steady-state
//! pushes do not allocate either).
use crate::loom::{AtomicUsize, Mutex, Ordering};
use std::collections::VecDeque;

pub(crate) struct Inject<T> {
    len: AtomicUsize,
    inner: Mutex<State<T>>,
}

struct State<T> {
    queue: VecDeque<T>,
    closed: bool,
}

impl<T> Inject<T> {
    pub(crate) fn new() -> Inject<T> {
        Inject {
            len: AtomicUsize::new(0),
            inner: Mutex::new(State {
                queue: VecDeque::new(),
                closed: false,
            }),
        }
    }

    /// Tasks queued (lock-free; may be stale).
    pub(crate) fn len(&self) -> usize {
        // Acquire pairs with the Release stores below.
        self.len.load(Ordering::Acquire)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> crate::loom::MutexGuard<'_, State<T>> {
        // A poisoned lock only means a panic elsewhere; the deque is intact.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a task. Gives it back when the queue is closed (the caller drops it).
    pub(crate) fn try_push(&self, task: T) -> Result<(), T> {
        let mut s = self.lock();
        if s.closed {
            return Err(task);
        }
        s.queue.push_back(task);
        // Release pairs with the Acquire in `len`.
        self.len.store(s.queue.len(), Ordering::Release);
        Ok(())
    }

    /// Appends a task, dropping it if the queue is closed.
    pub(crate) fn push(&self, task: T) {
        if let Err(task) = self.try_push(task) {
            drop(task);
        }
    }

    /// Appends a batch in one lock (the local queue's overflow).
    pub(crate) fn push_batch(&self, batch: Vec<T>) {
        let mut s = self.lock();
        if s.closed {
            drop(s);
            drop(batch);
            return;
        }
        s.queue.extend(batch);
        // Release pairs with the Acquire in `len`.
        self.len.store(s.queue.len(), Ordering::Release);
    }

    pub(crate) fn pop(&self) -> Option<T> {
        if self.is_empty() {
            return None;
        }
        let mut s = self.lock();
        let t = s.queue.pop_front();
        // Release pairs with the Acquire in `len`.
        self.len.store(s.queue.len(), Ordering::Release);
        t
    }

    /// Takes up to `max` tasks: the first is returned, the rest are passed
    /// to `sink` (the caller's local queue) after the lock is released.
    pub(crate) fn pop_batch(&self, max: usize, mut sink: impl FnMut(T)) -> Option<T> {
        if self.is_empty() || max == 0 {
            return None;
        }
        let mut batch: Vec<T>;
        let first;
        {
            let mut s = self.lock();
            first = s.queue.pop_front()?;
            let n = (max - 1).min(s.queue.len());
            batch = s.queue.drain(..n).collect();
            // Release pairs with the Acquire in `len`.
            self.len.store(s.queue.len(), Ordering::Release);
        }
        for t in batch.drain(..) {
            sink(t);
        }
        Some(first)
    }

    /// Closes the queue and returns what was in it (to drop outside the lock).
    pub(crate) fn close(&self) -> VecDeque<T> {
        let mut s = self.lock();
        s.closed = true;
        self.len.store(0, Ordering::Release);
        std::mem::take(&mut s.queue)
    }
}
