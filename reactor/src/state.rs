//! The two lock-free words of the reactor.
//!
//! # `Readiness`: one per registered descriptor
//!
//! ```text
//!  63            16 15      4       3          2          1          0
//! +----------------+---------+------------+----------+----------+----------+
//! |      tick      | unused  | READ_CLOSED| SHUTDOWN | WRITABLE | READABLE |
//! +----------------+---------+------------+----------+----------+----------+
//! ```
//!
//! - `READABLE` is set by the poller when epoll reports `EPOLLIN`, `EPOLLPRI`,
//!   `EPOLLRDHUP`, `EPOLLHUP` or `EPOLLERR` (every one of those makes a read
//!   return without `EAGAIN`). Cleared by a reader that got `EAGAIN`.
//! - `WRITABLE` is set on `EPOLLOUT`, `EPOLLHUP` or `EPOLLERR`; cleared by a
//!   writer that got `EAGAIN`.
//! - `READ_CLOSED` is set with `READABLE` when the event also has
//!   `EPOLLRDHUP`, `EPOLLHUP` or `EPOLLERR`: the read side will not block
//!   again (end of file or an error). Never cleared, and a read waits on
//!   `READABLE | READ_CLOSED`. It is what makes clearing `READABLE` after a
//!   *short* read safe (`io.rs`, "Short reads"): when data and the peer's FIN
//!   come in one edge, the short read takes the data, `READABLE` is cleared,
//!   and no further edge will come for the end of file; `READ_CLOSED` keeps
//!   the next read going to the kernel, which returns 0.
//! - `SHUTDOWN` is set once when the reactor is dropped; never cleared. It
//!   makes every later readiness poll fail with an error.
//! - `tick` counts the poller's deliveries to this word (wrapping, 48 bits).
//!
//! The protocol (tokio's `ScheduledIo` idea):
//! 1. The poller, for each event, adds the bits and bumps the tick in one RMW
//!    ([`Readiness::transition_to_event`]), then wakes the waiting task.
//! 2. A task that sees a bit set remembers the whole word ([`ReadyEvent`]),
//!    tries the system call, and on `EAGAIN` clears the bit with
//!    [`Readiness::transition_to_cleared`], which is a CAS that succeeds only
//!    if the tick is still the one it saw.
//! 3. So an edge that arrives between the task's load and its clear bumps the
//!    tick, the clear fails (keeps the bit), and the task retries instead of
//!    sleeping on readiness that was already reported: no lost edge. With
//!    edge-triggered epoll the kernel will not report that edge again, so
//!    this is what makes "clear after EAGAIN" correct.
//!
//! Rejected: clearing with a plain `fetch_and`. It erases an edge delivered
//! after the failed syscall, and the task then sleeps forever on data that is
//! already in the socket buffer.
//!
//! # `WakeWord`: one per reactor (see the header of `driver.rs` for the
//! protocol that uses it)
//!
//! - `POLLING` is set by the thread holding the poller lock just before it
//!   blocks in `epoll_pwait`, cleared just after it returns.
//! - `POLLING` is cleared as soon as `epoll_pwait` returns.
//! - `NOTIFIED` is set by `Handle::wake`; cleared by the poller when a turn
//!   starts (it then does not block) or ends (the wake was delivered by that
//!   turn returning).
use crate::loom::{AtomicU64, AtomicU8, Ordering::*};

/// Some direction(s) of a readiness word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Interest(u64);

impl Interest {
    pub(crate) const READ: Interest = Interest(READABLE);
    pub(crate) const WRITE: Interest = Interest(WRITABLE);

    /// Both directions of `self` and `other`.
    pub(crate) const fn with(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }
}

const READABLE: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const SHUTDOWN: u64 = 1 << 2;
const READ_CLOSED: u64 = 1 << 3;
const READY_MASK: u64 = READABLE | WRITABLE;
const TICK_SHIFT: u32 = 16;
const TICK_ONE: u64 = 1 << TICK_SHIFT;

/// The readiness seen by a task: which bits, and at which tick.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadyEvent {
    word: u64,
    interest: Interest,
}

