//! Server logic shared by the examples, tests and benches of handoff.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
