//! handoff-reactor: epoll, eventfd, registrations, timers, sockets, signals.
//!
//! CONTRACT (used by handoff-executor; keep these names and signatures):
//! - `Handle::new() -> io::Result<Handle>`: a reactor (cheap to clone).
//! - `Handle::current()` / `Handle::try_current()`: the reactor entered on this thread.
//! - `Handle::enter(&self) -> EnterGuard`: make it current on this thread until the guard drops.
//! - `Handle::try_lock_poller(&self) -> Option<PollerGuard>`: the right to block in the reactor;
//!   only one thread at a time holds it.
//! - `PollerGuard::turn(&mut self, timeout: Option<Duration>) -> io::Result<usize>`: wait for
//!   events or timers, at most `timeout` (None = until an event, a timer or `wake`), fire wakers,
//!   return how many wakers were fired. `Some(Duration::ZERO)` never blocks.
//! - `Handle::wake(&self)`: interrupt a thread blocked in `turn` (from any thread).
//! - `coop`: the cooperative budget (the executor wraps every task poll in `coop::budget`).
//! - `block_on(fut)`: a minimal single-threaded executor that turns the reactor while pending.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod coop;
mod driver;

pub use driver::{block_on, EnterGuard, Handle, PollerGuard};

/// Sockets whose readiness comes from this reactor.
pub mod net {}

/// Timers driven by the reactor.
pub mod time {}

/// Unix signals delivered through a `signalfd`.
pub mod signal {}
