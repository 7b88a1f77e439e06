//! handoff-executor: tasks, worker slots, threads, queues, the syscall monitor.
//!
//! CONTRACT (used by handoff-blocking and the facade; keep these names):
//! - `Runtime`, `Builder` (`worker_threads`, `max_threads`, `retake_after`, `thread_keep_alive`,
//!   `thread_name`, `thread_stack_size`, `on_thread_start`, `on_thread_stop`, `build() -> io::Result<Runtime>`),
//!   `Runtime::{new, builder, block_on, spawn, handle, metrics, shutdown_timeout}`.
//! - `Handle::{current, try_current, spawn, block_on, metrics, enter}`.
//! - `spawn`, `yield_now`, `JoinHandle<T>` (`abort`, `is_finished`), `JoinError`
//!   (`is_cancelled`, `is_panic`, `into_panic`), `Metrics` (plain struct, pub u64 fields).
//! - `bridge::{enter, Call, Syscall, Exit}`: Go's entersyscall / exitsyscall.
//! - `Handle::try_reserve_thread() -> Option<ThreadReservation>` and
//!   `Handle::set_thread_release_hook(Arc<dyn Fn() + Send + Sync>)` for the blocking pool.
//! - `task::blocking_task(f) -> (Runnable, JoinHandle<R>)` for `spawn_blocking`.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(not(loom))]
pub mod bridge;
#[cfg(not(loom))]
mod builder;
mod clock;
#[cfg(not(loom))]
mod context;
#[cfg(not(loom))]
mod handle;
mod idle;
mod inject;
mod loom;
#[cfg(not(loom))]
mod metrics;
#[cfg(not(loom))]
mod monitor;
mod park;
#[cfg(not(loom))]
mod pool;
mod queue;
#[cfg(not(loom))]
mod runtime;
mod slot;
mod sys;
pub mod task;
#[cfg(not(loom))]
mod trace;
#[cfg(not(loom))]
mod worker;

#[cfg(not(loom))]
pub use builder::{
    Builder, DEFAULT_KEEP_ALIVE, DEFAULT_MAX_THREADS, DEFAULT_RETAKE_AFTER, SCHEDTRACE_ENV,
};
#[cfg(not(loom))]
pub use handle::{spawn, spawn_blocking, EnterGuard, Handle};
#[cfg(not(loom))]
pub use metrics::Metrics;
#[cfg(not(loom))]
pub use runtime::{yield_now, Runtime};
pub use task::{AbortHandle, Id, JoinError, JoinHandle};
