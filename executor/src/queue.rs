//! The local run queue of a worker slot: a fixed ring that one owner pushes
//! to and pops from, and that any number of thieves steal half of.
//!
//! ## Layout
//!
//! `tail` (u32) is written only by the owner. `head` (u64) packs two u32
//! indices, `(steal, real)`:
//! - `real` is the next task to pop or steal;
//! - `steal` is where an in-progress steal started reading. `steal == real`
//!   when no steal is in progress. The owner may not overwrite the ring
//!   from `steal` on, so `tail - steal <= CAPACITY` is the fullness test.
//!
//! Indices grow without bound (wrapping u32) and are masked into the ring,
//! so `tail - real` is the length even across wrap-around.
//!
//! ## Protocol
//!
//! 1. *push* (owner): if `tail - steal < CAPACITY`, write the slot at `tail`,
//!    then publish with a `Release` store of `tail + 1` (pairs with the
//!    `Acquire` load of `tail` in `steal_into`). If full and no steal is in
//!    progress, *overflow*: claim half of the ring with one CAS of `head`
//!    from `(real, real)` to `(real + HALF, real + HALF)`, then move those
//!    tasks and the new one to the global queue in one batch. If full while a
//!    thief is copying, the new task alone goes to the global queue (the
//!    thief is about to free half the ring).
//! 2. *pop* (owner): CAS `real` to `real + 1` (and `steal` along with it when
//!    no steal is in progress); the winner reads the slot.
//! 3. *steal* (thief): (a) CAS `head` from `(s, r)` with `s == r` to
//!    `(r, r + n)`, claiming `n = ceil(len / 2)` tasks while leaving `steal`
//!    behind as a fence for the owner's pushes; (b) copy the n tasks into its
//!    own ring; (c) CAS `steal` up to `real` to end the steal. Only one steal
//!    runs at a time per queue (a thief that finds `steal != real` gives up
//!    on this queue and tries the next).
//!
//! Why it is correct: a slot is read by exactly the one CAS winner that moved
//! `real` past it; the owner writes a slot only when it is outside
//! `[steal, tail)`, and a thief's claim never moves `steal` forward until its
//! copy is done. `head` CASes are `AcqRel` so a claim sees the slot writes
//! published by the `tail` store it read.
//!
//! Rejected: a Chase-Lev deque (steals one task per CAS and needs a
//! `SeqCst` fence on the owner's pop) and a mutex-protected `VecDeque` (every
//! pop takes a lock that thieves contend). This is the design of Go's
//! `runqsteal` and tokio's `queue.rs`, written afresh.
use crate::inject::Inject;
use crate::loom::{Arc, AtomicU32, AtomicU64, Ordering, UnsafeCell};
use std::mem::MaybeUninit;

/// Tasks one ring holds: Go's and tokio's figure. Big enough that a burst of
/// spawns from one task rarely overflows, small enough that stealing half is
/// a short copy. Shrunk under loom so models reach the overflow path.
#[cfg(not(loom))]
pub(crate) const LOCAL_QUEUE_CAPACITY: usize = 256;
#[cfg(loom)]
pub(crate) const LOCAL_QUEUE_CAPACITY: usize = 4;

const MASK: usize = LOCAL_QUEUE_CAPACITY - 1;
const HALF: u32 = (LOCAL_QUEUE_CAPACITY / 2) as u32;

struct Inner<T> {
    head: AtomicU64,
    tail: AtomicU32,
    buffer: Box<[UnsafeCell<MaybeUninit<T>>]>,
}

// SAFETY: the ring hands each `T` from one thread to another exactly once
// (the protocol in the module header), so it is `Send`/`Sync` when `T: Send`.
unsafe impl<T: Send> Send for Inner<T> {}
// SAFETY: as above; shared access to a slot is governed by the head/tail CASes.
unsafe impl<T: Send> Sync for Inner<T> {}

/// The owner's end: push and pop. Not `Clone`; whoever holds it owns the ring.
pub(crate) struct Local<T> {
    inner: Arc<Inner<T>>,
}

/// A thief's end: steal half, and read the length.
pub(crate) struct Steal<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for Steal<T> {
    fn clone(&self) -> Self {
        Steal {
            inner: self.inner.clone(),
        }
    }
}