/// Outcome of looking at a readiness word for one direction.
#[must_use]
#[derive(Debug)]
pub(crate) enum Observed {
    /// The direction is ready; try the system call.
    Ready(ReadyEvent),
    /// Not ready; register a waker and look again.
    NotReady,
    /// The reactor is gone.
    Shutdown,
}

/// Outcome of [`Readiness::transition_to_cleared`].
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Cleared {
    /// The bits were cleared; wait for the next edge.
    Cleared,
    /// A new event arrived since the task looked; the bits stay, retry.
    NewEdge,
}

/// The per-descriptor readiness word (see the module header).
#[derive(Debug)]
pub(crate) struct Readiness(AtomicU64);

impl Readiness {
    pub(crate) fn new() -> Readiness {
        Readiness(AtomicU64::new(0))
    }

    /// The poller delivers an epoll event: adds `interest` bits (and
    /// `READ_CLOSED` when `read_closed`), bumps the tick.
    ///
    /// AcqRel: the Release half pairs with the Acquire in [`Self::observe`],
    /// so a task that sees the bit also sees everything the poller did before;
    /// the Acquire half orders it after earlier clears.
    pub(crate) fn transition_to_event(&self, interest: Interest, read_closed: bool) {
        let bits = interest.0 | if read_closed { READ_CLOSED } else { 0 };
        let _ = self.0.fetch_update(AcqRel, Acquire, |cur| {
            Some((cur | bits).wrapping_add(TICK_ONE))
        });
    }

    /// Sets `SHUTDOWN` (the reactor is being dropped). AcqRel: pairs with the
    /// Acquire in [`Self::observe`].
    pub(crate) fn transition_to_shutdown(&self) {
        self.0.fetch_or(SHUTDOWN, AcqRel);
    }

    /// Looks at the word for one direction. Acquire: pairs with the Release
    /// in [`Self::transition_to_event`].
    pub(crate) fn observe(&self, interest: Interest) -> Observed {
        let word = self.0.load(Acquire);
        // A closed read side stays readable (`READ_CLOSED` is never cleared).
        let bits = if interest.0 & READABLE != 0 {
            interest.0 | READ_CLOSED
        } else {
            interest.0
        };
        if word & SHUTDOWN != 0 {
            Observed::Shutdown
        } else if word & bits != 0 {
            Observed::Ready(ReadyEvent { word, interest })
        } else {
            Observed::NotReady
        }
    }

    /// A task got `EAGAIN` after seeing `event`: clears its direction (for
    /// a read, `READ_CLOSED` too: the read side does block, so it is not
    /// closed) unless a newer event arrived. `SHUTDOWN` stays. AcqRel on success: the Release half orders
    /// the failed syscall before the clear as seen by the poller's RMW; the
    /// Acquire on failure pairs with the poller's Release so the retry sees
    /// the new event's effects.
    pub(crate) fn transition_to_cleared(&self, event: ReadyEvent) -> Cleared {
        let mut mask = event.interest.0 & READY_MASK;
        if mask & READABLE != 0 {
            mask |= READ_CLOSED;
        }
        self.clear_bits(event, mask)
    }

    /// A stream read after `event` returned fewer bytes than asked (the
    /// socket is drained): clears `READABLE` unless a newer event arrived,
    /// and keeps `READ_CLOSED` (an end of file that came with the data
    /// brings no further edge). Orderings as [`Self::transition_to_cleared`].
    pub(crate) fn transition_to_drained(&self, event: ReadyEvent) -> Cleared {
        self.clear_bits(event, READABLE)
    }

    /// CAS `mask` out of the word while its tick is the one `event` saw.
    fn clear_bits(&self, event: ReadyEvent, mask: u64) -> Cleared {
        let mut cur = event.word;
        loop {
            if cur >> TICK_SHIFT != event.word >> TICK_SHIFT {
                return Cleared::NewEdge;
            }
            let new = cur & !mask;
            // AcqRel / Acquire: see `transition_to_cleared`.
            match self.0.compare_exchange_weak(cur, new, AcqRel, Acquire) {
                Ok(_) => return Cleared::Cleared,
                Err(actual) => cur = actual,
            }
        }
    }
}

