//! `Parker` / `Unparker`: put one thread to sleep until another says go.
//!
//! One `AtomicU32` with three states, the futex word itself:
//!
//! ```text
//! EMPTY    --park-----------> PARKED   (then futex_wait while PARKED)
//! PARKED   --unpark---------> NOTIFIED (then futex_wake)
//! EMPTY    --unpark---------> NOTIFIED (no system call: the next park returns at once)
//! NOTIFIED --park-----------> EMPTY    (returns at once, consuming the token)
//! ```
//!
//! 1. `park` swaps EMPTY/NOTIFIED: finding NOTIFIED consumes the token and
//!    returns. Otherwise it CASes EMPTY -> PARKED and sleeps on the word
//!    while it reads PARKED; on every return it tries NOTIFIED -> EMPTY.
//! 2. `unpark` swaps in NOTIFIED; only if it replaced PARKED does it make the
//!    `futex_wake` system call.
//!
//! No lost wake-up: the token is a state of the word, not an event. An
//! `unpark` before `park` leaves NOTIFIED, which `park` consumes without
//! sleeping; an `unpark` during `park` changes the word, so the kernel's
//! compare inside `futex_wait` refuses to sleep or the wake finds the sleeper.
//! The swap in `unpark` is `Release` and pairs with the `Acquire` with which
//! `park` consumes NOTIFIED, so what the unparker wrote before is visible to
//! the parked thread after it returns.
//!
//! Rejected: `Mutex` + `Condvar` (std's thread parker is also a futex, but a
//! condvar costs a lock round trip on every unpark even when nobody sleeps).
//! Under loom the futex is emulated with loom's `Mutex` + `Condvar` so the
//! model checks the state machine above, not the kernel.
use crate::loom::{Arc, AtomicU32, Ordering};
use std::time::{Duration, Instant};

const EMPTY: u32 = 0;
const PARKED: u32 = 1;
const NOTIFIED: u32 = 2;

struct Inner {
    state: AtomicU32,
    #[cfg(loom)]
    lock: crate::loom::Mutex<()>,
    #[cfg(loom)]
    cv: crate::loom::Condvar,
}

/// Puts its own thread to sleep. Not `Clone`: one thread parks.
pub(crate) struct Parker {
    inner: Arc<Inner>,
}

/// Wakes the thread of a [`Parker`]. Cheap to clone; any thread.
#[derive(Clone)]
pub(crate) struct Unparker {
    inner: Arc<Inner>,
}

impl Parker {
    pub(crate) fn new() -> Parker {
        Parker {
            inner: Arc::new(Inner {
                state: AtomicU32::new(EMPTY),
                #[cfg(loom)]
                lock: crate::loom::Mutex::new(()),
                #[cfg(loom)]
                cv: crate::loom::Condvar::new(),
            }),
        }
    }

    pub(crate) fn unparker(&self) -> Unparker {
        Unparker {
            inner: self.inner.clone(),
        }
    }

    /// Sleeps until unparked (returns at once if a token is pending).
    pub(crate) fn park(&self) {
        self.park_until(None);
    }

    /// Sleeps until unparked or until `timeout` has passed. Returns `true`
    /// when it was unparked, `false` on a timeout.
    pub(crate) fn park_timeout(&self, timeout: Duration) -> bool {
        self.park_until(Some(Instant::now() + timeout))
    }

    fn park_until(&self, deadline: Option<Instant>) -> bool {
        let state = &self.inner.state;
        // Acquire pairs with the Release swap in `unpark`.
        if state
            .compare_exchange(NOTIFIED, EMPTY, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return true;
        }
        // Only this thread moves EMPTY -> PARKED; the word is EMPTY or NOTIFIED.
        if let Err(actual) =
            state.compare_exchange(EMPTY, PARKED, Ordering::Relaxed, Ordering::Acquire)
        {
            debug_assert_eq!(actual, NOTIFIED);
            // A swap, not a store: an RMW reads the latest NOTIFIED, so it
            // also acquires a second unpark that raced in after the failed
            // CAS (a plain store would erase that token unseen).
            state.swap(EMPTY, Ordering::Acquire);
            return true;
        }
        loop {
            self.wait(deadline);
            // Acquire pairs with the Release swap in `unpark`.
            if state
                .compare_exchange(NOTIFIED, EMPTY, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                // Timed out: PARKED -> EMPTY, unless an unpark raced in.
                return match state.compare_exchange(
                    PARKED,
                    EMPTY,
                    Ordering::Relaxed,
                    Ordering::Acquire,
                ) {
                    Ok(_) => false,
                    Err(_) => {
                        // Swap: see the note in the first failed CAS above.
                        state.swap(EMPTY, Ordering::Acquire);
                        true
                    }
                };
            }
        }
    }

    #[cfg(not(loom))]
    fn wait(&self, deadline: Option<Instant>) {
        crate::sys::futex_wait(&self.inner.state, PARKED, deadline);
    }

    #[cfg(loom)]
    fn wait(&self, _deadline: Option<Instant>) {
        // Loom has no time: a timed park is modelled as an untimed one.
        let mut g = self.inner.lock.lock().unwrap();
        while self.inner.state.load(Ordering::Relaxed) == PARKED {
            g = self.inner.cv.wait(g).unwrap();
        }
    }
}

impl Unparker {
    /// Wakes the parked thread, or makes its next `park` return at once.
    pub(crate) fn unpark(&self) {
        // Release pairs with the Acquire in `park_until`.
        if self.inner.state.swap(NOTIFIED, Ordering::Release) == PARKED {
            self.wake();
        }
    }

    #[cfg(not(loom))]
    fn wake(&self) {
        crate::sys::futex_wake(&self.inner.state, 1);
    }

    #[cfg(loom)]
    fn wake(&self) {
        drop(self.inner.lock.lock().unwrap());
        self.inner.cv.notify_all();
    }
}

#[cfg(all(test, loom))]
mod tests {
    use super::*;
    use crate::loom::{thread, AtomicBool};

    /// The unparker publishes a flag then unparks; the parker must never
    /// sleep forever, and must see the flag once it returns from `park`.
    #[test]
    fn loom_parker_no_lost_wakeup() {
        loom::model(|| {
            let parker = Parker::new();
            let unparker = parker.unparker();
            let flag = Arc::new(AtomicBool::new(false));
            let f2 = flag.clone();
            let t = thread::spawn(move || {
                f2.store(true, Ordering::Relaxed);
                unparker.unpark();
            });
            while !flag.load(Ordering::Relaxed) {
                parker.park();
            }
            t.join().unwrap();
        });
    }

    /// Two unparks race two parks: a regression test for a lost second
    /// token (the parker stored EMPTY over an unpark that raced its failed CAS).
    #[test]
    fn loom_parker_second_unpark_not_erased() {
        loom::model(|| {
            let parker = Parker::new();
            let unparker = parker.unparker();
            let n = Arc::new(crate::loom::AtomicUsize::new(0));
            let n2 = n.clone();
            let t = thread::spawn(move || {
                n2.fetch_add(1, Ordering::Release);
                unparker.unpark();
                n2.fetch_add(1, Ordering::Release);
                unparker.unpark();
            });
            while n.load(Ordering::Acquire) < 2 {
                parker.park();
            }
            t.join().unwrap();
        });
    }
}