fn pack(steal: u32, real: u32) -> u64 {
    (u64::from(steal) << 32) | u64::from(real)
}

fn unpack(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32)
}

/// A new empty ring: the owner's end and a thief's end.
pub(crate) fn local<T>() -> (Local<T>, Steal<T>) {
    let buffer = (0..LOCAL_QUEUE_CAPACITY)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect();
    let inner = Arc::new(Inner {
        head: AtomicU64::new(0),
        tail: AtomicU32::new(0),
        buffer,
    });
    (
        Local {
            inner: inner.clone(),
        },
        Steal { inner },
    )
}

impl<T> Inner<T> {
    fn len(&self) -> usize {
        let (_, real) = unpack(self.head.load(Ordering::Acquire));
        let tail = self.tail.load(Ordering::Acquire);
        tail.wrapping_sub(real) as usize
    }

    /// Reads the task at `idx`.
    ///
    /// # Safety
    /// The caller won the CAS that moved `real` past `idx` (so nobody else
    /// reads it), and the slot was written (it was below `tail`).
    unsafe fn read(&self, idx: u32) -> T {
        // SAFETY: per the function contract the slot is initialised and ours.
        self.buffer[idx as usize & MASK].with(|p| unsafe { (*p).assume_init_read() })
    }

    /// Writes the task at `idx`.
    ///
    /// # Safety
    /// The caller is the owner and `idx` is outside `[steal, tail)`.
    unsafe fn write(&self, idx: u32, task: T) {
        // SAFETY: per the function contract nobody reads or writes the slot.
        self.buffer[idx as usize & MASK].with_mut(|p| unsafe { (*p).write(task) });
    }
}

