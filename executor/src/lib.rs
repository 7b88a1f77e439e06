//! handoff-executor: tasks, worker slots, threads, queues, the syscall monitor.
//!
//! Module map (each header is the design note of its part):
//! - `task`: one-allocation tasks, their state word, `JoinHandle`, `OwnedTasks`;
//! - `queue` (local ring), `inject` (global queue), `park` (futex parker),
//!   `idle` (idle cores/threads, spinning, the no-lost-wake-up protocol);
//! - `slot` (the slot's shared half; `slot/state.rs`: the status word);
//! - `worker` (a thread and its scheduling loop), `handle` (shared state,
//!   `Schedule`, spawn, handoff), `runtime`/`builder` (API), `context` (TLS);
//! - `bridge` (enter/exit a blocking call), `monitor` (retakes), `clock`
//!   (entry stamps), `pool` (`spawn_blocking`), `trace` (schedtrace),
//!   `metrics`, `sys` (the system call wrapper).
//!
//! CONTRACT (used by handoff-blocking and the facade; keep these names):
//! - `Runtime`, `Builder` (`worker_threads`, `max_threads`, `retake_after`, `thread_keep_alive`,
//!   `thread_name`, `thread_stack_size`, `on_thread_start`, `on_thread_stop`, `build() -> io::Result<Runtime>`),
//!   `Runtime::{new, builder, block_on, spawn, spawn_blocking, handle, metrics, shutdown_timeout}`.
//! - `Handle::{current, try_current, spawn, spawn_blocking, block_on, metrics, enter, reactor}`.
//! - `spawn`, `spawn_blocking`, `yield_now`, `JoinHandle<T>` (`abort`, `is_finished`), `JoinError`
//!   (`is_cancelled`, `is_panic`, `into_panic`), `Metrics` (plain struct, pub u64 fields).
//! - `bridge::{enter, Call, Syscall, Exit}`: Go's entersyscall / exitsyscall.
//! - `task::blocking_task(f, id) -> (Runnable, JoinHandle<R>)` (used by the pool).
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
// Under loom only the primitives and their models are built.
#![cfg_attr(loom, allow(dead_code))]

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
#[cfg(not(loom))]
mod standby;
mod sys;
pub mod task;
#[cfg(not(loom))]
mod thread_state;
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
