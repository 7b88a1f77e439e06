//! handoff-blocking: the user-facing half of the blocking bridge.
//!
//! A blocking system call in handoff runs *inline*, on the worker thread that
//! polled the task, inside the task's own poll. The executor provides the two
//! primitives (`handoff_executor::bridge::{enter, Syscall::exit}`, Go's
//! `entersyscall` / `exitsyscall`); this crate turns them into futures:
//!
//! - [`blocking`] / [`blocking_long`]: run a closure as a system call, borrowing
//!   freely from the task (no `'static`, no thread hop). See [`Blocking`] for the
//!   protocol and its three exits.
//! - [`spawn_blocking`]: the `'static` offload onto pool threads, for work that
//!   must not hold the task at all (re-exported from the executor, which owns the
//!   pool because it shares the thread cap with the workers).
//! - [`fs`] and [`lookup_host`]: the usual blocking calls, each one a single
//!   [`blocking`] call with no copy of the caller's buffer.
//!
//! Layout: `call.rs` (the [`Blocking`] future and the one function that runs a
//! closure through the bridge), `fs/` (free functions and [`fs::File`]),
//! `dns.rs` ([`lookup_host`]).
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod call;
mod dns;
pub mod fs;

pub use call::{blocking, blocking_long, Blocking};
pub use dns::lookup_host;
