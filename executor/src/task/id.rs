//! Task ids: a process-wide counter, so an id is unique across runtimes and
//! can key the owned-task shards.
use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// The id of a task, unique among all tasks of the process for its lifetime.
///
/// Ids are handed out in spawn order from one counter shared by every
/// runtime; use them to tell tasks apart in logs and maps, not to order
/// them.
///
/// ```
/// use handoff_executor::Id;
/// use std::collections::HashSet;
///
/// fn distinct(ids: &[Id]) -> bool {
///     ids.iter().collect::<HashSet<_>>().len() == ids.len()
/// }
/// let (a, b) = (Id::next(), Id::next());
/// assert!(distinct(&[a, b]));
/// assert_eq!(format!("{a}"), a.as_u64().to_string());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Id(u64);

/// The next id to hand out; 0 is never used.
///
/// A std atomic, not the loom shim's: loom atomics cannot live in a `static`,
/// and this counter synchronises nothing. Relaxed is enough: a `fetch_add`
/// hands out each value exactly once in any ordering, and no other memory is
/// published through the id.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Id {
    /// A fresh id (for the scheduler and the blocking pool, which pass it to
    /// `OwnedTasks::bind` / `blocking_task`).
    #[doc(hidden)]
    pub fn next() -> Id {
        Id(NEXT_ID.fetch_add(1, Ordering::Relaxed))
    }

    /// The id as a number.
    ///
    /// ```
    /// let id = handoff_executor::Id::next();
    /// assert!(id.as_u64() > 0);
    /// ```
    pub fn as_u64(&self) -> u64 {
        self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

thread_local! {
    /// The id of the task whose future (or output) this thread is polling or
    /// dropping; `None` outside a task.
    static CURRENT: Cell<Option<Id>> = const { Cell::new(None) };
}

/// Sets the current task id for a scope (a poll, a cancellation, an output
/// drop) and restores the previous one after, also on unwind.
pub(super) struct IdGuard(Option<Id>);

impl IdGuard {
    pub(super) fn enter(id: Id) -> IdGuard {
        // try_with: during thread teardown the slot may be gone; then there is
        // no id to report and nothing to restore.
        IdGuard(CURRENT.try_with(|c| c.replace(Some(id))).ok().flatten())
    }
}

impl Drop for IdGuard {
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|c| c.set(self.0));
    }
}

/// The id of the task running on this thread, or `None` outside a task.
///
/// Inside a task's poll (and while its future or output is being dropped)
/// this is the task's [`Id`]; elsewhere (plain threads, `block_on`'s own
/// future) it is `None`.
///
/// ```
/// use handoff_executor::task::{blocking_task, try_id};
/// use handoff_executor::Id;
///
/// assert_eq!(try_id(), None);
/// let id = Id::next();
/// let (runnable, handle) = blocking_task(try_id, id);
/// runnable.run();
/// assert_eq!(futures::executor::block_on(handle).unwrap(), Some(id));
/// ```
pub fn try_id() -> Option<Id> {
    CURRENT.try_with(|c| c.get()).ok().flatten()
}

/// The id of the task running on this thread.
///
/// # Panics
///
/// Panics outside a task; use [`try_id`] where that can happen.
///
/// ```
/// handoff_executor::Runtime::new().unwrap().block_on(async {
///     let h = handoff_executor::spawn(async { handoff_executor::task::id() });
///     let id = h.id();
///     assert_eq!(h.await.unwrap(), id);
/// });
/// ```
#[track_caller]
pub fn id() -> Id {
    try_id().expect(
        "handoff_executor::task::id() called outside a task; use task::try_id() where \
         the caller may not be a spawned task",
    )
}
