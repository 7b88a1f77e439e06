//! The timer heap: deadlines of outstanding sleeps, fired by whoever polls.
//!
//! # Structure
//!
//! A binary min-heap of `(deadline, seq, entry)` under one mutex, with lazy
//! cancellation. Each [`TimerShared`] remembers the `seq` of its live heap
//! entry (0: none). Cancelling or resetting a timer just changes that number
//! (O(1)); the stale heap entry is skipped when it reaches the top. Insert
//! and pop are O(log n). `seq` also breaks ties, so equal deadlines fire in
//! the order they were set.
//!
//! Stale entries would pile up under a load of long timeouts that are almost
//! always cancelled (a 30 s timeout around each request). So when more than
//! half the heap is stale (and at least [`COMPACT_MIN`] entries), the heap is
//! rebuilt without them: O(n) work after n/2 cancels, amortised O(1).
//!
//! Rejected: a hierarchical wheel (tokio's). It gives O(1) insert and cancel
//! but needs intrusive lists with raw pointers and a millisecond tick; the
//! heap is simple, exact to the nanosecond, and 100 000 sleeps cost ~17
//! comparisons each.
//!
//! # The poller's sleep and the wake rule
//!
//! Before blocking, the poller records in `poller_until` how long it will
//! sleep (under this mutex). A timer set with an earlier deadline while the
//! poller sleeps makes `insert` return `true`, and the caller then calls
//! `Handle::wake` (after releasing the lock). A timer set before the record
//! is taken into account by the poller's own computation: no window.
//!
//! # Field rules of `TimerShared`
//!
//! - `seq` is read and written only under the timers mutex (Relaxed is
//!   enough: the mutex orders it).
//! - `fired` is written under the mutex (by the poller: true; by reset:
//!   false) and read without it by `Sleep::poll` (Acquire, pairs with the
//!   Release store in `fire_expired`).
//! - `waker` is an `AtomicWaker`: registered by the sleep, taken by the poller.
use futures::task::AtomicWaker;
use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

/// Do not compact heaps smaller than this: rebuilding a small heap costs more
/// than skipping its stale entries.
const COMPACT_MIN: usize = 1024;

#[derive(Default)]
pub(crate) struct TimerShared {
    seq: AtomicU64,
    pub(crate) fired: AtomicBool,
    pub(crate) shutdown: AtomicBool,
    pub(crate) waker: AtomicWaker,
}

struct Entry {
    deadline: Instant,
    seq: u64,
    shared: Arc<TimerShared>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

impl Entry {
    fn is_live(&self) -> bool {
        self.shared.seq.load(Ordering::Relaxed) == self.seq
    }
}

/// What the poller is doing, as far as timers care.
#[derive(Clone, Copy)]
enum PollerSleep {
    Awake,
    Until(Instant),
    Forever,
}

pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
    next_seq: u64,
    stale: usize,
    poller: PollerSleep,
    shut_down: bool,
}

impl Timers {
    pub(crate) fn new() -> Timers {
        Timers {
            heap: BinaryHeap::new(),
            next_seq: 1,
            stale: 0,
            poller: PollerSleep::Awake,
            shut_down: false,
        }
    }

