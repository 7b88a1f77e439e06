//! handoff-blocking: blocking(), blocking_long(), spawn_blocking(), fs, dns.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
