//! handoff: an async runtime for Linux in which a blocking system call is cheap.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub use handoff_reactor::{coop, net, signal, time};
