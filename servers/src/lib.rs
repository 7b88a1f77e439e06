//! Server logic shared by handoff's examples, tests and benches: an
//! HTTP/1.1 server, a Redis-protocol key-value store with an fsync'd
//! append-only log, an echo server, and a load generator.
//!
//! Nothing here depends on a runtime. A server is a [`Service`] run by
//! [`serve`] on anything that implements [`Rt`] (spawn, blocking, sleep)
//! and [`Listener`]; connections are `futures::io` streams. The examples
//! run these services on handoff; the benchmark runs the very same code on
//! tokio beside it, so the comparison is of runtimes, not of servers.
//!
//! Layout: [`rt`] (the runtime seam, accept loop, idle reaper), [`buf`]
//! (per-connection buffering and backpressure), [`http`], then [`resp`],
//! [`kv`] and [`log`] (the store), [`echo`], [`cli`] (command lines),
//! [`load`] (the closed-loop load generator), [`duplex`] (an in-memory pipe
//! for tests), [`sys`] (the raw syscalls).
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

pub mod buf;
pub mod cli;
pub mod duplex;
pub mod echo;
pub mod http;
pub mod kv;
pub mod load;
pub mod log;
pub mod resp;
pub mod rt;
pub mod sys;

pub use rt::{serve, Activity, Conn, Listener, Reaper, Rt, Service, Threads};