pub(crate) const POLLING: u8 = 1 << 0;
pub(crate) const NOTIFIED: u8 = 1 << 1;

/// Outcome of [`WakeWord::transition_to_notified`].
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Notify {
    /// A poller is (or is about to be) blocked and nobody has written the
    /// eventfd for it yet: write it.
    WriteEventfd,
    /// Nobody is blocked, or the blocked poller has already been woken; the
    /// flag alone is enough.
    Done,
}

/// Outcome of [`WakeWord::transition_to_polling`].
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StartTurn {
    /// No wake is pending: block for the computed timeout.
    Block,
    /// A wake arrived before the turn began: poll without blocking.
    DoNotBlock,
}

/// The reactor's wake word (see the module header and `driver.rs`).
#[derive(Debug)]
pub(crate) struct WakeWord(AtomicU8);

impl WakeWord {
    pub(crate) fn new() -> WakeWord {
        WakeWord(AtomicU8::new(0))
    }

    /// `Handle::wake`. AcqRel: the Release half pairs with the Acquire in
    /// [`Self::transition_to_polling`] (the poller that consumes this wake
    /// sees everything the waker did before, e.g. the task it queued); the
    /// Acquire half pairs with the Release in `transition_to_polling` so
    /// the eventfd write is aimed at a poller that is really there.
    pub(crate) fn transition_to_notified(&self) -> Notify {
        let prev = self.0.fetch_or(NOTIFIED, AcqRel);
        if prev & POLLING != 0 && prev & NOTIFIED == 0 {
            Notify::WriteEventfd
        } else {
            Notify::Done
        }
    }

    /// The poller is about to block. AcqRel: pairs with the AcqRel of
    /// [`Self::transition_to_notified`]. Both are RMWs on this one word, so
    /// they are totally ordered: either the wake comes first (we see
    /// `NOTIFIED` and do not block) or we come first (the wake sees
    /// `POLLING` and writes the eventfd, which ends our `epoll_pwait`).
    pub(crate) fn transition_to_polling(&self) -> StartTurn {
        let prev = self.0.swap(POLLING, AcqRel);
        if prev & NOTIFIED != 0 {
            StartTurn::DoNotBlock
        } else {
            StartTurn::Block
        }
    }

    /// The poller has returned from `epoll_pwait` and is firing wakers:
    /// clears `POLLING` so wakes stop writing the eventfd. AcqRel: pairs with
    /// `transition_to_notified` like the swap above.
    pub(crate) fn transition_to_processing(&self) {
        self.0.fetch_and(!POLLING, AcqRel);
    }

