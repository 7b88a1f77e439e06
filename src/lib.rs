//! handoff: an async runtime for Linux in which a blocking system call is cheap.
//!
//! See the README for the idea; each crate's module headers carry the design.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

// ---- reactor (handoff-reactor): timers, signals, the cooperative budget ----
pub use handoff_reactor::{coop, signal, time};

/// Sockets whose readiness comes from handoff's own epoll reactor, and DNS.
pub mod net {
    // ---- reactor sockets ----
    pub use handoff_reactor::net::*;

    // ---- blocking: dns (handoff-blocking) ----
    pub use handoff_blocking::lookup_host;
}

// ---- executor (handoff-executor) ----
pub use handoff_executor::{
    spawn, spawn_blocking, yield_now, AbortHandle, Builder, EnterGuard, Handle, Id, JoinError,
    JoinHandle, Metrics, Runtime,
};

// ---- blocking bridge (handoff-blocking) ----
pub use handoff_blocking::{
    blocking, blocking_long, call_site_learning, fs, set_call_site_learning, Blocking,
};
