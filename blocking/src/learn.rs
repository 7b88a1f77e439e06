//! Call-site learning: `blocking` notices which of its call sites block.
//!
//! [`blocking`](crate::blocking) keeps the slot while its closure runs and
//! relies on the monitor to retake it if the call lasts. For a call that
//! lasts every time (an `fdatasync`, a 1 ms C library call) that costs, per
//! call, `retake_after` (20 µs) plus the monitor's own lateness during which
//! the slot's queued tasks wait, a monitor wake-up, and the retake itself.
//! [`blocking_long`](crate::blocking_long) avoids all three by handing the slot
//! off at entry, but the caller has to know in advance that the call blocks.
//! This module lets `blocking` find out by itself.
//!
//! # Protocol
//!
//! 1. `blocking` is `#[track_caller]`: each future remembers its call site
//!    (a `&'static Location`, so the site's identity is its address). The
//!    crate's wrappers (`fs`, `lookup_host`) are `#[track_caller]` too and
//!    pass their own caller's location on (`call::blocking_at`), so the site
//!    is the user's line, not the wrapper's.
//! 2. A fixed table of [`SITES`] scores (`AtomicU8`), indexed by a hash of the
//!    site's address. A score of [`PROMOTE`] or more means "this site blocks".
//! 3. Before the call ([`Site::call`]): a site below `PROMOTE` enters as
//!    `Call::Short` (the ordinary path); a site at `PROMOTE` or above enters
//!    as `Call::Long` (hand-off at entry), except every [`PROBE_EVERY`]th
//!    call on a thread, which runs as `Short` to measure the site again.
//! 4. After a `Short` call ([`Site::learn`]): the slot was retaken (exit
//!    `IdleSlot` or `Slow`) → score += [`RETAKEN_STEP`] (saturating at
//!    [`MAX`]); the slot was still ours (`Fast`) → score -= 1. A `Long` call
//!    teaches nothing (its slot was handed off whatever its length), nor
//!    does a call retaken only because its thread waited 10 ms for a CPU
//!    (`Retaken::Starved`: a preempted `getpid` on a busy machine). Several
//!    workers starved at once would otherwise add `RETAKEN_STEP` each and
//!    promote a site of 200 ns calls, whose every call would then hand its
//!    slot off (and start threads) until three probes demote it.
//!
//! So a site whose calls are retaken twice in a row is promoted; a promoted
//! site whose probes come back fast three times is demoted again (about
//! `3 × PROBE_EVERY` calls after it stopped blocking). A site that is always
//! fast pays one load of its score per call and never writes it (a `Fast`
//! exit at score 0 stores nothing), so the getpid path stays at its cost.
//!
//! # Why it is safe
//!
//! The score is a hint: `Short` and `Long` are both correct for any call, they
//! differ only in cost. Two sites that hash to one entry share a score (a
//! fast site may then be handed off now and then); lost updates between
//! threads (Relaxed load then store) only slow learning down. Nothing here
//! can lose a task or a slot: the slot protocol is the executor's.
//!
//! # Rejected
//!
//! - Timing each call (a clock read on every call, and the monitor already
//!   measures what matters: whether the call outlasted `retake_after`).
//! - A per-closure-type table (`TypeId`): every `blocking(|| ...)` closure is
//!   its own type anyway, so the call site is the same key without hashing a
//!   128-bit id, and it is what a reader of the code recognises.
//! - Learning in the executor: the executor sees calls, not call sites.
use std::cell::Cell;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::OnceLock;

use handoff_executor::bridge::{Call, Exit, Retaken};

/// Entries in the score table. 1024 bytes: far more distinct hot call sites
/// than a server has, so collisions are rare, and the table stays in L1/L2.
pub(crate) const SITES: usize = 1024;

/// Score at which a site is entered as `Call::Long`.
pub(crate) const PROMOTE: u8 = 3;

/// Highest score: a promoted site needs `MAX - PROMOTE + 1` fast probes to be
/// demoted.
pub(crate) const MAX: u8 = 5;

/// Added when a `Short` call of the site was retaken: two retakes in a row
/// (0 → 2 → 4) promote the site; one retake among fast calls does not.
pub(crate) const RETAKEN_STEP: u8 = 2;

/// One call in this many, per thread, at a promoted site runs as `Short` to
/// measure it again. 8: a site that stopped blocking is demoted within a few
/// dozen calls, and a site that still blocks pays the monitor's 20 µs on one
/// call in eight.
pub(crate) const PROBE_EVERY: u32 = 8;

static SCORES: [AtomicU8; SITES] = [const { AtomicU8::new(0) }; SITES];

thread_local! {
    /// Calls made at promoted sites on this thread, for probing.
    static PROMOTED_CALLS: Cell<u32> = const { Cell::new(0) };
}

/// Whether learning is on; read from `HANDOFF_BLOCKING_LEARN` (`0` turns it
/// off) the first time it is needed, then set by [`set_call_site_learning`].
fn enabled() -> &'static AtomicBool {
    static ENABLED: OnceLock<AtomicBool> = OnceLock::new();
    ENABLED.get_or_init(|| {
        let off = std::env::var_os("HANDOFF_BLOCKING_LEARN").is_some_and(|v| v == "0");
        AtomicBool::new(!off)
    })
}