    /// Sets (or moves) the timer to `deadline`. Returns whether the caller
    /// must wake the poller (it sleeps past `deadline`).
    pub(crate) fn insert(&mut self, shared: &Arc<TimerShared>, deadline: Instant) -> bool {
        if self.shut_down {
            shared.shutdown.store(true, Ordering::Release);
            return false;
        }
        if shared.seq.load(Ordering::Relaxed) != 0 {
            self.stale += 1;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        shared.seq.store(seq, Ordering::Relaxed);
        // Relaxed: written under the mutex, read by the sleep after it
        // observes nothing new (a stale `true` is impossible: reset happens
        // on the sleep's own thread).
        shared.fired.store(false, Ordering::Relaxed);
        self.heap.push(Reverse(Entry {
            deadline,
            seq,
            shared: shared.clone(),
        }));
        self.maybe_compact();
        match self.poller {
            PollerSleep::Awake => false,
            PollerSleep::Forever => true,
            PollerSleep::Until(t) => deadline < t,
        }
    }

    /// Cancels the timer (lazy: its heap entry becomes stale).
    pub(crate) fn cancel(&mut self, shared: &TimerShared) {
        if shared.seq.swap(0, Ordering::Relaxed) != 0 {
            self.stale += 1;
            self.maybe_compact();
        }
    }

    fn maybe_compact(&mut self) {
        if self.stale >= COMPACT_MIN && self.stale * 2 > self.heap.len() {
            self.heap.retain(|Reverse(e)| e.is_live());
            self.stale = 0;
        }
    }

    /// Drops stale entries from the top; returns the earliest live deadline.
    fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse(top)) = self.heap.peek() {
            if top.is_live() {
                return Some(top.deadline);
            }
            self.heap.pop();
            self.stale = self.stale.saturating_sub(1);
        }
        None
    }

    /// The poller is about to block with the caller's `timeout`: returns the
    /// effective timeout and records how long the poller will sleep.
    pub(crate) fn poller_timeout(
        &mut self,
        now: Instant,
        timeout: Option<Duration>,
    ) -> Option<Duration> {
        let timer = self
            .next_deadline()
            .map(|d| d.saturating_duration_since(now));
        let wait = match (timeout, timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.poller = match wait {
            None => PollerSleep::Forever,
            Some(d) => now
                .checked_add(d)
                .map_or(PollerSleep::Forever, PollerSleep::Until),
        };
        wait
    }

    /// The poller is back from `epoll_pwait`.
    pub(crate) fn poller_awake(&mut self) {
        self.poller = PollerSleep::Awake;
    }

    /// Pops every live timer with `deadline <= now`, in deadline order, and
    /// collects their wakers.
    pub(crate) fn fire_expired(&mut self, now: Instant, wakers: &mut Vec<Waker>) {
        while let Some(Reverse(top)) = self.heap.peek() {
            if top.deadline > now {
                break;
            }
            let Some(Reverse(e)) = self.heap.pop() else {
                break;
            };
            if !e.is_live() {
                self.stale = self.stale.saturating_sub(1);
                continue;
            }
            e.shared.seq.store(0, Ordering::Relaxed);
            // Release: pairs with the Acquire load in `Sleep::poll`.
            e.shared.fired.store(true, Ordering::Release);
            wakers.extend(e.shared.waker.take());
        }
    }

    /// The reactor is dropped: every pending timer is shut down and its
    /// waker collected (to be dropped).
    pub(crate) fn shutdown(&mut self, wakers: &mut Vec<Waker>) {
        self.shut_down = true;
        for Reverse(e) in self.heap.drain() {
            // Release: pairs with the Acquire in `Sleep::poll`.
            e.shared.shutdown.store(true, Ordering::Release);
            wakers.extend(e.shared.waker.take());
        }
    }

    #[cfg(all(test, not(loom)))]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn cancelled_entries_are_compacted() {
        let mut t = Timers::new();
        let now = Instant::now();
        let shared: Vec<_> = (0..4 * COMPACT_MIN)
            .map(|_| Arc::new(TimerShared::default()))
            .collect();
        for (i, s) in shared.iter().enumerate() {
            let _ = t.insert(s, now + Duration::from_secs(10 + i as u64));
        }
        for s in &shared[..3 * COMPACT_MIN] {
            t.cancel(s);
        }
        assert!(
            t.len() < 3 * COMPACT_MIN,
            "stale entries were not compacted: {}",
            t.len()
        );
        let mut w = Vec::new();
        t.fire_expired(now + Duration::from_secs(100_000), &mut w);
        assert_eq!(t.len(), 0);
        assert!(shared[3 * COMPACT_MIN].fired.load(Ordering::Acquire));
        assert!(!shared[0].fired.load(Ordering::Acquire));
    }

    #[test]
    fn poller_wake_rule() {
        let mut t = Timers::new();
        let now = Instant::now();
        let s = Arc::new(TimerShared::default());
        assert!(
            !t.insert(&s, now + Duration::from_secs(5)),
            "awake poller needs no wake"
        );
        assert_eq!(t.poller_timeout(now, None), Some(Duration::from_secs(5)));
        let s2 = Arc::new(TimerShared::default());
        assert!(!t.insert(&s2, now + Duration::from_secs(6)));
        assert!(
            t.insert(&s2, now + Duration::from_secs(1)),
            "earlier deadline must wake"
        );
        t.poller_awake();
        assert!(!t.insert(&s2, now + Duration::from_millis(1)));
    }
}