impl<T> Local<T> {
    /// Tasks in the ring (racy against thieves: a hint).
    pub(crate) fn len(&self) -> usize {
        self.inner.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Free room for a steal into this ring.
    fn remaining(&self) -> usize {
        let (steal, _) = unpack(self.inner.head.load(Ordering::Acquire));
        // Relaxed: only this thread (the owner) stores `tail`.
        let tail = self.inner.tail.load(Ordering::Relaxed);
        LOCAL_QUEUE_CAPACITY - tail.wrapping_sub(steal) as usize
    }

    /// Pushes at the back; on a full ring moves half of it plus `task` to
    /// `inject` in one batch. Returns `true` when tasks went to `inject`.
    pub(crate) fn push_back(&mut self, mut task: T, inject: &Inject<T>) -> bool {
        loop {
            let head = self.inner.head.load(Ordering::Acquire);
            let (steal, real) = unpack(head);
            // Relaxed: only this thread (the owner) stores `tail`.
            let tail = self.inner.tail.load(Ordering::Relaxed);
            if (tail.wrapping_sub(steal) as usize) < LOCAL_QUEUE_CAPACITY {
                // SAFETY: we are the owner and `tail` is outside
                // `[steal, tail)` with room in the ring (checked above).
                unsafe { self.inner.write(tail, task) };
                // Release pairs with the Acquire loads of `tail` in `len` and
                // `steal_into2`: the slot write is visible before the index.
                self.inner
                    .tail
                    .store(tail.wrapping_add(1), Ordering::Release);
                return false;
            }
            if steal != real {
                // A thief is copying out half the ring: don't wait for it.
                inject.push(task);
                return true;
            }
            match self.push_overflow(task, real, tail, inject) {
                Ok(()) => return true,
                Err(t) => task = t, // a pop or steal moved `head`; retry
            }
        }
    }

    fn push_overflow(
        &mut self,
        task: T,
        real: u32,
        tail: u32,
        inject: &Inject<T>,
    ) -> Result<(), T> {
        debug_assert_eq!(tail.wrapping_sub(real) as usize, LOCAL_QUEUE_CAPACITY);
        let prev = pack(real, real);
        let next_real = real.wrapping_add(HALF);
        // AcqRel: Acquire pairs with the Release head CASes of thieves (their
        // copies are done before we reuse the slots); Release publishes our
        // claim to them.
        if self
            .inner
            .head
            .compare_exchange(
                prev,
                pack(next_real, next_real),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return Err(task);
        }
        let mut batch = Vec::with_capacity(HALF as usize + 1);
        for i in 0..HALF {
            // SAFETY: the CAS above moved `real` past these HALF slots, which
            // were all below `tail` (the ring was full).
            batch.push(unsafe { self.inner.read(real.wrapping_add(i)) });
        }
        batch.push(task);
        inject.push_batch(batch);
        Ok(())
    }

    /// Pops from the front.
    pub(crate) fn pop(&mut self) -> Option<T> {
        let mut head = self.inner.head.load(Ordering::Acquire);
        loop {
            let (steal, real) = unpack(head);
            // Relaxed: only this thread (the owner) stores `tail`.
            let tail = self.inner.tail.load(Ordering::Relaxed);
            if real == tail {
                return None;
            }
            let next_real = real.wrapping_add(1);
            let next = if steal == real {
                pack(next_real, next_real)
            } else {
                pack(steal, next_real)
            };
            // AcqRel: pairs with the thieves' head CASes (see push_overflow).
            match self
                .inner
                .head
                .compare_exchange(head, next, Ordering::AcqRel, Ordering::Acquire)
            {
                // SAFETY: our CAS moved `real` past `real`, which was below `tail`.
                Ok(_) => return Some(unsafe { self.inner.read(real) }),
                Err(actual) => head = actual,
            }
        }
    }
}

impl<T> Steal<T> {
    /// Tasks in the ring (a hint).
    pub(crate) fn len(&self) -> usize {
        self.inner.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Steals half of this ring into `dst` and returns one of the stolen
    /// tasks to run at once.
    pub(crate) fn steal_into(&self, dst: &mut Local<T>) -> Option<T> {
        if Arc::ptr_eq(&self.inner, &dst.inner) {
            return None;
        }
        // Room for half of a full ring, else stealing would overflow `dst`.
        if dst.remaining() < LOCAL_QUEUE_CAPACITY / 2 {
            return None;
        }
        // Relaxed: `dst` is ours; only we store its `tail`.
        let dst_tail = dst.inner.tail.load(Ordering::Relaxed);
        let n = self.steal_into2(dst, dst_tail);
        if n == 0 {
            return None;
        }
        // The last copied task is returned to run; the rest are published.
        let n = n - 1;
        let last = dst_tail.wrapping_add(n);
        // SAFETY: we wrote slot `last` of our own ring in `steal_into2`; it is
        // at `tail`, not yet published, so nobody else can read it.
        let task = unsafe { dst.inner.read(last) };
        if n > 0 {
            // Release pairs with the Acquire loads of `tail` by thieves of `dst`.
            dst.inner.tail.store(last, Ordering::Release);
        }
        Some(task)
    }

    /// Claims, copies and releases up to half the tasks; returns how many
    /// were written into `dst` from `dst_tail` on.
    fn steal_into2(&self, dst: &mut Local<T>, dst_tail: u32) -> u32 {
        let mut prev = self.inner.head.load(Ordering::Acquire);
        let (first, n) = loop {
            let (steal, real) = unpack(prev);
            if steal != real {
                return 0; // another thief is copying
            }
            // Acquire pairs with the owner's Release store of `tail`.
            let tail = self.inner.tail.load(Ordering::Acquire);
            let len = tail.wrapping_sub(real);
            let n = len - len / 2;
            if n == 0 {
                return 0;
            }
            let next = pack(steal, real.wrapping_add(n));
            // AcqRel: pairs with the owner's head CASes (pop, overflow).
            match self
                .inner
                .head
                .compare_exchange(prev, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break (real, n),
                Err(actual) => prev = actual,
            }
        };
        for i in 0..n {
            // SAFETY: our claim moved `real` past these n slots, which were
            // below `tail`; `steal` stays at `first` so the owner cannot
            // overwrite them until we release below.
            let task = unsafe { self.inner.read(first.wrapping_add(i)) };
            // SAFETY: `dst` is ours and has room (checked by the caller): the
            // slot is outside `dst`'s `[steal, tail)`.
            unsafe { dst.inner.write(dst_tail.wrapping_add(i), task) };
        }
        // Release the claim: move `steal` up to `real`.
        let mut prev = self.inner.head.load(Ordering::Acquire);
        loop {
            let (steal, real) = unpack(prev);
            debug_assert_eq!(steal, first);
            // AcqRel: Release tells the owner our reads are done (pairs with
            // the Acquire of its head loads before it reuses the slots).
            match self.inner.head.compare_exchange(
                prev,
                pack(real, real),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return n,
                Err(actual) => prev = actual,
            }
        }
    }
}

impl<T> Drop for Local<T> {
    fn drop(&mut self) {
        // A ring is dropped only after its tasks were drained; leftover tasks
        // are dropped here so nothing leaks.
        if !std::thread::panicking() {
            while self.pop().is_some() {}
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn push_pop_fifo() {
        let inject = Inject::new();
        let (mut local, _steal) = local();
        for i in 0..10 {
            assert!(!local.push_back(i, &inject));
        }
        for i in 0..10 {
            assert_eq!(local.pop(), Some(i));
        }
        assert_eq!(local.pop(), None);
    }

    #[test]
    fn overflow_moves_half_plus_one() {
        let inject = Inject::new();
        let (mut local, _steal) = local();
        for i in 0..LOCAL_QUEUE_CAPACITY {
            assert!(!local.push_back(i, &inject));
        }
        assert!(local.push_back(LOCAL_QUEUE_CAPACITY, &inject));
        assert_eq!(inject.len(), LOCAL_QUEUE_CAPACITY / 2 + 1);
        assert_eq!(local.len(), LOCAL_QUEUE_CAPACITY / 2);
        let mut seen: Vec<usize> = std::iter::from_fn(|| local.pop()).collect();
        seen.extend(std::iter::from_fn(|| inject.pop()));
        seen.sort();
        assert_eq!(seen, (0..=LOCAL_QUEUE_CAPACITY).collect::<Vec<_>>());
    }

    #[test]
    fn steal_half() {
        let inject = Inject::new();
        let (mut a, steal_a) = local();
        let (mut b, _) = local();
        for i in 0..10 {
            a.push_back(i, &inject);
        }
        let first = steal_a.steal_into(&mut b);
        assert!(first.is_some());
        assert_eq!(b.len() + 1, 5);
        assert_eq!(a.len(), 5);
    }
}

#[cfg(all(test, loom))]
mod tests {
    use super::*;
    use crate::loom::thread;

    /// Owner pushes past capacity while a thief steals: every task comes out
    /// exactly once, through the owner, the thief or the global queue.
    #[test]
    fn loom_queue_push_pop_steal_overflow() {
        loom::model(|| {
            let inject = Arc::new(Inject::new());
            let (mut owner, steal) = local::<usize>();
            let thief = thread::spawn(move || {
                let (mut mine, _) = local::<usize>();
                let mut got = Vec::new();
                if let Some(t) = steal.steal_into(&mut mine) {
                    got.push(t);
                }
                while let Some(t) = mine.pop() {
                    got.push(t);
                }
                got
            });
            let total = LOCAL_QUEUE_CAPACITY + 2;
            let mut got = Vec::new();
            for i in 0..total {
                owner.push_back(i, &inject);
            }
            if let Some(t) = owner.pop() {
                got.push(t);
            }
            got.extend(thief.join().unwrap());
            while let Some(t) = owner.pop() {
                got.push(t);
            }
            while let Some(t) = inject.pop() {
                got.push(t);
            }
            got.sort();
            assert_eq!(got, (0..total).collect::<Vec<_>>());
        });
    }

    /// Two thieves race the owner's pops: no task is lost or seen twice.
    #[test]
    fn loom_queue_two_thieves() {
        loom::model(|| {
            let inject = Arc::new(Inject::new());
            let (mut owner, steal) = local::<usize>();
            for i in 0..3 {
                owner.push_back(i, &inject);
            }
            let thieves: Vec<_> = (0..2)
                .map(|_| {
                    let steal = steal.clone();
                    thread::spawn(move || {
                        let (mut mine, _) = local::<usize>();
                        let mut got = Vec::new();
                        if let Some(t) = steal.steal_into(&mut mine) {
                            got.push(t);
                        }
                        while let Some(t) = mine.pop() {
                            got.push(t);
                        }
                        got
                    })
                })
                .collect();
            let mut got = Vec::new();
            if let Some(t) = owner.pop() {
                got.push(t);
            }
            for t in thieves {
                got.extend(t.join().unwrap());
            }
            while let Some(t) = owner.pop() {
                got.push(t);
            }
            got.sort();
            assert_eq!(got, vec![0, 1, 2]);
        });
    }
}