    /// The turn is about to return: clears `NOTIFIED` (a wake since the turn
    /// began is delivered by the turn returning). AcqRel: the Acquire half
    /// pairs with the Release of `transition_to_notified`, so the caller sees
    /// what the waker did before waking.
    /// Returns whether a wake arrived while the turn was processing (it is
    /// delivered by the return; the driver needs no action).
    pub(crate) fn transition_to_idle(&self) -> bool {
        self.0.swap(0, AcqRel) & NOTIFIED != 0
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::{thread, Arc};
    use loom::sync::atomic::AtomicBool;

    /// A delivery racing with a clear after EAGAIN never loses the edge:
    /// if data is in the "socket" at the end, the word still says READABLE
    /// or the reader saw the data.
    #[test]
    fn loom_readiness_clear_never_erases_new_edge() {
        loom::model(|| {
            let word = Arc::new(Readiness::new());
            let data = Arc::new(AtomicBool::new(false));
            // An earlier event is already delivered (the reader saw it).
            word.transition_to_event(Interest::READ, false);

            let w2 = word.clone();
            let d2 = data.clone();
            let poller = thread::spawn(move || {
                // Data arrives in the kernel, then epoll reports the edge.
                d2.store(true, SeqCst);
                w2.transition_to_event(Interest::READ, false);
            });

            // The reader: sees readiness, tries the "syscall", clears on EAGAIN.
            let mut got = false;
            let mut trace = Vec::new();
            for _ in 0..2 {
                let o = word.observe(Interest::READ);
                trace.push(format!("{o:?}"));
                match o {
                    Observed::Ready(ev) => {
                        // Reading the "socket" (a load: only the reader
                        // would consume it, and it stops here).
                        if data.load(SeqCst) {
                            got = true;
                            break;
                        }
                        let c = word.transition_to_cleared(ev);
                        trace.push(format!("{c:?}"));
                        if c == Cleared::Cleared {
                            break;
                        }
                    }
                    _ => break,
                }
            }
            poller.join().unwrap();
            if !got {
                // The reader went to sleep without the data: the edge must
                // still be recorded so the task is polled again.
                assert!(
                    matches!(word.observe(Interest::READ), Observed::Ready(_)),
                    "edge lost: {:?} {:?}",
                    trace,
                    word.observe(Interest::READ)
                );
            }
        });
    }

    /// A reader clearing READABLE after EAGAIN never erases a WRITABLE edge
    /// delivered concurrently (both directions share one word and one tick).
    #[test]
    fn loom_read_clear_keeps_concurrent_write_edge() {
        loom::model(|| {
            let word = Arc::new(Readiness::new());
            word.transition_to_event(Interest::READ, false);
            let w2 = word.clone();
            let poller = thread::spawn(move || w2.transition_to_event(Interest::WRITE, false));
            // The reader saw READABLE, its read got EAGAIN; it clears, and
            // retries once if a new edge (the write edge) moved the tick.
            for _ in 0..2 {
                match word.observe(Interest::READ) {
                    Observed::Ready(ev) => {
                        if word.transition_to_cleared(ev) == Cleared::Cleared {
                            break;
                        }
                    }
                    _ => break,
                }
            }
            poller.join().unwrap();
            assert!(
                matches!(word.observe(Interest::WRITE), Observed::Ready(_)),
                "a read-side clear erased the write edge"
            );
            assert!(
                matches!(word.observe(Interest::READ), Observed::NotReady),
                "the read side should end cleared (no read edge after EAGAIN)"
            );
        });
    }

    /// A short read clears READABLE while the peer's FIN is delivered (or
    /// was delivered with the data): the read side must end ready, since
    /// the end of file brings no further edge (`READ_CLOSED`).
    #[test]
    fn loom_short_read_clear_keeps_end_of_file() {
        loom::model(|| {
            let word = Arc::new(Readiness::new());
            // The data's edge, already delivered.
            word.transition_to_event(Interest::READ, false);
            let w2 = word.clone();
            let poller = thread::spawn(move || w2.transition_to_event(Interest::READ, true));
            if let Observed::Ready(ev) = word.observe(Interest::READ) {
                // The read returned fewer bytes than asked: drained, clear.
                let _ = word.transition_to_drained(ev);
            }
            poller.join().unwrap();
            assert!(
                matches!(word.observe(Interest::READ), Observed::Ready(_)),
                "a short-read clear hid the end of file"
            );
        });
    }

    /// A wake racing with a poller that is starting its turn is never lost:
    /// either the turn does not block, or the wake writes the eventfd.
    #[test]
    fn loom_wake_word_never_loses_a_wake() {
        loom::model(|| {
            let word = Arc::new(WakeWord::new());
            let w2 = word.clone();
            let waker = thread::spawn(move || w2.transition_to_notified());
            let start = word.transition_to_polling();
            // "Blocked in epoll_pwait" is the span until the next RMW.
            word.transition_to_processing();
            let during_processing = word.transition_to_idle();
            let notify = waker.join().unwrap();
            // Either the wake stopped the turn from blocking, or it wrote the
            // eventfd while the poller was blocked, or it came after the
            // blocking span (then the turn returning delivers it, or the
            // word keeps NOTIFIED for the next turn).
            let woke_during_block = notify == Notify::WriteEventfd;
            let after_block = during_processing || word.0.load(SeqCst) & NOTIFIED != 0;
            assert!(
                start == StartTurn::DoNotBlock || woke_during_block || after_block,
                "a wake neither stopped the turn from blocking nor wrote the eventfd"
            );
        });
    }
}