/// Turns call-site learning on or off for the whole process (it is on unless
/// the environment variable `HANDOFF_BLOCKING_LEARN=0` was set).
///
/// With learning on, a [`blocking`](crate::blocking) call site whose calls
/// keep outlasting `retake_after` is entered like
/// [`blocking_long`](crate::blocking_long) (its slot is handed off at entry
/// instead of being retaken by the monitor), and is measured again every few
/// calls. With learning off, `blocking` always keeps its slot until the
/// monitor retakes it, exactly as Go's `entersyscall` does. Turning it off is
/// for comparisons and for tests that count retakes.
///
/// ```
/// handoff_blocking::set_call_site_learning(false);
/// assert!(!handoff_blocking::call_site_learning());
/// handoff_blocking::set_call_site_learning(true);
/// assert!(handoff_blocking::call_site_learning());
/// ```
pub fn set_call_site_learning(on: bool) {
    // Relaxed: a hint read by each call; no other memory depends on it.
    enabled().store(on, Ordering::Relaxed);
}

/// Whether call-site learning is on (see [`set_call_site_learning`]).
///
/// ```
/// let _on: bool = handoff_blocking::call_site_learning();
/// ```
pub fn call_site_learning() -> bool {
    enabled().load(Ordering::Relaxed)
}

/// A call site's entry in the score table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Site {
    index: usize,
}

impl Site {
    /// The entry of the call site `location`.
    #[inline]
    pub(crate) fn of(location: &'static Location<'static>) -> Site {
        // Fibonacci hashing of the address: Locations are laid out next to
        // each other in .rodata, so the low bits alone would cluster.
        let addr = location as *const Location<'static> as usize as u64;
        let hash = addr.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SITES.trailing_zeros());
        Site {
            index: hash as usize,
        }
    }

    fn score(self) -> &'static AtomicU8 {
        &SCORES[self.index]
    }

    /// How to enter this call (step 3 of the module header).
    #[inline]
    pub(crate) fn call(self) -> Call {
        // Relaxed: a hint (module header, "Why it is safe").
        if self.score().load(Ordering::Relaxed) < PROMOTE || !call_site_learning() {
            return Call::Short;
        }
        let probe = PROMOTED_CALLS.with(|n| {
            let next = n.get().wrapping_add(1);
            n.set(next);
            next % PROBE_EVERY == 0
        });
        if probe {
            Call::Short
        } else {
            Call::Long
        }
    }

    /// Learns from how a call entered as `call` exited (step 4).
    #[inline]
    pub(crate) fn learn(self, call: Call, exit: Exit, cause: Retaken) {
        if call != Call::Short || cause == Retaken::Starved {
            return;
        }
        let score = self.score();
        // Relaxed load and store: a lost update between threads only slows
        // learning (module header); a fast exit at 0 writes nothing.
        let old = score.load(Ordering::Relaxed);
        let new = match exit {
            Exit::Fast => old.saturating_sub(1),
            Exit::IdleSlot | Exit::Slow => old.saturating_add(RETAKEN_STEP).min(MAX),
        };
        if new != old {
            score.store(new, Ordering::Relaxed);
        }
    }

    /// The site's current score (tests).
    #[cfg(test)]
    pub(crate) fn current(self) -> u8 {
        self.score().load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn here() -> Site {
        Site::of(Location::caller())
    }

    #[test]
    fn two_retakes_promote_and_fast_probes_demote() {
        let site = here();
        assert_eq!(site.call(), Call::Short);
        site.learn(Call::Short, Exit::Slow, Retaken::Lasted);
        assert_eq!(site.call(), Call::Short, "one retake does not promote");
        site.learn(Call::Short, Exit::IdleSlot, Retaken::Lasted);
        assert!(site.current() >= PROMOTE);
        // Promoted: most calls are Long, one in PROBE_EVERY is a Short probe.
        let calls: Vec<Call> = (0..PROBE_EVERY * 2).map(|_| site.call()).collect();
        let probes = calls.iter().filter(|c| **c == Call::Short).count();
        assert_eq!(probes, 2, "{calls:?}");
        // Long calls teach nothing; fast probes demote.
        site.learn(Call::Long, Exit::Slow, Retaken::No);
        for _ in 0..MAX {
            site.learn(Call::Short, Exit::Fast, Retaken::No);
        }
        assert_eq!(site.current(), 0);
        assert_eq!(site.call(), Call::Short);
    }

    #[test]
    fn a_starved_retake_teaches_nothing() {
        let site = here();
        for _ in 0..4 {
            site.learn(Call::Short, Exit::Slow, Retaken::Starved);
            site.learn(Call::Short, Exit::IdleSlot, Retaken::Starved);
        }
        assert_eq!(site.current(), 0, "starved retakes must not promote");
        assert_eq!(site.call(), Call::Short);
    }

    #[test]
    fn a_fast_site_never_writes_its_score() {
        let site = here();
        for _ in 0..100 {
            assert_eq!(site.call(), Call::Short);
            site.learn(Call::Short, Exit::Fast, Retaken::No);
        }
        assert_eq!(site.current(), 0);
    }

    #[test]
    fn distinct_sites_get_distinct_entries_mostly() {
        let sites = [here(), here(), here(), here()];
        let mut indexes: Vec<usize> = sites.iter().map(|s| s.index).collect();
        indexes.sort_unstable();
        indexes.dedup();
        assert!(indexes.len() >= 3, "{indexes:?}");
    }
}
