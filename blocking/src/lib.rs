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
//!   [`blocking`] call with no copy of the caller's buffer, learning at the
//!   caller's line like `blocking` itself (`fs`, "Call sites").
//!
//! ```
//! let rt = handoff_executor::Runtime::new().unwrap();
//! let (pid, status) = rt.block_on(async {
//!     handoff_executor::spawn(async {
//!         // SAFETY: getpid has no preconditions.
//!         let pid = handoff_blocking::blocking(|| unsafe { libc::getpid() }).await;
//!         let status = handoff_blocking::fs::read_to_string("/proc/self/status").await?;
//!         std::io::Result::Ok((pid, status))
//!     })
//!     .await
//!     .unwrap()
//! })
//! .unwrap();
//! assert_eq!(pid as u32, std::process::id());
//! assert!(status.starts_with("Name:"));
//! assert!(rt.metrics().blocking_calls >= 2); // both ran on a worker, through the bridge
//! ```
//!
//! Layout: `call.rs` (the [`Blocking`] future and the one function that runs a
//! closure through the bridge), `fs/` (free functions and [`fs::File`]),
//! `dns.rs` ([`lookup_host`]).
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod call;
mod dns;
pub mod fs;
mod learn;

pub use call::{blocking, blocking_long, Blocking};
pub use dns::lookup_host;
pub use learn::{call_site_learning, set_call_site_learning};

/// Runs a `'static` closure on a pool thread and returns a handle to its
/// result; the executor's pool, which shares `max_threads` with the workers.
///
/// Compared with [`blocking`]: the task does not wait inside `f` (it awaits
/// the handle, and its slot runs other tasks meanwhile), but `f` must own its
/// data and each call pays a hop to another thread. Use it for long or
/// CPU-heavy work the task should not sit in; use [`blocking`] for system
/// calls, which borrow and usually return at once.
///
/// # Panics
///
/// Outside a runtime (use `Handle::spawn_blocking` there). A panic in `f`
/// reaches the handle as a `JoinError` with `is_panic()`.
///
/// # Examples
///
/// ```
/// let rt = handoff_executor::Runtime::new().unwrap();
/// let sum = rt.block_on(async {
///     let data: Vec<u64> = (1..=100).collect();
///     handoff_blocking::spawn_blocking(move || data.iter().sum::<u64>()).await.unwrap()
/// });
/// assert_eq!(sum, 5050);
/// ```
pub use handoff_executor::spawn_blocking;
