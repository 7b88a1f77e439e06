//! Task ids: a process-wide counter, so an id is unique across runtimes and
//! can key the owned-task shards.
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
